/* The one translation unit that instantiates volk (Debian ships it as a header and a .c). */
#include <volk.c>
