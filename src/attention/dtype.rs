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

/// The element type of a call given by addresses ([`super::raw`]): what [`AttnDtype`] says for
/// typed buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bf16,
    F16,
}

impl Dtype {
    /// The registry's name for it.
    pub fn kernel_dtype(self) -> KernelDtype {
        match self {
            Dtype::Bf16 => KernelDtype::Bf16,
            Dtype::F16 => KernelDtype::F16,
        }
    }

    /// Bytes per element (2 for both).
    pub fn bytes(self) -> usize {
        2
    }

    /// The dtype of `T`.
    pub fn of<T: AttnDtype>() -> Self {
        // AttnDtype is sealed to bf16 and f16, whose registry names are these two.
        if T::KERNEL_DTYPE == KernelDtype::F16 {
            Dtype::F16
        } else {
            Dtype::Bf16
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        })
    }
}
