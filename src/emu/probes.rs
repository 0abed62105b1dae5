//! The test and probe kernels of csrc/test_kernels/ (emu_*.cuh, probe_*.cuh): kernels that exist
//! to test the emulator and the intrinsics layer, registered in the test-only list
//! csrc/test_registry.cuh: in the emulator and in the test fatbin (`Gpu::load_test`), never in the
//! fatbin a `Gpu` loads.
//! Their parameter structs come from csrc/pa_test_params.h through [`crate::ffi::emu`]; each
//! kernel's launch shape is fixed by its header comment and given here as `dims`.

use cudarc::driver::DeviceRepr;

use crate::error::Result;
use crate::ffi::emu::*;
use crate::launch::LaunchDims;
use crate::registry::{self, KernelDtype, KernelRef};

macro_rules! kernel {
    ($(#[$doc:meta])* $ty:ident, $params:ty) => {
        $(#[$doc])*
        pub struct $ty;
        impl $ty {
            /// The registered kernel (the one that takes its parameter struct).
            pub fn kernel() -> Result<KernelRef<$params>> {
                KernelRef::unique()
            }
        }
        // SAFETY: plain C struct of integers and pointers (bindgen layout tests check it),
        // passed to the kernel by value.
        unsafe impl DeviceRepr for $params {}
    };
}

kernel!(
    /// `emu_gemm_tile`: a 64x64x64 bf16 tile GEMM via cp.async, ldmatrix and mma, then a row
    /// softmax via shuffles.
    EmuGemmTile,
    PaEmuGemmTileParams
);
kernel!(
    /// `emu_planted`: one deliberate bug per `PA_EMU_PLANTED_*` mode.
    EmuPlanted,
    PaEmuPlantedParams
);
kernel!(
    /// `probe_shfl`: every shuffle case per thread.
    ProbeShfl,
    PaProbeShflParams
);
kernel!(
    /// `probe_ldmatrix`: all six ldmatrix forms over per-lane row addresses.
    ProbeLdmatrix,
    PaProbeLdmatrixParams
);
kernel!(
    /// `probe_mma`: one m16n8k16 per warp, fragments gathered from global by the PTX layout.
    ProbeMma,
    PaProbeMmaParams
);
kernel!(
    /// `probe_cp_async`: three commit groups per thread, completed one wait_group at a time.
    ProbeCpAsync,
    PaProbeCpAsyncParams
);
kernel!(
    /// `probe_convert`: 16-bit conversions, packing, exp2_fast, float atomics.
    ProbeConvert,
    PaProbeConvertParams
);
kernel!(
    /// `probe_log2`: log2_fast element-wise.
    ProbeLog2,
    PaProbeLog2Params
);

kernel!(
    /// `probe_sm90_sync`: mbarrier phases, arrival counts, a producer/consumer ring over
    /// mbarriers, named barriers.
    ProbeSm90Sync,
    PaProbeSm90SyncParams
);
kernel!(
    /// `probe_sm90_tma`: one TMA box per CTA, copied back raw.
    ProbeSm90Tma,
    PaProbeSm90TmaParams
);
kernel!(
    /// `probe_sm90_wgmma`: chains of wgmma.m64nNk16 on test-made shared-memory images.
    ProbeSm90Wgmma,
    PaProbeSm90WgmmaParams
);
kernel!(
    /// `probe_sm90_pipeline`: a TMA + mbarrier ring feeding wgmma, the attention skeleton.
    ProbeSm90Pipeline,
    PaProbeSm90PipelineParams
);
kernel!(
    /// `emu_planted_sm90`: one deliberate bug per `PA_SM90_PLANTED_*` mode.
    EmuPlantedSm90,
    PaEmuPlantedSm90Params
);

/// `probe_tile_{bf16,f16}`: every tile-layer operation on 64 x 64 tiles, two warps of 32 rows.
pub struct ProbeTile;

// SAFETY: plain C struct of integers and pointers (bindgen layout tests check it), passed to the
// kernel by value.
unsafe impl DeviceRepr for PaProbeTileParams {}

impl ProbeTile {
    /// The instantiation for f16 (`true`) or bf16 inputs.
    pub fn kernel(f16: bool) -> Result<KernelRef<PaProbeTileParams>> {
        let dtype = if f16 {
            KernelDtype::F16
        } else {
            KernelDtype::Bf16
        };
        let info = registry::family("probe_tile")
            .find(|k| k.dtype == dtype)
            .ok_or_else(|| crate::Error::InvalidArgument {
                what: "kernel",
                detail: format!("no probe_tile for {dtype:?} in the registry"),
            })?;
        KernelRef::new(info)
    }

    /// One CTA of two warps, its 64 x 64 tiles in shared memory (the registry's size).
    pub fn dims() -> Result<LaunchDims> {
        let k = Self::kernel(false)?.info();
        Ok(dims(1, k.threads, k.smem_bytes))
    }
}

fn dims(grid: u32, block: u32, smem_bytes: u32) -> LaunchDims {
    LaunchDims::linear(grid, block, smem_bytes)
}

impl EmuGemmTile {
    /// One CTA of 128 threads, both 64x64 bf16 operand tiles in shared memory.
    pub fn dims() -> LaunchDims {
        dims(1, 128, 2 * 64 * 64 * 2)
    }
}

impl EmuPlanted {
    /// One CTA of `count` threads (a multiple of 32), one smem word each.
    pub fn dims(count: u32) -> LaunchDims {
        dims(1, count, count * 4)
    }
}

impl ProbeShfl {
    /// `ctas` CTAs of `threads` threads (whole warps).
    pub fn dims(ctas: u32, threads: u32) -> LaunchDims {
        dims(ctas, threads, 0)
    }
}

impl ProbeLdmatrix {
    /// One CTA of two warps and the probe's rows of shared memory.
    pub fn dims() -> LaunchDims {
        dims(1, 64, PA_PROBE_LDMATRIX_ROWS * 16)
    }
}

impl ProbeMma {
    /// Two warps (tiles) per CTA, enough CTAs for `tiles`.
    pub fn dims(tiles: u32) -> LaunchDims {
        dims(tiles.div_ceil(2), 64, 0)
    }
}

impl ProbeCpAsync {
    /// One CTA of 128 threads, three stages of 128 16-byte chunks.
    pub fn dims() -> LaunchDims {
        dims(1, 128, 3 * 128 * 16)
    }
}

impl ProbeConvert {
    /// A small grid that strides over the elements.
    pub fn dims(count: usize) -> LaunchDims {
        dims((count.div_ceil(128)).clamp(1, 8) as u32, 128, 0)
    }
}

impl ProbeLog2 {
    /// A small grid that strides over the elements.
    pub fn dims(count: usize) -> LaunchDims {
        dims((count.div_ceil(128)).clamp(1, 8) as u32, 128, 0)
    }
}

impl ProbeSm90Sync {
    /// One CTA of 256 threads.
    pub fn dims() -> LaunchDims {
        dims(1, 256, 1024)
    }
}

impl ProbeSm90Tma {
    /// One CTA of 128 threads per box, room for the box at a 1 KiB aligned address.
    pub fn dims(count: u32, box_bytes: u32) -> LaunchDims {
        dims(count, 128, box_bytes + 1024 + 128)
    }
}

impl ProbeSm90Wgmma {
    /// One warpgroup per case.
    pub fn dims(cases: u32) -> LaunchDims {
        dims(cases, 128, PA_PROBE_WGMMA_SMEM)
    }
}

impl ProbeSm90Pipeline {
    /// One CTA: a producer warpgroup and a consumer warpgroup.
    pub fn dims() -> LaunchDims {
        dims(1, 256, PA_PROBE_PIPE_SMEM)
    }
}

impl EmuPlantedSm90 {
    /// One CTA of 256 threads.
    pub fn dims() -> LaunchDims {
        dims(1, 256, PA_SM90_PLANTED_SMEM)
    }
}
