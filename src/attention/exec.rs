//! The executor seam: where a prepared launch runs. Every attention call — on a device through
//! cudarc buffers, on a device through raw addresses and a borrowed stream, or on the CPU
//! emulator — goes through the same preparation ([`super::call`]); only these four things differ,
//! so only they are written per executor:
//!
//! - where the plan's arrays are (the host lists, or their upload in the stream's context);
//! - how a tensor map is encoded (by the driver, or for the emulator);
//! - how a prepared kernel is launched (a loaded function on a stream, or the emulator).

use std::sync::Arc;

use cudarc::driver::{sys, CudaContext, CudaFunction, CudaStream, DeviceRepr};

use crate::cuda::{cuda_err, launch_function, same_context, DeviceArgs};
use crate::emu::{self, Options, Stats};
use crate::error::{Error, Result};
use crate::launch::LaunchDims;
use crate::mask::TileShape;
use crate::plan::{DeviceLists, DevicePlan, Plan};
use crate::registry::{KernelInfo, KernelParams, KernelRef};
use crate::sm90::{PaTensorMap, TensorMapDesc};

use super::checks::ListAddrs;

/// Which of a tile shape's two list directions a kernel walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Per q tile, its k tiles (forward, dQ).
    QMajor,
    /// Per k tile, its q tiles (dK/dV).
    KMajor,
}

/// What differs between running a prepared attention call on a device and on the emulator.
pub(crate) trait Executor {
    /// The address of the plan's `vis_end` as the kernels read it.
    fn vis_end(&mut self, plan: &Plan) -> Result<u64>;

    /// The addresses of the plan's lists at `tile` in direction `dir`.
    fn lists(&mut self, plan: &Plan, tile: TileShape, dir: Direction) -> Result<ListAddrs>;

    /// A tensor map in the encoding this executor's kernels read.
    fn encode(&self, desc: &TensorMapDesc) -> Result<PaTensorMap>;

    /// Runs (device: enqueues) one prepared launch.
    ///
    /// # Safety
    /// `params` must hold addresses valid for what the kernel reads and writes, in this
    /// executor's address space, until the launch completes.
    unsafe fn launch<P: KernelParams + DeviceRepr>(
        &mut self,
        kernel: KernelRef<P>,
        dims: &LaunchDims,
        params: &P,
    ) -> Result<()>;
}

/// The loaded functions a device executor may launch ([`super::Forward`], [`super::Backward`]).
pub(crate) trait LoadedKernels {
    /// The function loaded from `info`'s registry entry, if this set loaded it.
    fn function(&self, info: &'static KernelInfo) -> Option<&CudaFunction>;
}

/// A device: kernels loaded in one context, a stream of that context, the plan's arrays in that
/// context, and the stream-ordering guards of every cudarc buffer the launches take (held until
/// the executor drops, after the launches are enqueued).
pub(crate) struct DeviceExec<'a> {
    stream: &'a CudaStream,
    kernels: &'a dyn LoadedKernels,
    plan: &'a DevicePlan,
    args: DeviceArgs<'a>,
}

impl<'a> DeviceExec<'a> {
    pub(crate) fn new(
        stream: &'a CudaStream,
        kernels: &'a dyn LoadedKernels,
        plan: &'a DevicePlan,
    ) -> Self {
        Self {
            stream,
            kernels,
            plan,
            args: DeviceArgs::new(stream),
        }
    }
}

impl Executor for DeviceExec<'_> {
    fn vis_end(&mut self, _plan: &Plan) -> Result<u64> {
        let dev = self.plan;
        self.args.read(&dev.vis_end)
    }

    fn lists(&mut self, plan: &Plan, tile: TileShape, dir: Direction) -> Result<ListAddrs> {
        let dev = self.plan;
        let mask = &dev.masks[plan.index(tile)?];
        let l: &DeviceLists = match dir {
            Direction::QMajor => &mask.q_major,
            Direction::KMajor => &mask.k_major,
        };
        Ok(ListAddrs {
            offsets: self.args.read(&l.offsets)?,
            runs: self.args.read(&l.runs)?,
            order: self.args.read(&l.order)?,
        })
    }

    fn encode(&self, desc: &TensorMapDesc) -> Result<PaTensorMap> {
        desc.encode_device()
    }

    unsafe fn launch<P: KernelParams + DeviceRepr>(
        &mut self,
        kernel: KernelRef<P>,
        dims: &LaunchDims,
        params: &P,
    ) -> Result<()> {
        let func = self
            .kernels
            .function(kernel.info())
            .ok_or_else(|| Error::InvalidArgument {
                what: "kernel",
                detail: format!("{} was prepared but not loaded", kernel.name()),
            })?;
        // SAFETY: the function was loaded from the registry entry that `KernelRef<P>` checked
        // takes a `P`; the addresses are the caller's promise.
        unsafe { launch_function(func, self.stream, dims, params) }
    }
}

