//! A loaded kernel of either code path. The sm80 and sm90a kernels of one family take different
//! parameter structs, so a loaded kernel carries its path in its type: the forward, dK/dV and dQ
//! each hold one `PathKernel` of their two structs.

use cudarc::driver::CudaFunction;

use crate::cuda::{DeviceKernel, Gpu};
use crate::error::Result;
use crate::registry::{Arch, KernelInfo, KernelParams, KernelRef};

pub(crate) enum PathKernel<P80, P90> {
    Sm80(DeviceKernel<P80>),
    Sm90a(DeviceKernel<P90>),
}

impl<P80: KernelParams, P90: KernelParams> PathKernel<P80, P90> {
    /// Loads the registry entry `info` on `gpu` as the path the entry names (an error when the
    /// entry's parameter struct is not that path's, or the device cannot run it).
    pub(crate) fn load(gpu: &Gpu, info: &'static KernelInfo) -> Result<Self> {
        Ok(match info.arch {
            Arch::Sm80 => PathKernel::Sm80(gpu.load(KernelRef::new(info)?)?),
            Arch::Sm90a => PathKernel::Sm90a(gpu.load(KernelRef::new(info)?)?),
        })
    }
}

impl<P80, P90> PathKernel<P80, P90> {
    /// The loaded kernel's registry entry.
    pub(crate) fn info(&self) -> &'static KernelInfo {
        match self {
            PathKernel::Sm80(k) => k.kernel().info(),
            PathKernel::Sm90a(k) => k.kernel().info(),
        }
    }

    /// The loaded function, whichever path.
    pub(crate) fn function(&self) -> &CudaFunction {
        match self {
            PathKernel::Sm80(k) => k.function(),
            PathKernel::Sm90a(k) => k.function(),
        }
    }
}
