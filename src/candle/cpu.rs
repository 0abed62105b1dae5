//! The op on candle's CPU device: the kernels under the crate's SIMT emulator, through the raw
//! entry (host addresses), reading candle's storages where they are 16-byte aligned and copies
//! where they are not.

use candle_core::{CpuStorage, DType, Layout, Result, Storage, WithDType};
use half::{bf16, f16};

use crate::attention::workspace::workspace_len;
use crate::attention::{
    backward_emulated_raw, forward_emulated_raw, AttnDtype, BackwardChoice, Dtype, KernelChoice,
    RawBackward, RawBuffer, RawForward, RawTensor, RawWorkspace, Strides,
};
use crate::emu::Schedule;

use super::aligned::{AlignedBuf, Plain};
use super::call::{Call, Held};
use super::error::{invalid, to_candle};
use super::layout::kernel_view;

/// Host memory the emulator reads: candle's own where element 0 is 16-byte aligned, else a copy
/// of exactly the elements the view reaches (same strides, element 0 moved to an aligned start).
enum HostData<'a, T: Plain> {
    Borrowed(&'a [T]),
    Copied(AlignedBuf<T>),
}

impl<T: Plain> HostData<'_, T> {
    /// `part` in place when aligned, else copied.
    fn of(part: &[T]) -> HostData<'_, T> {
        if (part.as_ptr() as usize) % 16 == 0 {
            HostData::Borrowed(part)
        } else {
            HostData::Copied(AlignedBuf::from_slice(part))
        }
    }

    fn addr_len(&self) -> (u64, usize) {
        match self {
            HostData::Borrowed(s) => (s.as_ptr() as usize as u64, s.len()),
            HostData::Copied(b) => (b.addr(), b.len()),
        }
    }
}

/// A `[rows, n, heads, d]` input: its memory and strides.
struct HostTensor<'a, T: Plain> {
    data: HostData<'a, T>,
    strides: Strides,
}

impl<T: Plain> HostTensor<'_, T> {
    fn raw(&self) -> RawTensor {
        let (addr, len) = self.data.addr_len();
        RawTensor {
            addr,
            len,
            strides: self.strides,
        }
    }
}

/// The input `what` of layout `layout` in `data` (the whole storage).
fn host_tensor<'a, T: Plain>(
    what: &'static str,
    data: &'a [T],
    layout: &Layout,
) -> Result<HostTensor<'a, T>> {
    let view = kernel_view(layout).ok_or_else(|| {
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
    let part = data
        .get(view.offset..view.offset + view.span)
        .ok_or_else(|| {
            invalid(
                what,
                format!(
                    "the layout reaches element {} of a storage of {}",
                    view.offset + view.span,
                    data.len()
                ),
            )
        })?;
    Ok(HostTensor {
        data: HostData::of(part),
        strides: view.strides,
    })
}

/// The typed slice of a CPU storage, or a dtype error naming `what`.
fn slice_of<'a, T: WithDType>(what: &'static str, s: &'a CpuStorage) -> Result<&'a [T]> {
    s.as_slice::<T>().map_err(|_| {
        invalid(
            what,
            format!(
                "dtype {}, the op's inputs are {}",
                s.dtype_name(),
                T::DTYPE.as_str()
            ),
        )
    })
}

/// The CPU storage of a tensor the backward reads besides Q, K and V.
fn cpu_of<'a>(what: &'static str, held: &Held<'a>) -> Result<&'a CpuStorage> {
    match held.storage {
        Storage::Cpu(s) => Ok(s),
        other => Err(invalid(
            what,
            format!(
                "on {:?}, the op's inputs on the CPU",
                other.device().location()
            ),
        )),
    }
}

trait DtypeName {
    fn dtype_name(&self) -> &'static str;
}

impl DtypeName for CpuStorage {
    fn dtype_name(&self) -> &'static str {
        candle_core::backend::BackendStorage::dtype(self).as_str()
    }
}

