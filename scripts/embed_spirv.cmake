# cmake -DIN=x.spv -DOUT=x.spv.c -DNAME=x -P embed_spirv.cmake
# Writes the SPIR-V words of IN as a C array named vklm_spv_NAME.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
math(EXPR rem "${bytes} % 4")
if(NOT rem EQUAL 0)
  message(FATAL_ERROR "${IN}: size ${bytes} is not a multiple of 4")
endif()
# Little-endian bytes b0 b1 b2 b3 -> word 0xb3b2b1b0.
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "((0x[0-9a-f]+u,){8})" "\\1\n" words "${words}")
file(WRITE ${OUT} "/* Generated from ${NAME}.comp. */\n#include <stddef.h>\n#include <stdint.h>\nconst uint32_t vklm_spv_${NAME}[] = {\n${words}\n};\nconst size_t vklm_spv_${NAME}_size = ${bytes};\n")
