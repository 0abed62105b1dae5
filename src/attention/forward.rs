//! The forward call on a device: kernel handles looked up once, then any number of
//! asynchronous launches on any stream of the context.

use std::sync::Arc;

use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
    DeviceRepr,
};

use crate::cuda::{cuda_err, launch_kernel, Gpu};
use crate::error::{Error, Result};
use crate::ffi::params::PaAttnFwdParams;
use crate::plan::Plan;
use crate::shape::AttnShape;

use super::dtype::AttnDtype;
use super::kernels::with_forward_kernel;
use super::prepare::{forward_smem_bytes, prepare_forward, ForwardCall, ForwardKernel, PlanAddrs};
use super::view::{RawView, View};

// SAFETY: a plain C struct of pointers, integers and floats laid out as in csrc/pa_params.h
// (bindgen layout tests check it), passed to the kernel by value.
unsafe impl DeviceRepr for PaAttnFwdParams {}

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

/// The forward kernels of one device, ready to launch.
pub struct Forward {
    ctx: Arc<CudaContext>,
    /// Indexed by [`ForwardKernel::index`].
    funcs: Vec<CudaFunction>,
}

impl Forward {
    /// Looks up every forward instantiation once and allows each the dynamic shared memory it
    /// needs (over the 48 KiB default at head dim 128).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let mut funcs = Vec::with_capacity(ForwardKernel::ALL.len());
        // cudarc's set_attribute does not make the context current (its other calls do): bind
        // it, so that Forward::new works on any thread, not only the one that opened the Gpu.
        gpu.context()
            .bind_to_thread()
            .map_err(cuda_err("cuCtxSetCurrent"))?;
        for kernel in ForwardKernel::ALL {
            let func = gpu.function_named(kernel.name())?;
            func.set_attribute(
                CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                forward_smem_bytes(kernel.head_dim()) as i32,
            )
            .map_err(cuda_err("cuFuncSetAttribute (max dynamic shared memory)"))?;
            funcs.push(func);
        }
        Ok(Self {
            ctx: gpu.context().clone(),
            funcs,
        })
    }

    /// `O = softmax(scale * Q K^T) V` and LSE under `plan`'s mask, enqueued on `stream`.
    ///
    /// Asynchronous: no host synchronisation and no allocation. The plan must have been
    /// uploaded ([`Plan::on_device`]) to this device. Errors: shape/plan mismatches, views that
    /// are too short, misaligned or self-overlapping (O), unsupported head dims, a scale that is
    /// not finite and positive, CUDA launch errors.
    pub fn run<T: AttnDtype + DeviceRepr>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &Plan,
        shape: &AttnShape,
        mut t: DeviceTensors<'_, T>,
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
        // Pointers with cudarc's stream-ordering guards, held until the launch is enqueued.
        let (vis_end, _g0) = dev.vis_end.device_ptr(stream);
        let (q_offsets, _g1) = dev.fwd_q_offsets.device_ptr(stream);
        let (q_entries, _g2) = dev.fwd_q_entries.device_ptr(stream);
        let (heaviest_first, _g3) = dev.fwd_heaviest_first.device_ptr(stream);
        let raw = |len: usize, addr: u64, strides| RawView { len, addr, strides };
        let (q_len, k_len, v_len, o_len, lse_len) = (
            t.q.data.len(),
            t.k.data.len(),
            t.v.data.len(),
            t.o.data.len(),
            t.lse.len(),
        );
        let (q_ptr, _g4) = t.q.data.device_ptr(stream);
        let (k_ptr, _g5) = t.k.data.device_ptr(stream);
        let (v_ptr, _g6) = t.v.data.device_ptr(stream);
        let (o_ptr, _g7) = t.o.data.device_ptr_mut(stream);
        let (lse_ptr, _g8) = t.lse.device_ptr_mut(stream);
        let launch = prepare_forward(&ForwardCall {
            mask: plan.forward_mask(),
            plan: PlanAddrs {
                vis_end,
                q_offsets,
                q_entries,
                heaviest_first,
            },
            shape,
            is_bf16: T::IS_BF16,
            q: raw(q_len, q_ptr, t.q.strides),
            k: raw(k_len, k_ptr, t.k.strides),
            v: raw(v_len, v_ptr, t.v.strides),
            o: raw(o_len, o_ptr, t.o.strides),
            lse_len,
            lse_addr: lse_ptr,
            scale,
        })?;
        let func = &self.funcs[launch.kernel.index()];
        // SAFETY: prepare_forward checked that every view lies inside its buffer and that O
        // does not overlap itself; the plan arrays are the ones its lists index (built from the
        // same VisEnd); all buffers outlive the enqueue and the guards order them on `stream`.
        with_forward_kernel!(launch.kernel, K => unsafe {
            launch_kernel::<K>(func, stream, &launch.dims, &launch.params)
        })
    }
}
