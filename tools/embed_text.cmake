# cmake -DIN=file -DOUT=file.inc -P embed_text.cmake: writes IN as a C++ raw string literal.
file(READ ${IN} content)
file(WRITE ${OUT} "R\"grokscope_embed(${content})grokscope_embed\"\n")
