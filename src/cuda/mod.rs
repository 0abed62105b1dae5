//! The embedded kernels on a real device, through cudarc's driver API (loaded at run time, so the
//! crate links no CUDA library, unless another crate in the build makes cudarc link, as candle
//! does: docs/cuda-versions.md). Every failure is an [`Error`]: no nvcc at build time, no driver,
//! no device, or a driver error.
//!
//! - [`Gpu`]: one device with the fatbin loaded, its compute capability and shared-memory limit.
//! - [`launch`]: the one launch function, of a [`DeviceKernel`] ([`Gpu::load`] of a registry
//!   [`KernelRef`]).
//! - [`DeviceArgs`]: device addresses of a launch's buffers with cudarc's stream-ordering guards.

mod args;

use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute_enum;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr,
    LaunchConfig, PushKernelArg,
};

pub use args::DeviceArgs;

use crate::error::{Error, Result};
use crate::ffi::params::PaFillParams;
use crate::launch::{FillU32, LaunchDims};
use crate::registry::{Arch, KernelInfo, KernelParams, KernelRef};

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

/// A CUDA library that cudarc opens on first use when it loads at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CudaLib {
    /// libcuda (nvcuda on Windows): the driver API.
    Driver,
    /// libcublas.
    Cublas,
}

/// Whether `lib` opens under a name cudarc itself tries, so that cudarc's first call into it
/// finds it instead of panicking. cudarc has its own probe (`sys::is_culib_present`) only when it
/// loads at run time (`dynamic-loading`); when another crate in the build asks it for
/// `dynamic-linking` (candle-core does) the probe is gone and the library is a DT_NEEDED entry of
/// the executable, already loaded when this runs, so opening it again by its SONAME succeeds. The
/// names are a subset of cudarc 0.19's candidates (`get_lib_name_candidates`): a hit here is one
/// there too.
pub(crate) fn library_present(lib: CudaLib) -> bool {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    let stems: &[&str] = match lib {
        CudaLib::Driver => &["cuda", "nvcuda"],
        CudaLib::Cublas => &["cublas"],
    };
    // cudarc asks for `lib<name>.so.<major>` of its bindings' major version.
    let major = cudarc::driver::sys::CUDA_VERSION / 1000;
    let width = usize::BITS;
    stems.iter().any(|stem| {
        let mut names = vec![
            format!("{DLL_PREFIX}{stem}{DLL_SUFFIX}"),
            format!("{DLL_PREFIX}{stem}{width}_{major}{DLL_SUFFIX}"),
            format!("{DLL_PREFIX}{stem}{DLL_SUFFIX}.{major}"),
        ];
        names.extend(
            ["12", "11", "10", "9", "1"].map(|v| format!("{DLL_PREFIX}{stem}{DLL_SUFFIX}.{v}")),
        );
        names.iter().any(|name| {
            // SAFETY: opening a CUDA library runs no initialiser with preconditions (cudarc opens
            // the same files the same way); the handle is dropped at once, and a library the
            // process already holds stays loaded.
            unsafe { libloading::Library::new(name) }.is_ok()
        })
    })
}

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

