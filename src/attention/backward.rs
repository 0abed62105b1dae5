//! The backward call on a device: the kernels for this device picked and loaded once, then any
//! number of asynchronous calls (three launches each: preprocess, dK/dV, dQ) on any stream of
//! the context.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, CudaView, CudaViewMut, DeviceRepr};

use crate::cuda::{launch, DeviceArgs, DeviceKernel, Gpu};
use crate::error::{Error, Result};
use crate::ffi::params::{
    PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params, PaAttnBwdDqParams, PaAttnBwdDqSm90Params,
    PaAttnBwdPreParams,
};
use crate::plan::Plan;
use crate::registry::{KernelDtype, KernelInfo, KernelRef};
use crate::shape::AttnShape;
use crate::sm90::TensorMapDesc;

use super::backward_prepare::{prepare_backward, BackwardCall, DkvLaunch, DqLaunch};
use super::checks::ListAddrs;
use super::configs::{
    path_for, picked_head_dims, select_backward, tile_shape, BackwardChoice, BackwardKernels,
    BACKWARD_PICKS,
};
use super::dtype::AttnDtype;
use super::path_kernel::PathKernel;
use super::view::{RawView, View};
use super::workspace::BackwardWorkspace;

// SAFETY: plain C structs of pointers, integers and floats laid out as in csrc/pa_params.h
// (bindgen layout tests check them), passed to the kernels by value.
unsafe impl DeviceRepr for PaAttnBwdPreParams {}
unsafe impl DeviceRepr for PaAttnBwdDkvParams {}
unsafe impl DeviceRepr for PaAttnBwdDqParams {}
unsafe impl DeviceRepr for PaAttnBwdDqSm90Params {}
unsafe impl DeviceRepr for PaAttnBwdDkvSm90Params {}

/// Inputs and outputs of one backward call on a device.
///
/// `q`, `o`, `d_o` and `dq` are `[rows, n, q_heads, d]`, `k`, `v`, `dk` and `dv`
/// `[rows, n, kv_heads, d]` (any strides that keep the last dim contiguous and 16-byte aligned);
/// `o` and `lse` (dense `[rows, q_heads, n]` f32, natural log) are what the forward wrote. `dq`,
/// `dk` and `dv` are written (every element, zeros where there is no gradient) and must not
/// overlap themselves or any other view.
pub struct BackwardTensors<'a, T> {
    pub q: View<CudaView<'a, T>>,
    pub k: View<CudaView<'a, T>>,
    pub v: View<CudaView<'a, T>>,
    pub o: View<CudaView<'a, T>>,
    pub lse: CudaView<'a, f32>,
    pub d_o: View<CudaView<'a, T>>,
    pub dq: View<CudaViewMut<'a, T>>,
    pub dk: View<CudaViewMut<'a, T>>,
    pub dv: View<CudaViewMut<'a, T>>,
}

/// A loaded dQ kernel of either path (their parameter structs differ).
type DqKernel = PathKernel<PaAttnBwdDqParams, PaAttnBwdDqSm90Params>;

/// A loaded dK/dV kernel of either path (their parameter structs differ).
type DkvKernel = PathKernel<PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params>;

/// The three kernels of one (dtype, head dim), loaded.
struct Loaded {
    dtype: KernelDtype,
    head_dim: usize,
    pre: DeviceKernel<PaAttnBwdPreParams>,
    dkv: DkvKernel,
    dq: DqKernel,
}

/// The backward kernels of one device, ready to launch: for each dtype and head dim, the ones the
/// kernel choice picks for this device.
pub struct Backward {
    ctx: Arc<CudaContext>,
    kernels: Vec<Loaded>,
}

