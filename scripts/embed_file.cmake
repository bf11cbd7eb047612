# cmake -DIN=page.html -DOUT=page.html.c -DNAME=chat_page -P embed_file.cmake
# Writes the bytes of IN as a C array vklm_file_NAME (NUL-terminated) and its size
# vklm_file_NAME_size (without the NUL): pages and other assets embedded in the binary.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "(..)" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
get_filename_component(base ${IN} NAME)
file(WRITE ${OUT} "/* Generated from ${base} by scripts/embed_file.cmake. */\n#include <stddef.h>\nconst unsigned char vklm_file_${NAME}[] = {\n${body}0x00};\nconst size_t vklm_file_${NAME}_size = ${bytes};\n")
