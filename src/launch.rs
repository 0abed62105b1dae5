//! Launch preparation shared by both executors. A call computes its parameter struct (from
//! csrc/pa_params.h) and its [`LaunchDims`] once; the GPU executor ([`crate::cuda`]) and the CPU
//! emulator ([`crate::emu`]) take exactly those. There is no second copy of launch logic.

use core::ffi::c_int;

use crate::ffi::emu::{PaEmuLaunch, PaEmuReport};

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub smem_bytes: u32,
}

/// The host build of a kernel: `name_emu` from csrc/pa_emu.h, which runs a whole grid on the CPU
/// (see [`crate::emu::launch`]).
pub type EmuEntry<P> =
    unsafe extern "C" fn(*const PaEmuLaunch, *const P, *mut PaEmuReport) -> c_int;

/// A kernel of csrc/: the name it is exported under, the parameter struct it takes by value, and
/// its two builds (the fatbin symbol `NAME` for the GPU, [`Kernel::EMU`] for the emulator).
pub trait Kernel {
    /// The kernel's single by-value parameter (a struct from csrc/pa_params.h).
    type Params: Copy;
    /// The `extern "C"` symbol in the fatbin.
    const NAME: &'static str;
    /// The kernel's emulator entry (bindgen mirror of csrc/pa_emu.h).
    const EMU: EmuEntry<Self::Params>;
}

/// `pa_fill_u32`: writes one 32-bit pattern over a buffer (used to poison outputs).
pub struct FillU32;

impl Kernel for FillU32 {
    type Params = crate::ffi::params::PaFillParams;
    const NAME: &'static str = "pa_fill_u32";
    const EMU: EmuEntry<Self::Params> = crate::ffi::emu::pa_fill_u32_emu;
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