impl Backward {
    /// The kernels the default choice picks for this device (attention::configs).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Self::with_choice(gpu, BackwardChoice::default())
    }

    /// The kernels `choice` picks for this device; errors when it names a path or tile the device
    /// cannot run.
    pub fn with_choice(gpu: &Gpu, choice: BackwardChoice) -> Result<Self> {
        let best = gpu.arch()?;
        let mut kernels = Vec::new();
        for dtype in [KernelDtype::Bf16, KernelDtype::F16] {
            for head_dim in picked_head_dims(BACKWARD_PICKS) {
                let arch = choice
                    .arch
                    .unwrap_or_else(|| path_for(BACKWARD_PICKS, best, head_dim));
                let ks = select_backward(arch, dtype, head_dim, &choice, |k| gpu.runs(k))?;
                kernels.push(Loaded {
                    dtype,
                    head_dim,
                    pre: gpu.load(KernelRef::new(ks.pre)?)?,
                    dkv: DkvKernel::load(gpu, ks.dkv)?,
                    dq: DqKernel::load(gpu, ks.dq)?,
                });
            }
        }
        Ok(Self {
            ctx: gpu.context().clone(),
            kernels,
        })
    }

    fn find(&self, dtype: KernelDtype, head_dim: usize) -> Result<&Loaded> {
        self.kernels
            .iter()
            .find(|k| k.dtype == dtype && k.head_dim == head_dim)
            .ok_or(Error::UnsupportedHeadDim { head_dim })
    }

    /// The kernels a call of this dtype and head dim runs (their registry entries say their tiles).
    pub fn kernels_for(&self, dtype: KernelDtype, head_dim: usize) -> Result<BackwardKernels> {
        let k = self.find(dtype, head_dim)?;
        Ok(BackwardKernels {
            pre: k.pre.kernel().info(),
            dkv: k.dkv.info(),
            dq: k.dq.info(),
        })
    }

    /// dQ, dK and dV of `O = softmax(scale * Q K^T) V` under `plan`'s mask given dO, enqueued on
    /// `stream` (three kernels; `scale` must be the forward's).
    ///
    /// Asynchronous: no host synchronisation and no allocation; `workspace` must
    /// [fit](BackwardWorkspace::fits) the shape and must not be used by another call until this
    /// one's kernels ran (calls on one stream are ordered). The plan must have been uploaded to
    /// this device. Deterministic: the same inputs give the same bits, run after run.
    /// Errors: as [`super::Forward::run`], plus a workspace too small, and written views that
    /// may overlap any other view.
    pub fn run<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        t: BackwardTensors<'_, T>,
        workspace: &mut BackwardWorkspace,
        scale: f32,
    ) -> Result<()> {
        let dev = plan.device().ok_or_else(|| Error::InvalidArgument {
            what: "plan",
            detail: "not uploaded to a device (use Plan::on_device or Plan::upload)".into(),
        })?;
        if !Arc::ptr_eq(stream.context(), &self.ctx)
            || dev.vis_end.context() != &self.ctx
            || workspace.lse_log2.context() != &self.ctx
        {
            return Err(Error::InvalidArgument {
                what: "stream / plan / workspace",
                detail: "belong to another CUDA context than the kernels".into(),
            });
        }
        let loaded = self.find(T::KERNEL_DTYPE, shape.head_dim)?;
        let tile = |k: &KernelInfo| tile_shape(k.tile.expect("tiled backward kernel"));
        let (dkv_info, dq_info) = (loaded.dkv.info(), loaded.dq.info());
        let dkv_mask = plan.mask(tile(dkv_info))?;
        let dq_mask = plan.mask(tile(dq_info))?;
        let k_lists = &plan
            .device_mask(tile(dkv_info))?
            .expect("an uploaded plan has every tile's lists")
            .k_major;
        let q_lists = &plan
            .device_mask(tile(dq_info))?
            .expect("an uploaded plan has every tile's lists")
            .q_major;

        let BackwardTensors {
            q,
            k,
            v,
            o,
            lse,
            d_o,
            mut dq,
            mut dk,
            mut dv,
        } = t;
        let ws_len = workspace.len();
        let BackwardWorkspace { lse_log2, delta } = workspace;
        let mut args = DeviceArgs::new(stream);
        let vis_end = args.read(&dev.vis_end)?;
        let k_major = ListAddrs {
            offsets: args.read(&k_lists.offsets)?,
            entries: args.read(&k_lists.entries)?,
            order: args.read(&k_lists.order)?,
        };
        let q_major = ListAddrs {
            offsets: args.read(&q_lists.offsets)?,
            entries: args.read(&q_lists.entries)?,
            order: args.read(&q_lists.order)?,
        };
        let raw = |len: usize, addr: u64, strides| RawView { len, addr, strides };
        let q = raw(q.data.len(), args.read(&q.data)?, q.strides);
        let k = raw(k.data.len(), args.read(&k.data)?, k.strides);
        let v = raw(v.data.len(), args.read(&v.data)?, v.strides);
        let o = raw(o.data.len(), args.read(&o.data)?, o.strides);
        let d_o = raw(d_o.data.len(), args.read(&d_o.data)?, d_o.strides);
        let dq = raw(dq.data.len(), args.write(&mut dq.data)?, dq.strides);
        let dk = raw(dk.data.len(), args.write(&mut dk.data)?, dk.strides);
        let dv = raw(dv.data.len(), args.write(&mut dv.data)?, dv.strides);
        let (lse_len, lse_addr) = (lse.len(), args.read(&lse)?);
        let ws_lse_log2 = args.write(lse_log2)?;
        let ws_delta = args.write(delta)?;
        let launch_ = prepare_backward(
            &BackwardCall {
                kernels: BackwardKernels {
                    pre: loaded.pre.kernel().info(),
                    dkv: dkv_info,
                    dq: dq_info,
                },
                dkv_mask,
                k_major,
                dq_mask,
                q_major,
                vis_end,
                shape,
                dtype: T::KERNEL_DTYPE,
                q,
                k,
                v,
                o,
                d_o,
                dq,
                dk,
                dv,
                lse_len,
                lse_addr,
                ws_len,
                ws_lse_log2,
                ws_delta,
                scale,
            },
            TensorMapDesc::encode_device,
        )?;
        // The dK/dV and dQ launches were prepared from the loaded kernels' registry entries, so
        // their paths agree; checked before anything is enqueued, so a mismatch cannot leave
        // half a call.
        let same_dkv_path = matches!(
            (&loaded.dkv, &launch_.dkv),
            (DkvKernel::Sm80(_), DkvLaunch::Sm80(_)) | (DkvKernel::Sm90a(_), DkvLaunch::Sm90a(_))
        );
        if !same_dkv_path {
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!("{} was prepared for another path", dkv_info.name),
            });
        }
        let same_path = matches!(
            (&loaded.dq, &launch_.dq),
            (DqKernel::Sm80(_), DqLaunch::Sm80(_)) | (DqKernel::Sm90a(_), DqLaunch::Sm90a(_))
        );
        if !same_path {
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!("{} was prepared for another path", dq_info.name),
            });
        }
        // SAFETY: prepare_backward checked every view against its buffer, that dQ, dK and dV do
        // not overlap themselves, each other or the inputs, and that the workspace holds the
        // shape's [rows, q_heads, n_pad] arrays; the plan arrays are the ones its lists index; the
        // sm90a kernels' tensor maps describe the checked Q, dO, K and V views.
        // All buffers outlive the enqueues, and `args` orders them on `stream` when it drops,
        // after the three launches, which the stream runs in order.
        unsafe {
            launch(&loaded.pre, stream, &launch_.pre.dims, &launch_.pre.params)?;
            match (&loaded.dkv, &launch_.dkv) {
                (DkvKernel::Sm80(k), DkvLaunch::Sm80(l)) => launch(k, stream, &l.dims, &l.params)?,
                (DkvKernel::Sm90a(k), DkvLaunch::Sm90a(l)) => {
                    launch(k, stream, &l.dims, &l.params)?
                }
                _ => {} // excluded above
            }
            match (&loaded.dq, &launch_.dq) {
                (DqKernel::Sm80(k), DqLaunch::Sm80(l)) => launch(k, stream, &l.dims, &l.params),
                (DqKernel::Sm90a(k), DqLaunch::Sm90a(l)) => launch(k, stream, &l.dims, &l.params),
                _ => Ok(()), // excluded above
            }
        }
    }
}
