# TD_SANITIZE=address,undefined builds everything with the sanitizers, failing hard on the first report.
if(TD_SANITIZE)
  set(_td_san "-fsanitize=${TD_SANITIZE}" -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options(${_td_san})
  add_link_options(${_td_san})
endif()
