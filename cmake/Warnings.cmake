# Warning set and sanitizer switches, applied per target.
function(cnnviz_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wstrict-prototypes -Wmissing-prototypes)
  if(CNNVIZ_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(CNNVIZ_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
