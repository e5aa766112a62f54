# CMake toolchain file: C/C++ for 32-bit ARM Linux boards (Raspberry Pi OS 32-bit on Pi 2/3/4,
# Zero 2) with Debian's gcc-arm-linux-gnueabihf, run under qemu-arm by ctest/try_run.
#
#   cmake -S examples/c -B build-armhf \
#       -DCMAKE_TOOLCHAIN_FILE=toolchains/cmake/arm-linux-gnueabihf.cmake
#
# Code is built for ARMv7-A with NEON and Thumb-2, the same baseline as the Rust target
# thumbv7neon-unknown-linux-gnueabihf that the 32-bit bundle uses (see toolchains/README.md).
# PRUNUS_CPU (optional) tunes for one board: cortex-a53 (Pi 3, Zero 2), cortex-a72 (Pi 4).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7-a)

set(PRUNUS_CROSS_PREFIX arm-linux-gnueabihf- CACHE STRING "cross compiler prefix")
set(CMAKE_C_COMPILER ${PRUNUS_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${PRUNUS_CROSS_PREFIX}g++)

set(PRUNUS_ARM_FLAGS "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard -mthumb")
if(PRUNUS_CPU)
  set(PRUNUS_ARM_FLAGS "-mcpu=${PRUNUS_CPU} -mfpu=neon-fp-armv8 -mfloat-abi=hard -mthumb")
endif()
set(CMAKE_C_FLAGS_INIT "${PRUNUS_ARM_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${PRUNUS_ARM_FLAGS}")

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)

set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
