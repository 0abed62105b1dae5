// Host path of the intrinsics layer: kernels compiled by the host C++ compiler for the SIMT
// emulator. (Filled in by the emulator work; until then host builds of kernels are not made.)
#pragma once
#error "the host path of the intrinsics layer is not written yet"
