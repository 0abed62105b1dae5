//! The element types the attention kernels take.

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::reference::Element;
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

/// The element type of a call as a value: what [`AttnDtype`] says for typed buffers, what a call
/// given by addresses ([`super::raw`]) names, and what the error bounds ([`crate::bounds`]) round
/// to (P, O, dS and the gradients are rounded to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// bfloat16: 8 significant bits, f32's exponent range.
    Bf16,
    /// IEEE half: 11 significant bits, normals from 2^-14.
    F16,
}

impl Dtype {
    /// The dtype of `T` (`half::bf16` or `half::f16`).
    pub fn of<T: AttnDtype>() -> Self {
        // AttnDtype is sealed to bf16 and f16, whose registry names are these two.
        if T::KERNEL_DTYPE == KernelDtype::F16 {
            Dtype::F16
        } else {
            Dtype::Bf16
        }
    }

    /// The dtype of a kernel's registry entry; f32 and untyped kernels are not attention kernels.
    pub fn of_kernel(dtype: KernelDtype) -> Result<Self> {
        match dtype {
            KernelDtype::Bf16 => Ok(Dtype::Bf16),
            KernelDtype::F16 => Ok(Dtype::F16),
            KernelDtype::F32 => Err(Error::UnsupportedDtype {
                what: "attention",
                dtype: "f32",
            }),
            KernelDtype::None => Err(Error::UnsupportedDtype {
                what: "attention",
                dtype: "untyped",
            }),
        }
    }

    /// The registry's name for it.
    pub fn kernel_dtype(self) -> KernelDtype {
        match self {
            Dtype::Bf16 => KernelDtype::Bf16,
            Dtype::F16 => KernelDtype::F16,
        }
    }

    /// Its name, as in kernel names.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    /// Bytes per element (2 for both).
    pub fn bytes(self) -> usize {
        2
    }

    /// Unit roundoff (round to nearest): 2^-p for p significant bits, bf16 2^-8, f16 2^-11.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Dtype::Bf16 => 1.0 / 256.0,
            Dtype::F16 => 1.0 / 2048.0,
        }
    }

    /// Half the smallest positive subnormal: the absolute rounding error below the normal range
    /// (bf16 2^-134, sharing f32's range; f16 2^-25, subnormals spaced 2^-24).
    pub fn underflow(self) -> f64 {
        match self {
            Dtype::Bf16 => 2f64.powi(-134),
            Dtype::F16 => 2f64.powi(-25),
        }
    }

    /// `x` rounded to this dtype (round to nearest even).
    pub(crate) fn round(self, x: f64) -> f64 {
        match self {
            Dtype::Bf16 => half::bf16::from_f64(x).to_f64(),
            Dtype::F16 => half::f16::from_f64(x).to_f64(),
        }
    }

    /// The index and value of the first element of `x` that is not finite or not exactly a value
    /// of this dtype (a kernel would read a different number than the reference).
    pub(crate) fn first_unrepresentable<T: Element>(self, x: &[T]) -> Option<(usize, f64)> {
        x.iter()
            .map(|e| e.to_f64())
            .enumerate()
            .find(|&(_, v)| !v.is_finite() || self.round(v) != v)
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
