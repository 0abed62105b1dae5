//! Launch preparation shared by both executors. A call computes its parameter struct (from
//! csrc/pa_params.h) and its [`LaunchDims`] once; the GPU executor ([`crate::cuda`]) and the CPU
//! emulator take exactly those. There is no second copy of launch logic.

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub smem_bytes: u32,
}

/// A kernel of csrc/: the name it is exported under and the parameter struct it takes by value.
pub trait Kernel {
    /// The kernel's single by-value parameter (a struct from csrc/pa_params.h).
    type Params: Copy;
    /// The `extern "C"` symbol in the fatbin.
    const NAME: &'static str;
}

/// `pa_fill_u32`: writes one 32-bit pattern over a buffer (used to poison outputs).
pub struct FillU32;

impl Kernel for FillU32 {
    type Params = crate::ffi::params::PaFillParams;
    const NAME: &'static str = "pa_fill_u32";
}

impl FillU32 {
    /// Threads per block of the fill.
    pub const THREADS: u32 = 256;

    /// Dims for filling `count` words: enough blocks to cover it, capped (the kernel strides).
    pub fn dims(count: usize) -> LaunchDims {
        let blocks = count.div_ceil(Self::THREADS as usize).clamp(1, 65_535) as u32;
        LaunchDims {
            grid: [blocks, 1, 1],
            block: [Self::THREADS, 1, 1],
            smem_bytes: 0,
        }
    }
}
