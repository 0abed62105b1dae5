//! The op on a candle CUDA device: the crate's kernels, loaded once into the device's context
//! ([`Attention::for_context`]), run on candle's own stream on views of candle's own buffers,
//! outputs allocated on that stream.
//!
//! Ordering: candle enqueues everything of a device on that one stream, so the kernels run after
//! whatever wrote Q, K, V and dO, and before whatever reads O or the gradients; the typed calls
//! also take cudarc's stream-ordering guards for every buffer (event tracking, when candle's
//! context has it on). No host synchronisation, except a plan's first use in a context, which
//! uploads its arrays once ([`crate::plan::Plan`]).

use candle_core::backend::BackendDevice;
use candle_core::cuda::{CudaDType, CudaStorage};
use candle_core::{CudaDevice, DType, Layout, Result, Storage};
use cudarc::driver::{CudaView, DeviceRepr};
use half::{bf16, f16};

use crate::attention::{Attention, AttnDtype, BackwardTensors, DeviceTensors, ForwardViews, View};

use super::call::{Call, Held, Saved};
use super::error::{invalid, to_candle};
use super::layout::kernel_view;

/// The view of `what` (layout `layout`) over its CUDA storage.
fn view<'a, T: CudaDType>(
    what: &'static str,
    s: &'a CudaStorage,
    layout: &Layout,
) -> Result<View<CudaView<'a, T>>> {
    let kv = kernel_view(layout).ok_or_else(|| {
        invalid(
            what,
            format!(
                "layout {:?} (strides {:?}, offset {}) is not one the kernels read: \
                 prefix_attn::candle::attention copies such tensors first",
                layout.dims(),
                layout.stride(),
                layout.start_offset()
            ),
        )
    })?;
    let slice = s.as_cuda_slice::<T>()?;
    let end = kv.offset + kv.span;
    if end > slice.len() {
        return Err(invalid(
            what,
            format!(
                "the layout reaches element {end} of a buffer of {}",
                slice.len()
            ),
        ));
    }
    Ok(View::new(slice.slice(kv.offset..end), kv.strides))
}

/// `what` is on the call's device.
fn same_device(what: &'static str, dev: &CudaDevice, other: &CudaDevice) -> Result<()> {
    if dev.same_device(other) {
        Ok(())
    } else {
        Err(invalid(
            what,
            format!("on {other:?}, the op runs on {dev:?}"),
        ))
    }
}

/// The CUDA storage of a tensor the backward reads besides Q, K and V, on `dev`.
fn cuda_of<'a>(what: &'static str, held: &Held<'a>, dev: &CudaDevice) -> Result<&'a CudaStorage> {
    match held.storage {
        Storage::Cuda(s) => {
            same_device(what, dev, &s.device)?;
            Ok(s)
        }
        other => Err(invalid(
            what,
            format!("on {:?}, the op runs on {dev:?}", other.device().location()),
        )),
    }
}

/// The forward: O (dense, the inputs' dtype) and LSE (`[rows, q_heads, n]` f32), on the inputs'
/// device.
pub(crate) fn forward(
    call: &Call,
    q: (&CudaStorage, &Layout),
    k: (&CudaStorage, &Layout),
    v: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, CudaStorage)> {
    match call.dtype {
        DType::BF16 => forward_typed::<bf16>(call, q, k, v),
        DType::F16 => forward_typed::<f16>(call, q, k, v),
        other => Err(super::dtype_error("q", other)),
    }
}