/// Whether two handles name the same CUDA context. cudarc gives every `CudaContext::new` (and
/// every library that opens one, like candle) its own `Arc`, while the driver context underneath
/// is the device's one primary context: compare that, not the `Arc`.
pub fn same_context(a: &CudaContext, b: &CudaContext) -> bool {
    a.cu_ctx() == b.cu_ctx()
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

/// A registered kernel loaded on one device ([`Gpu::load`]): its function handle, allowed the
/// shared memory it needs, typed by its parameter struct.
pub struct DeviceKernel<P> {
    kernel: KernelRef<P>,
    func: CudaFunction,
}

impl<P> DeviceKernel<P> {
    pub fn kernel(&self) -> KernelRef<P> {
        self.kernel
    }

    pub(crate) fn function(&self) -> &CudaFunction {
        &self.func
    }
}

/// Launches `kernel` on `stream` with prepared dims and params. Asynchronous: no host sync.
///
/// # Safety
/// `params` must hold device pointers valid for what the kernel reads and writes, alive until the
/// launch completes (a [`DeviceArgs`] kept until this returns orders them on `stream`).
pub unsafe fn launch<P: KernelParams + DeviceRepr>(
    kernel: &DeviceKernel<P>,
    stream: &CudaStream,
    dims: &LaunchDims,
    params: &P,
) -> Result<()> {
    // SAFETY: forwarded to the caller.
    unsafe { launch_function(&kernel.func, stream, dims, params) }
}

/// [`launch`] of a loaded function whose parameter struct is `P` (the registry entry it was
/// loaded from says so).
///
/// # Safety
/// As [`launch`], and `func` must take a `P`.
pub(crate) unsafe fn launch_function<P: DeviceRepr>(
    func: &CudaFunction,
    stream: &CudaStream,
    dims: &LaunchDims,
    params: &P,
) -> Result<()> {
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
    compute_capability: (u32, u32),
    max_smem_optin: u32,
}

impl Gpu {
    /// Opens device `ordinal` and loads the embedded kernels. Returns `Err` (never panics) when
    /// the kernels were not built, the driver library is absent, or there is no such device.
    pub fn new(ordinal: usize) -> Result<Self> {
        let image = fatbin()?;
        // cudarc panics on first use when libcuda cannot be loaded: ask first.
        if !library_present(CudaLib::Driver) {
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
        Self::load_into(ctx, image)
    }

    /// The kernels loaded into a context the caller already has (candle's `CudaDevice`, a
    /// context opened by another library on the same device): the crate then runs on that
    /// context's streams. Errors as [`Gpu::new`].
    pub fn from_context(ctx: Arc<CudaContext>) -> Result<Self> {
        let image = fatbin()?;
        Self::load_into(ctx, image)
    }

    fn load_into(ctx: Arc<CudaContext>, image: &'static [u8]) -> Result<Self> {
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(image.to_vec()))
            .map_err(cuda_err("cuModuleLoadData (embedded fatbin)"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(cuda_err("cuDeviceGetAttribute (compute capability)"))?;
        let max_smem_optin = ctx
            .attribute(
                CUdevice_attribute_enum::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(cuda_err("cuDeviceGetAttribute (shared memory per block)"))?;
        Ok(Self {
            ctx,
            module,
            compute_capability: (major.max(0) as u32, minor.max(0) as u32),
            max_smem_optin: max_smem_optin.max(0) as u32,
        })
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> (u32, u32) {
        self.compute_capability
    }

    /// The fastest code path this device runs (sm90a on compute capability 9.0, else sm80).
    pub fn arch(&self) -> Result<Arch> {
        let (major, minor) = self.compute_capability;
        Arch::best_for(major, minor).ok_or_else(|| Error::NoDevice {
            reason: format!("compute capability {major}.{minor}: the kernels need 8.0 or newer"),
        })
    }

    /// The most dynamic shared memory one CTA may ask for on this device (opt-in limit).
    pub fn max_smem_per_block(&self) -> u32 {
        self.max_smem_optin
    }

    /// Whether this device can run `kernel` (its path and its shared memory).
    pub fn runs(&self, kernel: &KernelInfo) -> bool {
        let (major, minor) = self.compute_capability;
        kernel.arch.runs_on(major, minor) && kernel.smem_bytes <= self.max_smem_optin
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The context's default stream.
    pub fn default_stream(&self) -> Arc<CudaStream> {
        self.ctx.default_stream()
    }

    /// `kernel` loaded from the embedded module, ready to launch: allowed the dynamic shared
    /// memory its registry entry needs (over the 48 KiB default for the large attention tiles).
    /// Errors when this device cannot run it, or when it is a test-only kernel (those are in the
    /// test fatbin: [`Gpu::load_test`]).
    pub fn load<P>(&self, kernel: KernelRef<P>) -> Result<DeviceKernel<P>> {
        let info = kernel.info();
        if info.test_only {
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!(
                    "{} is a test-only kernel (csrc/test_registry.cuh): it is not in the shipped \
                     fatbin; the crate's tests load it from the test fatbin with Gpu::load_test",
                    info.name
                ),
            });
        }
        self.load_from(&self.module, kernel)
    }

    /// A test-only kernel (csrc/test_registry.cuh: probes, planted bugs) loaded from `image`, the
    /// test fatbin build.rs writes next to the shipped one (the crate's tests embed it with
    /// `include_bytes!(env!("PA_TEST_FATBIN"))`), ready to launch like [`Gpu::load`]'s.
    pub fn load_test<P>(&self, image: &[u8], kernel: KernelRef<P>) -> Result<DeviceKernel<P>> {
        if !kernel.info().test_only {
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!(
                    "{} is a shipped kernel: load it with Gpu::load",
                    kernel.info().name
                ),
            });
        }
        let module = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(image.to_vec()))
            .map_err(cuda_err("cuModuleLoadData (test fatbin)"))?;
        self.load_from(&module, kernel)
    }

    fn load_from<P>(
        &self,
        module: &Arc<CudaModule>,
        kernel: KernelRef<P>,
    ) -> Result<DeviceKernel<P>> {
        let info = kernel.info();
        if !self.runs(info) {
            let (major, minor) = self.compute_capability;
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!(
                    "{} ({} path, {} bytes of shared memory) does not run on this device \
                     (compute capability {major}.{minor}, {} bytes of shared memory per block)",
                    info.name, info.arch, info.smem_bytes, self.max_smem_optin
                ),
            });
        }
        let func = module
            .load_function(info.name)
            .map_err(cuda_err("cuModuleGetFunction"))?;
        if info.smem_bytes > 48 * 1024 {
            // cudarc's set_attribute does not make the context current (its other calls do):
            // bind it, so that this works on any thread, not only the one that opened the Gpu.
            self.ctx
                .bind_to_thread()
                .map_err(cuda_err("cuCtxSetCurrent"))?;
            func.set_attribute(
                cudarc::driver::sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                info.smem_bytes as i32,
            )
            .map_err(cuda_err("cuFuncSetAttribute (max dynamic shared memory)"))?;
        }
        Ok(DeviceKernel { kernel, func })
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
        let kernel = self.load(FillU32::kernel()?)?;
        let (ptr, _guard) = buf.device_ptr_mut(stream);
        let params = PaFillParams {
            out: ptr as *mut u32,
            count: count as i64,
            value,
            _pad0: 0,
        };
        // SAFETY: `out` covers `count` words of `buf`, which outlives the launch (the guard
        // records the write on `stream`).
        unsafe { launch(&kernel, stream, &FillU32::dims(count), &params) }
    }
}
