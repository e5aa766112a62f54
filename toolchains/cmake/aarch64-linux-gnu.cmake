# CMake toolchain file: C/C++ for 64-bit ARM Linux boards (Pi 3/4/5, Zero 2, Jetson) with
# Debian's gcc-aarch64-linux-gnu, run under qemu-aarch64 by ctest/try_run.
#
#   cmake -S examples/c -B build-aarch64 \
#       -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/aarch64-linux-gnu.cmake [-DPRUNUS_CPU=cortex-a72]
#
# PRUNUS_CPU (optional) tunes for one board: cortex-a53 (Pi 3, Zero 2), cortex-a57 (Jetson
# Nano), cortex-a72 (Pi 4), cortex-a76 (Pi 5), cortex-a78ae (Jetson Orin; gcc 11+).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PRUNUS_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "cross compiler prefix")
set(CMAKE_C_COMPILER ${PRUNUS_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${PRUNUS_CROSS_PREFIX}g++)

if(PRUNUS_CPU)
  set(CMAKE_C_FLAGS_INIT "-mcpu=${PRUNUS_CPU}")
  set(CMAKE_CXX_FLAGS_INIT "-mcpu=${PRUNUS_CPU}")
endif()

# Programs built for the board run on this host through qemu-user (tests, try_run).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
