//! The forward call on a device: the kernels for this device picked and loaded once, then any
//! number of asynchronous launches on any stream of the context.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, CudaView, CudaViewMut, DeviceRepr};

use crate::cuda::{launch, DeviceArgs, Gpu};
use crate::error::{Error, Result};
use crate::ffi::params::{PaAttnFwdParams, PaAttnFwdSm90Params};
use crate::plan::Plan;
use crate::registry::{KernelDtype, KernelInfo};
use crate::shape::AttnShape;
use crate::sm90::TensorMapDesc;

use super::configs::{
    path_for, picked_head_dims, select_forward, tile_shape, KernelChoice, FORWARD_PICKS,
};
use super::dtype::AttnDtype;
use super::path_kernel::PathKernel;
use super::prepare::{prepare_forward, ForwardCall, ListAddrs};
use super::prepare_sm90::prepare_forward_sm90;
use super::view::{RawView, View};

// SAFETY: a plain C struct of pointers, integers and floats laid out as in csrc/pa_params.h
// (bindgen layout tests check it), passed to the kernel by value.
unsafe impl DeviceRepr for PaAttnFwdParams {}
// SAFETY: as above; its tensor maps are 128 plain bytes each, and the struct's 64-byte alignment
// (cp.async.bulk.tensor's for a map) is the C struct's own.
unsafe impl DeviceRepr for PaAttnFwdSm90Params {}

/// A loaded forward kernel: its path decides its parameter struct.
type FwdKernel = PathKernel<PaAttnFwdParams, PaAttnFwdSm90Params>;

/// Inputs and outputs of one forward call on a device.
///
/// `q` is `[rows, n, q_heads, d]`, `k`/`v` `[rows, n, kv_heads, d]` (any strides that keep the
/// last dim contiguous and 16-byte aligned), `o` like `q` (written, must not overlap itself),
/// `lse` dense `[rows, q_heads, n]` f32.
pub struct DeviceTensors<'a, T> {
    pub q: View<CudaView<'a, T>>,
    pub k: View<CudaView<'a, T>>,
    pub v: View<CudaView<'a, T>>,
    pub o: View<CudaViewMut<'a, T>>,
    pub lse: CudaViewMut<'a, f32>,
}

/// The forward kernels of one device, ready to launch: for each dtype and head dim, the one the
/// kernel choice picks for this device.
pub struct Forward {
    ctx: Arc<CudaContext>,
    kernels: Vec<(KernelDtype, usize, FwdKernel)>,
}