/// The forward: O (dense, the inputs' dtype) and LSE (`[rows, q_heads, n]` f32).
pub(crate) fn forward(
    call: &Call,
    (q, lq): (&CpuStorage, &Layout),
    (k, lk): (&CpuStorage, &Layout),
    (v, lv): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, CpuStorage)> {
    match call.dtype {
        DType::BF16 => forward_typed::<bf16>(call, (q, lq), (k, lk), (v, lv)),
        DType::F16 => forward_typed::<f16>(call, (q, lq), (k, lk), (v, lv)),
        other => Err(super::dtype_error("q", other)),
    }
}

fn forward_typed<T: AttnDtype + Plain + WithDType>(
    call: &Call,
    (q, lq): (&CpuStorage, &Layout),
    (k, lk): (&CpuStorage, &Layout),
    (v, lv): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, CpuStorage)> {
    let sh = call.shape;
    let q = host_tensor("q", slice_of::<T>("q", q)?, lq)?;
    let k = host_tensor("k", slice_of::<T>("k", k)?, lk)?;
    let v = host_tensor("v", slice_of::<T>("v", v)?, lv)?;
    // Outputs poisoned with NaN: the kernel writes every element (0 and -inf where a query sees
    // nothing), so a NaN left would be a kernel bug, never a silent zero.
    let o = AlignedBuf::filled(sh.q_len(), T::from_f64(f64::NAN));
    let lse = AlignedBuf::filled(sh.lse_len(), f32::NAN);
    let raw = RawForward {
        q: q.raw(),
        k: k.raw(),
        v: v.raw(),
        o: RawTensor::dense(o.addr(), &sh, sh.q_heads),
        lse: RawBuffer {
            addr: lse.addr(),
            len: lse.len(),
        },
    };
    // SAFETY: every address is a live host buffer of at least its `len` elements: candle's
    // storages (borrowed for this call by candle's read locks) or our copies, and O and LSE our
    // own buffers, which nothing else reads or writes; the emulated call is synchronous.
    unsafe {
        forward_emulated_raw(
            &call.plan,
            &sh,
            Dtype::of::<T>(),
            &raw,
            call.scale,
            KernelChoice::default(),
            Schedule::Ascending,
        )
    }
    .map_err(to_candle)?;
    Ok((
        T::to_cpu_storage(o.as_slice()),
        f32::to_cpu_storage(lse.as_slice()),
    ))
}

/// The backward: dQ, dK and dV packed in one buffer (`[q_len + kv_len + kv_len]`, each dense),
/// given O, dO and the forward's LSE.
pub(crate) fn backward(
    call: &Call,
    (q, lq): (&CpuStorage, &Layout),
    (k, lk): (&CpuStorage, &Layout),
    (v, lv): (&CpuStorage, &Layout),
    saved: &super::call::Saved<'_>,
) -> Result<CpuStorage> {
    match call.dtype {
        DType::BF16 => backward_typed::<bf16>(call, (q, lq), (k, lk), (v, lv), saved),
        DType::F16 => backward_typed::<f16>(call, (q, lq), (k, lk), (v, lv), saved),
        other => Err(super::dtype_error("q", other)),
    }
}