/// The CPU emulator: host addresses, emulator-encoded tensor maps, each launch run to completion
/// under `options`; `stats` adds up what every launch counted.
pub(crate) struct EmuExec {
    options: Options,
    pub(crate) stats: Stats,
}

impl EmuExec {
    pub(crate) fn new(options: Options) -> Self {
        Self {
            options,
            stats: Stats::default(),
        }
    }
}

fn host_addr(s: &[i32]) -> u64 {
    s.as_ptr() as usize as u64
}

impl Executor for EmuExec {
    fn vis_end(&mut self, plan: &Plan) -> Result<u64> {
        Ok(host_addr(plan.vis_end().as_slice()))
    }

    fn lists(&mut self, plan: &Plan, tile: TileShape, dir: Direction) -> Result<ListAddrs> {
        let m = plan.mask(tile)?;
        let l = match dir {
            Direction::QMajor => m.q_major(),
            Direction::KMajor => m.k_major(),
        };
        // An empty array's address is still a valid one (the kernels never read it: every slot
        // of an all-padding batch has an empty list).
        Ok(ListAddrs {
            offsets: host_addr(l.offsets),
            runs: host_addr(l.runs),
            order: host_addr(l.order),
        })
    }

    fn encode(&self, desc: &TensorMapDesc) -> Result<PaTensorMap> {
        desc.encode_emulator()
    }

    unsafe fn launch<P: KernelParams + DeviceRepr>(
        &mut self,
        kernel: KernelRef<P>,
        dims: &LaunchDims,
        params: &P,
    ) -> Result<()> {
        // SAFETY: forwarded to the caller (host addresses).
        let s = unsafe { emu::launch(kernel, dims, params, self.options)? };
        self.stats = Stats {
            ctas: self.stats.ctas + s.ctas,
            barriers: self.stats.barriers + s.barriers,
            collectives: self.stats.collectives + s.collectives,
            fiber_switches: self.stats.fiber_switches + s.fiber_switches,
        };
        Ok(())
    }
}

/// `what` (a stream, a workspace) is in the kernels' context `ours`, or the typed error.
pub(crate) fn check_context(
    ours: &CudaContext,
    theirs: &CudaContext,
    what: &'static str,
) -> Result<()> {
    if same_context(ours, theirs) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            what,
            detail: "belongs to another CUDA context than the kernels (load them with \
                     Gpu::from_context on its context)"
                .into(),
        })
    }
}

/// A stream handle of another library as a cudarc stream of `ctx`, after checking with the
/// driver that it belongs to `ctx` (the legacy default stream 0 and the per-thread stream are
/// `ctx`'s once it is current).
///
/// # Safety
/// `stream` must be a valid stream handle that outlives the returned wrapper's work.
pub(crate) unsafe fn borrow_stream(
    ctx: &Arc<CudaContext>,
    stream: sys::CUstream,
) -> Result<Arc<CudaStream>> {
    ctx.bind_to_thread().map_err(cuda_err("cuCtxSetCurrent"))?;
    let mut owner: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: `stream` is a valid handle (caller); `owner` is a valid out pointer.
    unsafe { sys::cuStreamGetCtx(stream, &mut owner) }
        .result()
        .map_err(cuda_err("cuStreamGetCtx (the raw entry's stream)"))?;
    if owner != ctx.cu_ctx() {
        return Err(Error::InvalidArgument {
            what: "stream",
            detail: "belongs to another CUDA context than the kernels (load them with \
                     Gpu::from_context on its context)"
                .into(),
        });
    }
    // SAFETY: the stream is valid (caller) and belongs to `ctx` (checked); the wrapper does not
    // destroy it; ordering with the stream's owner is the raw entry's contract.
    Ok(unsafe { ctx.wrap_borrowed_stream(stream) })
}
