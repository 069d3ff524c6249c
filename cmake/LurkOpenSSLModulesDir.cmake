# SPDX-License-Identifier: Apache-2.0
# Sets LURK_OSSL_MODULESDIR to the provider module directory of the libcrypto
# we build against (pkg-config's modulesdir), so that `cmake --install` puts
# lurk.so where `-provider lurk` and openssl.cnf find it without a path. It
# is not taken from whichever `openssl` is first on PATH: that one may belong
# to another OpenSSL than the one lurk.so links. Override with
# -DLURK_OSSL_MODULESDIR=...
if(NOT DEFINED LURK_OSSL_MODULESDIR)
  find_package(PkgConfig REQUIRED)
  pkg_get_variable(_lurk_dir libcrypto modulesdir)
  if(NOT _lurk_dir)
    set(_lurk_dir "${CMAKE_INSTALL_FULL_LIBDIR}/ossl-modules")
    message(WARNING "pkg-config gives no modulesdir for libcrypto; using ${_lurk_dir}")
  endif()
  set(LURK_OSSL_MODULESDIR "${_lurk_dir}" CACHE PATH "OpenSSL provider module directory")
endif()
message(STATUS "lurk.so installs to ${LURK_OSSL_MODULESDIR}")