fn forward_typed<T: AttnDtype + DeviceRepr + CudaDType>(
    call: &Call,
    (q, lq): (&CudaStorage, &Layout),
    (k, lk): (&CudaStorage, &Layout),
    (v, lv): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, CudaStorage)> {
    let dev = q.device.clone();
    same_device("k", &dev, &k.device)?;
    same_device("v", &dev, &v.device)?;
    let stream = dev.cuda_stream();
    let attn = Attention::for_context(stream.context()).map_err(to_candle)?;
    let sh = call.shape;
    // SAFETY (both): the forward kernel writes every element of O and LSE (0 and -inf for a query
    // that sees no key) before anything on this stream can read them.
    let mut o = unsafe { dev.alloc::<T>(sh.q_len()) }?;
    let mut lse = unsafe { dev.alloc::<f32>(sh.lse_len()) }?;
    let t: DeviceTensors<'_, T> = ForwardViews {
        q: view("q", q, lq)?,
        k: view("k", k, lk)?,
        v: view("v", v, lv)?,
        o: View::dense(o.as_view_mut(), &sh, sh.q_heads),
        lse: lse.as_view_mut(),
    };
    attn.forward
        .run(&stream, &call.plan, &sh, t, call.scale)
        .map_err(to_candle)?;
    Ok((
        CudaStorage::wrap_cuda_slice(o, dev.clone()),
        CudaStorage::wrap_cuda_slice(lse, dev),
    ))
}

/// The backward: dQ, dK and dV packed in one buffer (`[q_len + kv_len + kv_len]`, each dense),
/// given O, dO and the forward's LSE.
pub(crate) fn backward(
    call: &Call,
    q: (&CudaStorage, &Layout),
    k: (&CudaStorage, &Layout),
    v: (&CudaStorage, &Layout),
    saved: &Saved<'_>,
) -> Result<CudaStorage> {
    match call.dtype {
        DType::BF16 => backward_typed::<bf16>(call, q, k, v, saved),
        DType::F16 => backward_typed::<f16>(call, q, k, v, saved),
        other => Err(super::dtype_error("q", other)),
    }
}

fn backward_typed<T: AttnDtype + DeviceRepr + CudaDType>(
    call: &Call,
    (q, lq): (&CudaStorage, &Layout),
    (k, lk): (&CudaStorage, &Layout),
    (v, lv): (&CudaStorage, &Layout),
    saved: &Saved<'_>,
) -> Result<CudaStorage> {
    let dev = q.device.clone();
    same_device("k", &dev, &k.device)?;
    same_device("v", &dev, &v.device)?;
    let o = cuda_of("o", &saved.o, &dev)?;
    let d_o = cuda_of("d_o", &saved.d_o, &dev)?;
    let lse_s = cuda_of("lse", &saved.lse, &dev)?;
    let stream = dev.cuda_stream();
    let attn = Attention::for_context(stream.context()).map_err(to_candle)?;
    let sh = call.shape;

    let lse_all = lse_s.as_cuda_slice::<f32>()?;
    let start = saved.lse.layout.start_offset();
    if !saved.lse.layout.is_contiguous() || start + sh.lse_len() > lse_all.len() {
        return Err(invalid("lse", "not the forward's dense LSE".into()));
    }
    let lse = lse_all.slice(start..start + sh.lse_len());

    // A workspace per call (two f32 arrays of rows * q_heads * n rounded up): allocated and freed
    // on candle's stream, so its reuse is ordered after these kernels.
    let mut ws = attn.workspace(&stream, &sh).map_err(to_candle)?;
    let (ql, kl) = (sh.q_len(), sh.kv_len());
    // SAFETY: the backward kernels write every element of dQ, dK and dV (zeros where there is no
    // gradient) before anything on this stream reads them.
    let mut packed = unsafe { dev.alloc::<T>(ql + 2 * kl) }?;
    {
        let (dq, mut rest) = packed.split_at_mut(ql);
        let (dk, dv) = rest.split_at_mut(kl);
        let t: BackwardTensors<'_, T> = crate::attention::BackwardViews {
            q: view("q", q, lq)?,
            k: view("k", k, lk)?,
            v: view("v", v, lv)?,
            o: view("o", o, saved.o.layout)?,
            lse,
            d_o: view("d_o", d_o, saved.d_o.layout)?,
            dq: View::dense(dq, &sh, sh.q_heads),
            dk: View::dense(dk, &sh, sh.kv_heads),
            dv: View::dense(dv, &sh, sh.kv_heads),
        };
        attn.backward
            .run(&stream, &call.plan, &sh, t, &mut ws, call.scale)
            .map_err(to_candle)?;
    }
    Ok(CudaStorage::wrap_cuda_slice(packed, dev))
}
