//! The device encoding of a tensor map: NVIDIA's opaque 128 bytes, written by the driver's
//! `cuTensorMapEncodeTiled` (CUDA driver API, "Tensor Map Object Management").

use std::ffi::c_void;

use cudarc::driver::sys;

use super::tensor_map::{TensorMapDesc, TmaDtype, TmaSwizzle};
use crate::cuda::cuda_err;
use crate::error::{Error, Result};
use crate::ffi::tma::PaTensorMap;

fn dtype(d: TmaDtype) -> sys::CUtensorMapDataType {
    use sys::CUtensorMapDataType::*;
    match d {
        TmaDtype::U8 => CU_TENSOR_MAP_DATA_TYPE_UINT8,
        TmaDtype::U16 => CU_TENSOR_MAP_DATA_TYPE_UINT16,
        TmaDtype::U32 => CU_TENSOR_MAP_DATA_TYPE_UINT32,
        TmaDtype::I32 => CU_TENSOR_MAP_DATA_TYPE_INT32,
        TmaDtype::U64 => CU_TENSOR_MAP_DATA_TYPE_UINT64,
        TmaDtype::I64 => CU_TENSOR_MAP_DATA_TYPE_INT64,
        TmaDtype::F16 => CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        TmaDtype::F32 => CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        TmaDtype::F64 => CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
        TmaDtype::Bf16 => CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
    }
}

fn swizzle(s: TmaSwizzle) -> sys::CUtensorMapSwizzle {
    use sys::CUtensorMapSwizzle::*;
    match s {
        TmaSwizzle::None => CU_TENSOR_MAP_SWIZZLE_NONE,
        TmaSwizzle::B32 => CU_TENSOR_MAP_SWIZZLE_32B,
        TmaSwizzle::B64 => CU_TENSOR_MAP_SWIZZLE_64B,
        TmaSwizzle::B128 => CU_TENSOR_MAP_SWIZZLE_128B,
    }
}

impl TensorMapDesc {
    /// NVIDIA's encoding of this map for kernels on a device (`global_address` a device
    /// pointer), by `cuTensorMapEncodeTiled` with no interleave, element strides 1, 128-byte L2
    /// promotion and zero fill out of bounds. Every field is validated first
    /// ([`TensorMapDesc::validate`]); without a CUDA driver this is [`Error::NoDevice`], never a
    /// panic, and a driver refusal is [`Error::Cuda`].
    pub fn encode_device(&self) -> Result<PaTensorMap> {
        self.validate()?;
        // cudarc panics on first use when libcuda cannot be loaded: ask first.
        if !crate::cuda::library_present(crate::cuda::CudaLib::Driver) {
            return Err(Error::NoDevice {
                reason: "the CUDA driver library (libcuda) was not found".into(),
            });
        }
        cudarc::driver::result::init().map_err(|e| Error::NoDevice {
            reason: format!("cuInit failed: {e}"),
        })?;
        let rank = self.rank();
        let element_strides = vec![1u32; rank];
        let mut raw = std::mem::MaybeUninit::<sys::CUtensorMap>::zeroed();
        // SAFETY: every array holds `rank` (strides: rank - 1) elements, as validated, and `raw`
        // is a properly aligned CUtensorMap the driver writes.
        let rc = unsafe {
            sys::cuTensorMapEncodeTiled(
                raw.as_mut_ptr(),
                dtype(self.dtype),
                rank as u32,
                self.global_address as *mut c_void,
                self.dims.as_ptr(),
                self.strides.as_ptr(),
                self.box_dims.as_ptr(),
                element_strides.as_ptr(),
                sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle(self.swizzle),
                sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            )
        };
        rc.result().map_err(cuda_err("cuTensorMapEncodeTiled"))?;
        // SAFETY: the driver initialised it (and it started zeroed).
        let raw = unsafe { raw.assume_init() };
        let mut map = PaTensorMap::default();
        map.opaque.copy_from_slice(&raw.opaque);
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_refused_before_the_driver_is_touched() {
        let d = TensorMapDesc::matrix(TmaDtype::F32, 0x1001, [8, 8], 32, [8, 8], TmaSwizzle::None);
        match d.encode_device() {
            Err(Error::InvalidTensorMap { field, .. }) => assert_eq!(field, "global_address"),
            other => panic!("expected InvalidTensorMap, got {other:?}"),
        }
    }

    #[test]
    fn without_a_driver_encoding_is_an_error_not_a_panic() {
        let d = TensorMapDesc::matrix(TmaDtype::F32, 0x1000, [8, 8], 32, [8, 8], TmaSwizzle::None);
        // With a driver (a GPU machine) this may succeed: the address is only encoded, never
        // dereferenced. Without one it must be NoDevice.
        match d.encode_device() {
            Ok(_) | Err(Error::NoDevice { .. }) | Err(Error::Cuda { .. }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
}
