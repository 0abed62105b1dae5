/* Parameter structs of the test and probe kernels (csrc/kernels/emu_*.cu, probe_*.cu): kernels
 * that exist to test the SIMT emulator and the intrinsics layer, not part of the library's API.
 * Same rules as pa_params.h (C only, fixed-width integers, plain pointers). Mirrored in Rust by
 * src/ffi/emu.rs (generated from pa_emu.h, which includes this file).
 */
#ifndef PA_TEST_PARAMS_H
#define PA_TEST_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* PA_TEST_PARAMS_H */
