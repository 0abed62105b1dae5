//! The test and probe kernels of csrc/kernels/ (emu_*.cu, probe_*.cu): kernels that exist to test
//! the emulator and the intrinsics layer. Their parameter structs come from
//! csrc/pa_test_params.h through [`crate::ffi::emu`].