impl Forward {
    /// The kernels the default choice picks for this device (attention::configs).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_choice(gpu, KernelChoice::default())
    }

    /// The kernels `choice` picks for this device; errors when it names a path or tile the device
    /// cannot run at any head dim.
    pub fn with_choice(gpu: &Gpu, choice: KernelChoice) -> Result<Self> {
        let best = gpu.arch()?;
        let mut kernels = Vec::new();
        for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
            for head_dim in picked_head_dims(FORWARD_PICKS) {
                let arch = choice
                    .arch
                    .unwrap_or_else(|| path_for(FORWARD_PICKS, best, head_dim));
                // A forced tile configuration need not exist at every head dim: calls at the
                // others are then errors (UnsupportedHeadDim), like any head dim without a kernel.
                let info = match select_forward(arch, dtype, head_dim, choice.tile, |k| gpu.runs(k))
                {
                    Ok(info) => info,
                    Err(_) if choice.tile.is_some() => continue,
                    Err(e) => return Err(e),
                };
                kernels.push((dtype, head_dim, FwdKernel::load(gpu, info)?));
            }
        }
        if kernels.is_empty() {
            return Err(Error::InvalidArgument {
                what: "kernel choice",
                detail: format!("{choice:?} picks no forward kernel this device runs"),
            });
        }
        Ok(Self {
            ctx: gpu.context().clone(),
            kernels,
        })
    }

    /// The kernel a call of this dtype and head dim runs (its registry entry says its path and
    /// tile).
    pub fn kernel_for(&self, dtype: KernelDtype, head_dim: usize) -> Result<&'static KernelInfo> {
        self.find(dtype, head_dim).map(|k| k.info())
    }

    fn find(&self, dtype: KernelDtype, head_dim: usize) -> Result<&FwdKernel> {
        self.kernels
            .iter()
            .find(|(d, h, _)| *d == dtype && *h == head_dim)
            .map(|(_, _, k)| k)
            .ok_or(Error::UnsupportedHeadDim { head_dim })
    }

    /// `O = softmax(scale * Q K^T) V` and LSE under `plan`'s mask, enqueued on `stream`.
    ///
    /// Asynchronous: no host synchronisation and no allocation. The plan must have been
    /// uploaded ([`Plan::on_device`]) to this device, with block lists at the kernel's tile.
    /// Errors: shape/plan mismatches, views that are too short, misaligned or self-overlapping
    /// (O), unsupported head dims, a scale that is not finite and positive, CUDA launch errors.
    pub fn run<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        t: DeviceTensors<'_, T>,
        scale: f32,
    ) -> Result<()> {
        let dev = plan.device().ok_or_else(|| Error::InvalidArgument {
            what: "plan",
            detail: "not uploaded to a device (use Plan::on_device or Plan::upload)".into(),
        })?;
        if !Arc::ptr_eq(stream.context(), &self.ctx) || dev.vis_end.context() != &self.ctx {
            return Err(Error::InvalidArgument {
                what: "stream / plan",
                detail: "belong to another CUDA context than the kernels".into(),
            });
        }
        let kernel = self.find(T::KERNEL_DTYPE, shape.head_dim)?;
        let info = kernel.info();
        let tile = tile_shape(info.tile.expect("forward kernels have tiles"));
        let mask = plan.mask(tile)?;
        let lists = &plan
            .device_mask(tile)?
            .expect("an uploaded plan has every tile's lists")
            .q_major;

        let DeviceTensors {
            q,
            k,
            v,
            mut o,
            mut lse,
        } = t;
        let mut args = DeviceArgs::new(stream);
        let vis_end = args.read(&dev.vis_end)?;
        let q_major = ListAddrs {
            offsets: args.read(&lists.offsets)?,
            entries: args.read(&lists.entries)?,
            order: args.read(&lists.order)?,
        };
        let raw = |len: usize, addr: u64, strides| RawView { len, addr, strides };
        let q = raw(q.data.len(), args.read(&q.data)?, q.strides);
        let k = raw(k.data.len(), args.read(&k.data)?, k.strides);
        let v = raw(v.data.len(), args.read(&v.data)?, v.strides);
        let o = raw(o.data.len(), args.write(&mut o.data)?, o.strides);
        let (lse_len, lse_addr) = (lse.len(), args.write(&mut lse)?);
        let call = ForwardCall {
            kernel: info,
            mask,
            q_major,
            vis_end,
            shape,
            dtype: T::KERNEL_DTYPE,
            q,
            k,
            v,
            o,
            lse_len,
            lse_addr,
            scale,
        };
        // SAFETY (both launches): the preparation checked that every view lies inside its buffer
        // and that O does not overlap itself; the plan arrays are the ones its lists index (built
        // from the same VisEnd); the tensor maps describe the checked Q, K and V views; all
        // buffers outlive the enqueue and `args` orders them on `stream` when it drops, after the
        // launch.
        match kernel {
            PathKernel::Sm80(k) => {
                let l = prepare_forward(&call)?;
                unsafe { launch(k, stream, &l.dims, &l.params) }
            }
            PathKernel::Sm90a(k) => {
                let l = prepare_forward_sm90(&call, TensorMapDesc::encode_device)?;
                unsafe { launch(k, stream, &l.dims, &l.params) }
            }
        }
    }
}
