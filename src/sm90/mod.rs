//! Host support of the Hopper (sm_90) kernel features.
//!
//! - [`TensorMapDesc`]: a tiled tensor map for TMA loads (`cp.async.bulk.tensor`), validated
//!   field by field, with two encoders into the 128-byte [`PaTensorMap`] a kernel receives:
//!   [`TensorMapDesc::encode_device`] (NVIDIA's opaque encoding, through the driver's
//!   `cuTensorMapEncodeTiled`) and [`TensorMapDesc::encode_emulator`] (this project's own
//!   fields, `PaTensorMapEmu` in csrc/pa_tma.h, which the SIMT emulator reads).
//!
//! The kernel-side vocabulary (mbarriers, TMA, wgmma, named barriers, setmaxnreg) is
//! `pa::sm90` in csrc/pa/sm90.cuh; docs/testing-without-gpu.md describes its emulation.

mod tensor_map;
mod tensor_map_device;

pub use crate::ffi::tma::PaTensorMap;
pub use tensor_map::{TensorMapDesc, TmaDtype, TmaSwizzle};