fn backward_typed<T: AttnDtype + Plain + WithDType>(
    call: &Call,
    (q, lq): (&CpuStorage, &Layout),
    (k, lk): (&CpuStorage, &Layout),
    (v, lv): (&CpuStorage, &Layout),
    saved: &super::call::Saved<'_>,
) -> Result<CpuStorage> {
    let sh = call.shape;
    let q = host_tensor("q", slice_of::<T>("q", q)?, lq)?;
    let k = host_tensor("k", slice_of::<T>("k", k)?, lk)?;
    let v = host_tensor("v", slice_of::<T>("v", v)?, lv)?;
    let o_s = cpu_of("o", &saved.o)?;
    let o = host_tensor("o", slice_of::<T>("o", o_s)?, saved.o.layout)?;
    let d_s = cpu_of("d_o", &saved.d_o)?;
    let d_o = host_tensor("d_o", slice_of::<T>("d_o", d_s)?, saved.d_o.layout)?;
    let l_s = cpu_of("lse", &saved.lse)?;
    let lse_all = slice_of::<f32>("lse", l_s)?;
    let start = saved.lse.layout.start_offset();
    let lse = lse_all
        .get(start..start + sh.lse_len())
        .filter(|_| saved.lse.layout.is_contiguous())
        .ok_or_else(|| invalid("lse", "not the forward's dense LSE".into()))?;
    let lse = HostData::of(lse);
    let (lse_addr, lse_len) = lse.addr_len();

    // The workspace (LSE in base 2 and rowsum(dO * O)) is written by the preprocess kernel before
    // the others read it; NaN makes a read of an unwritten element visible.
    let ws_len = workspace_len(&sh).map_err(to_candle)?;
    let ws_lse = AlignedBuf::filled(ws_len, f32::NAN);
    let ws_delta = AlignedBuf::filled(ws_len, f32::NAN);
    let (ql, kl) = (sh.q_len(), sh.kv_len());
    let packed = AlignedBuf::filled(ql + 2 * kl, T::from_f64(f64::NAN));
    // Two bytes per element; q_len and kv_len are multiples of head_dim (64 or 128), so each
    // part starts 16-byte aligned.
    let at = |elems: usize| packed.addr() + 2 * elems as u64;
    let raw = RawBackward {
        q: q.raw(),
        k: k.raw(),
        v: v.raw(),
        o: o.raw(),
        lse: RawBuffer {
            addr: lse_addr,
            len: lse_len,
        },
        d_o: d_o.raw(),
        dq: RawTensor::dense(at(0), &sh, sh.q_heads),
        dk: RawTensor::dense(at(ql), &sh, sh.kv_heads),
        dv: RawTensor::dense(at(ql + kl), &sh, sh.kv_heads),
        workspace: RawWorkspace {
            lse_log2: RawBuffer {
                addr: ws_lse.addr(),
                len: ws_lse.len(),
            },
            delta: RawBuffer {
                addr: ws_delta.addr(),
                len: ws_delta.len(),
            },
        },
    };
    // SAFETY: as in the forward: live host buffers of at least their `len` elements, inputs only
    // read (candle holds their read locks for the call), dQ, dK, dV (disjoint parts of `packed`)
    // and the workspace our own; synchronous.
    unsafe {
        backward_emulated_raw(
            &call.plan,
            &sh,
            Dtype::of::<T>(),
            &raw,
            call.scale,
            BackwardChoice::default(),
            Schedule::Ascending,
        )
    }
    .map_err(to_candle)?;
    Ok(T::to_cpu_storage(packed.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misaligned_storage_is_copied_and_an_aligned_one_read_in_place() {
        let buf = AlignedBuf::from_slice(&vec![bf16::ONE; 2 * 8 * 64 + 8]);
        let layout = Layout::contiguous((1, 8, 2, 64));
        // Element 0 at the buffer's start: aligned, in place.
        let t = host_tensor("q", buf.as_slice(), &layout).unwrap();
        assert!(matches!(t.data, HostData::Borrowed(_)));
        assert_eq!(t.raw().addr, buf.addr());
        // The same view over a storage starting one element later (2 bytes off): copied.
        let t = host_tensor("q", &buf.as_slice()[1..], &layout).unwrap();
        assert!(matches!(t.data, HostData::Copied(_)));
        assert_eq!(t.raw().addr % 16, 0);
        assert_eq!(t.raw().len, 2 * 8 * 64);
        // A layout reaching past the storage is an error, not a read out of bounds.
        let short = &buf.as_slice()[..100];
        assert!(host_tensor("q", short, &layout).is_err());
    }
}
