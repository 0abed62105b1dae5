//! Launch preparation shared by both executors. A call computes its parameter struct (from
//! csrc/pa_params.h) and its [`LaunchDims`] once; the GPU executor ([`crate::cuda`]) and the CPU
//! emulator ([`crate::emu`]) take exactly those, with the kernel as a
//! [`KernelRef`](crate::registry::KernelRef) from the registry. There is no second copy of launch
//! logic.

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub smem_bytes: u32,
}

impl LaunchDims {
    /// A one-dimensional grid of `ctas` blocks of `threads` threads.
    pub fn linear(ctas: u32, threads: u32, smem_bytes: u32) -> Self {
        Self {
            grid: [ctas, 1, 1],
            block: [threads, 1, 1],
            smem_bytes,
        }
    }
}

/// `pa_fill_u32`: writes one 32-bit pattern over a buffer (used to poison outputs).
pub struct FillU32;

impl FillU32 {
    /// The registered fill kernel.
    pub fn kernel() -> crate::Result<crate::registry::KernelRef<crate::ffi::params::PaFillParams>> {
        crate::registry::KernelRef::unique()
    }

    /// Threads per block of the fill (at most the kernel's registered block size).
    pub const THREADS: u32 = 256;

    /// Dims for filling `count` words: enough blocks to cover it, capped (the kernel strides).
    pub fn dims(count: usize) -> LaunchDims {
        let blocks = count.div_ceil(Self::THREADS as usize).clamp(1, 65_535) as u32;
        LaunchDims::linear(blocks, Self::THREADS, 0)
    }
}
