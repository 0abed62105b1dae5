//! The element types the attention kernels take.

use half::{bf16, f16};

use crate::registry::KernelDtype;

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

/// bf16 or f16: 2-byte elements fed to the tensor cores; O is written in the same type.
pub trait AttnDtype: sealed::Sealed + Copy + Send + Sync + 'static {
    /// Short name used in kernel names and errors.
    const NAME: &'static str;
    /// The registry's name for it.
    const KERNEL_DTYPE: KernelDtype;
}

impl AttnDtype for bf16 {
    const NAME: &'static str = "bf16";
    const KERNEL_DTYPE: KernelDtype = KernelDtype::Bf16;
}

impl AttnDtype for f16 {
    const NAME: &'static str = "f16";
    const KERNEL_DTYPE: KernelDtype = KernelDtype::F16;
}
