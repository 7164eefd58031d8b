# td_protoc_c(OUT_SRCS OUT_HDRS ROOT file.proto...): run protoc-c at build time into the build tree.
find_program(PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)
function(td_protoc_c out_srcs out_hdrs root)
  set(srcs)
  set(hdrs)
  foreach(p ${ARGN})
    string(REGEX REPLACE "\\.proto$" "" base "${p}")
    set(c "${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.c")
    set(h "${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.h")
    add_custom_command(
      OUTPUT ${c} ${h}
      COMMAND ${PROTOC_C} --proto_path=${root} --c_out=${CMAKE_CURRENT_BINARY_DIR} ${root}/${p}
      DEPENDS ${root}/${p}
      COMMENT "protoc-c ${p}"
      VERBATIM)
    list(APPEND srcs ${c})
    list(APPEND hdrs ${h})
  endforeach()
  set(${out_srcs} ${srcs} PARENT_SCOPE)
  set(${out_hdrs} ${hdrs} PARENT_SCOPE)
endfunction()
