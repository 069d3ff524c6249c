# Sets LURK_OSSL_MODULESDIR to OpenSSL's provider module directory, so that
# `cmake --install` puts lurk.so where `-provider lurk` and openssl.cnf
# find it without a path. Override with -DLURK_OSSL_MODULESDIR=...
if(NOT DEFINED LURK_OSSL_MODULESDIR)
  find_program(LURK_OPENSSL_BIN openssl)
  if(LURK_OPENSSL_BIN)
    execute_process(COMMAND ${LURK_OPENSSL_BIN} version -m
                    OUTPUT_VARIABLE _lurk_m OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE _lurk_rc)
    if(_lurk_rc EQUAL 0 AND _lurk_m MATCHES "MODULESDIR: \"([^\"]+)\"")
      set(_lurk_dir "${CMAKE_MATCH_1}")
    endif()
  endif()
  if(NOT _lurk_dir)
    set(_lurk_dir "${CMAKE_INSTALL_FULL_LIBDIR}/ossl-modules")
  endif()
  set(LURK_OSSL_MODULESDIR "${_lurk_dir}" CACHE PATH "OpenSSL provider module directory")
endif()
message(STATUS "lurk.so installs to ${LURK_OSSL_MODULESDIR}")
