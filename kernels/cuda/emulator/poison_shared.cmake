# Copies a CUDA source (IN) to OUT for the emulated build, with each __shared__ declaration
# followed, on the same line, by a call that fills the variable with NaN bytes when a block first
# reaches it. On a GPU a block's shared memory starts as garbage; in the emulator a __shared__ is
# a static, so without this a block would find what the block before it left, and a kernel that
# reads shared memory it never wrote would pass by luck. (g++ ignores a section attribute on a
# template's static locals, so they cannot be gathered and poisoned by address.)
#
#   cmake -DIN=kernels/cuda/gemm.cu -DOUT=.../gemm.cpp -P poison_shared.cmake
#
# Lines keep their numbers, and a #line directive names the original file, so that compiler
# errors and sanitizer reports point at the source.
file(READ "${IN}" text)
string(REGEX MATCHALL "__shared__[^;\n]*" declarations "${text}")
list(REMOVE_DUPLICATES declarations)
foreach(declaration IN LISTS declarations)
  string(REGEX REPLACE "__align__[(][0-9]+[)]" "" unaligned "${declaration}")  # an alignment is plain too
  if(unaligned MATCHES "[<(={]")
    message(FATAL_ERROR "${IN}: `${declaration};` is not a plain declaration that poison_shared.cmake can read "
                        "(a type with template arguments, or an initializer); declare it as `__shared__ T name[n];`")
  endif()
  string(REGEX REPLACE "^__shared__[ \t]+" "" declarators "${unaligned}")
  string(REPLACE "," ";" declarators "${declarators}")
  set(poison "")
  foreach(declarator IN LISTS declarators)
    string(REGEX REPLACE "\\[.*$" "" declarator "${declarator}")  # drop the array bounds
    string(STRIP "${declarator}" declarator)
    if(NOT declarator MATCHES "([A-Za-z_][A-Za-z0-9_]*)$")
      message(FATAL_ERROR "${IN}: no variable name found in `${declaration};`")
    endif()
    string(APPEND poison " ::gs::cuda_emulator::poison_shared(&${CMAKE_MATCH_1}, sizeof(${CMAKE_MATCH_1}));")
  endforeach()
  string(REPLACE "${declaration};" "${declaration};${poison}" text "${text}")
endforeach()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
