# Every dependency is a Debian package; a missing one stops configure with one
# line naming the package to install (cmake/install-deps.sh installs them all).
find_package(PkgConfig QUIET)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

find_package(OpenCL QUIET)
if(NOT OpenCL_FOUND)
  message(FATAL_ERROR "OpenCL not found: apt-get install ocl-icd-opencl-dev opencl-headers")
endif()

find_package(CLBlast QUIET)
if(NOT CLBlast_FOUND)
  message(FATAL_ERROR "CLBlast not found: apt-get install libclblast-dev")
endif()

find_package(PNG QUIET)
if(NOT PNG_FOUND)
  message(FATAL_ERROR "libpng not found: apt-get install libpng-dev")
endif()

pkg_check_modules(YAML QUIET IMPORTED_TARGET yaml-0.1)
if(NOT YAML_FOUND)
  message(FATAL_ERROR "libyaml not found: apt-get install libyaml-dev")
endif()

pkg_check_modules(TURBOJPEG QUIET IMPORTED_TARGET libturbojpeg)
if(NOT TURBOJPEG_FOUND)
  message(FATAL_ERROR "libjpeg-turbo not found: apt-get install libturbojpeg0-dev")
endif()

# ONNX import: protobuf-c's runtime, its compiler, and the schema Debian's
# libonnx-dev ships; the C reader is generated from it at build time.
pkg_check_modules(PROTOBUF_C QUIET IMPORTED_TARGET libprotobuf-c)
if(NOT PROTOBUF_C_FOUND)
  message(FATAL_ERROR "protobuf-c not found: apt-get install libprotobuf-c-dev")
endif()
find_program(CNNVIZ_PROTOC_C protoc-c)
if(NOT CNNVIZ_PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: apt-get install protobuf-c-compiler")
endif()
find_path(CNNVIZ_ONNX_PROTO_DIR onnx/onnx.proto PATHS /usr/include)
if(NOT CNNVIZ_ONNX_PROTO_DIR)
  message(FATAL_ERROR "onnx/onnx.proto not found: apt-get install libonnx-dev")
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
