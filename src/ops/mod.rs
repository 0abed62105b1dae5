//! Layer pieces beside attention, for trainers and for the bench's MLP and attention layer:
//!
//! - [`swiglu`]: the SwiGLU activation kernel (`silu(gate) * up`), bf16 / f16;
//! - [`rotary`]: the rotary-embedding kernel with the layout's position ids, and its inverse
//!   (which is also its backward), bf16 / f16;
//! - [`gemm`]: row-major bf16 GEMMs through cuBLAS (loaded at run time; a missing libcublas is
//!   [`crate::Error::LibraryNotFound`]).
//!
//! Each kernel module holds everything of its kernel: its registry lookup, the launch preparation
//! shared by the device and the emulator, and both executors.

pub mod gemm;
pub mod rotary;
pub mod swiglu;

use crate::registry::KernelDtype;

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

/// The 16-bit element types the layer kernels are instantiated for.
pub trait LayerDtype:
    crate::emu::Element + crate::reference::Element + cudarc::driver::DeviceRepr + sealed::Sealed
{
    /// The registry's name for it (the kernels' instantiation).
    const DTYPE: KernelDtype;
    /// Index of the instantiation in executors that hold one function per type.
    #[doc(hidden)]
    const INDEX: usize;
}

impl LayerDtype for half::bf16 {
    const DTYPE: KernelDtype = KernelDtype::Bf16;
    const INDEX: usize = 0;
}

impl LayerDtype for half::f16 {
    const DTYPE: KernelDtype = KernelDtype::F16;
    const INDEX: usize = 1;
}

/// A buffer as the launch preparation sees it: address of element 0 (device or host) and
/// length in elements.
#[derive(Debug, Clone, Copy)]
pub struct RawBuf {
    pub addr: u64,
    pub len: usize,
}

impl RawBuf {
    pub fn of<T>(s: &[T]) -> Self {
        RawBuf {
            addr: s.as_ptr() as usize as u64,
            len: s.len(),
        }
    }
}
