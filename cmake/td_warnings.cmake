# Warning set for our own targets (rule 15). Generated protobuf-c code gets a lighter set.
set(TD_WARNINGS -Wall -Wextra -Wvla -Wstrict-prototypes -Wmissing-prototypes -Wshadow
    -Wformat=2 -fno-common -Wno-unused-parameter)
if(TD_WERROR)
  list(APPEND TD_WARNINGS -Werror)
endif()

function(td_warnings target)
  target_compile_options(${target} PRIVATE ${TD_WARNINGS})
endfunction()
