//! The embedded kernels on a real device, through cudarc's driver API (loaded at run time: the
//! crate links no CUDA library). Every failure is an [`Error`]: no nvcc at build time, no driver,
//! no device, or a driver error.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr,
    LaunchConfig, PushKernelArg,
};

use crate::error::{Error, Result};
use crate::ffi::params::PaFillParams;
use crate::launch::{FillU32, Kernel, LaunchDims};

// SAFETY: plain C structs of integers and pointers, laid out as in csrc/pa_params.h (bindgen
// layout tests check it), passed to kernels by value.
unsafe impl DeviceRepr for PaFillParams {}

/// The command that gets nvcc 13.0 and points the build at it: scripts/get-nvcc.sh of this
/// crate's source (the README, CI and the GPU tests' skip messages use the same script), which
/// pip-installs the five pinned 13.0 packages and prints nvcc's path. Rebuild after running it.
pub const GET_NVCC: &str = concat!(
    "export NVCC=\"$(bash '",
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/get-nvcc.sh')\""
);

/// The fatbin nvcc built from csrc/, when it did.
#[cfg(pa_fatbin)]
fn fatbin() -> Result<&'static [u8]> {
    Ok(include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin")))
}

#[cfg(not(pa_fatbin))]
fn fatbin() -> Result<&'static [u8]> {
    Err(Error::KernelsNotBuilt {
        reason: env!("PA_NO_FATBIN_REASON").to_string(),
    })
}

/// Whether this build embeds the kernels.
pub fn kernels_built() -> bool {
    fatbin().is_ok()
}

pub(crate) fn cuda_err(call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda {
        call,
        detail: e.to_string(),
    }
}

/// Uploads `data` on `stream` for a kernel to read, as at least one element: a zero-byte device
/// allocation is an error on some drivers (cuMemAlloc documents CUDA_ERROR_INVALID_VALUE), while
/// an empty list is valid input (a batch whose tiles are all EMPTY has no block-list entries).
/// The extra element is `T::default()` and no kernel indexes it: the lengths that bound every
/// read come from other arrays (offsets, counts), not from this slice's length.
pub(crate) fn upload_for_kernel<T: DeviceRepr + Default>(
    stream: &Arc<CudaStream>,
    data: &[T],
    what: &'static str,
) -> Result<CudaSlice<T>> {
    let one = [T::default()];
    let src = if data.is_empty() { &one[..] } else { data };
    stream.clone_htod(src).map_err(cuda_err(what))
}

/// Launches `K` through `func` on `stream` with prepared dims and params (what [`Gpu::launch`]
/// does, for callers that hold function handles but no [`Gpu`]). Asynchronous: no host sync.
///
/// # Safety
/// As [`Gpu::launch`].
pub unsafe fn launch_kernel<K: Kernel>(
    func: &CudaFunction,
    stream: &CudaStream,
    dims: &LaunchDims,
    params: &K::Params,
) -> Result<()>
where
    K::Params: DeviceRepr,
{
    let cfg = LaunchConfig {
        grid_dim: (dims.grid[0], dims.grid[1], dims.grid[2]),
        block_dim: (dims.block[0], dims.block[1], dims.block[2]),
        shared_mem_bytes: dims.smem_bytes,
    };
    let mut args = stream.launch_builder(func);
    args.arg(params);
    // SAFETY: forwarded to the caller.
    unsafe { args.launch(cfg) }
        .map(|_| ())
        .map_err(cuda_err("cuLaunchKernel"))
}

/// One device with the kernels loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    module: Arc<CudaModule>,
}

impl Gpu {
    /// Opens device `ordinal` and loads the embedded kernels. Returns `Err` (never panics) when
    /// the kernels were not built, the driver library is absent, or there is no such device.
    pub fn new(ordinal: usize) -> Result<Self> {
        let image = fatbin()?;
        // cudarc panics on first use when libcuda cannot be loaded: ask first.
        // SAFETY: only probes for the shared library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::NoDevice {
                reason: "the CUDA driver library (libcuda) was not found".into(),
            });
        }
        let count = CudaContext::device_count().map_err(|e| Error::NoDevice {
            reason: format!("cuInit/cuDeviceGetCount failed: {e}"),
        })?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice {
                reason: format!("device {ordinal} requested, {count} present"),
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("cuCtx (CudaContext::new)"))?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(image.to_vec()))
            .map_err(cuda_err("cuModuleLoadData (embedded fatbin)"))?;
        Ok(Self { ctx, module })
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The context's default stream.
    pub fn default_stream(&self) -> Arc<CudaStream> {
        self.ctx.default_stream()
    }

    /// A kernel function of the embedded module, looked up by its exported name.
    pub fn function<K: Kernel>(&self) -> Result<CudaFunction> {
        self.module
            .load_function(K::NAME)
            .map_err(cuda_err("cuModuleGetFunction"))
    }

    /// A kernel function of the embedded module by its exported name (for kernels with several
    /// instantiations behind one [`Kernel`]).
    pub fn function_named(&self, name: &str) -> Result<CudaFunction> {
        self.module
            .load_function(name)
            .map_err(cuda_err("cuModuleGetFunction"))
    }

    /// Launches `K` on `stream` with prepared dims and params. Asynchronous: no host sync.
    ///
    /// # Safety
    /// `params` must hold device pointers valid for what the kernel reads and writes, alive
    /// until the launch completes.
    pub unsafe fn launch<K: Kernel>(
        &self,
        func: &CudaFunction,
        stream: &CudaStream,
        dims: &LaunchDims,
        params: &K::Params,
    ) -> Result<()>
    where
        K::Params: DeviceRepr,
    {
        // SAFETY: forwarded to the caller.
        unsafe { launch_kernel::<K>(func, stream, dims, params) }
    }

    /// Fills `buf` with `value` (a poison pattern, typically) on `stream`.
    pub fn fill_u32(
        &self,
        stream: &CudaStream,
        buf: &mut CudaSlice<u32>,
        value: u32,
    ) -> Result<()> {
        let count = buf.len();
        if count > i64::MAX as usize {
            return Err(Error::IndexOverflow {
                what: "fill length",
                value: count as u128,
            });
        }
        let func = self.function::<FillU32>()?;
        let (ptr, _guard) = buf.device_ptr_mut(stream);
        let params = PaFillParams {
            out: ptr as *mut u32,
            count: count as i64,
            value,
            _pad0: 0,
        };
        // SAFETY: `out` covers `count` words of `buf`, which outlives the launch (the guard
        // records the write on `stream`).
        unsafe { self.launch::<FillU32>(&func, stream, &FillU32::dims(count), &params) }
    }
}
