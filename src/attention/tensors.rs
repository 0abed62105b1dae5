//! The tensors of one call, typed: the same two structs serve device buffers (cudarc views) and
//! host slices (the emulator), so their dense constructors and their conversion to the raw
//! entry's addresses are written once.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::cuda::DeviceArgs;
use crate::error::Result;
use crate::shape::AttnShape;

use super::raw::{RawBackward, RawBuffer, RawForward, RawTensor, RawWorkspace};
use super::view::{check_dense_len, Strides, View};

mod sealed {
    pub trait Sealed {}
}

/// A buffer a call can take: a cudarc view or a host slice. Only its element count matters to
/// the typed structs; its address comes from the executor.
pub trait Buffer: sealed::Sealed {
    /// Elements in the buffer.
    fn elements(&self) -> usize;
}

macro_rules! buffers {
    ($($t:ty),*) => {$(
        impl<T> sealed::Sealed for $t {}
        impl<T> Buffer for $t {
            fn elements(&self) -> usize {
                self.len()
            }
        }
    )*};
}
buffers!(CudaView<'_, T>, CudaViewMut<'_, T>, &[T], &mut [T]);

/// Inputs and outputs of one forward call: `q` `[rows, n, q_heads, d]`, `k`/`v`
/// `[rows, n, kv_heads, d]` (any strides that keep the last dim contiguous and 16-byte aligned),
/// `o` like `q` (written, must not overlap itself), `lse` dense `[rows, q_heads, n]` f32 (natural
/// log). [`super::DeviceTensors`] on a device, [`super::HostTensors`] on the emulator.
pub struct ForwardViews<R, W, L> {
    pub q: View<R>,
    pub k: View<R>,
    pub v: View<R>,
    pub o: View<W>,
    pub lse: L,
}

/// Inputs and outputs of one backward call: `q`, `o`, `d_o` and `dq` `[rows, n, q_heads, d]`,
/// `k`, `v`, `dk` and `dv` `[rows, n, kv_heads, d]` (any strides that keep the last dim
/// contiguous and 16-byte aligned); `o` and `lse` (dense `[rows, q_heads, n]` f32, natural log)
/// are what the forward wrote. `dq`, `dk` and `dv` are written (every element, zeros where there
/// is no gradient) and must not overlap themselves or any other view.
/// [`super::BackwardTensors`] on a device, [`super::HostBackwardTensors`] on the emulator.
pub struct BackwardViews<R, W, L> {
    pub q: View<R>,
    pub k: View<R>,
    pub v: View<R>,
    /// The forward's output and LSE.
    pub o: View<R>,
    pub lse: L,
    pub d_o: View<R>,
    pub dq: View<W>,
    pub dk: View<W>,
    pub dv: View<W>,
}

fn dense(shape: &AttnShape, heads: usize) -> Strides {
    Strides::dense(shape.n, heads, shape.head_dim)
}

impl<R: Buffer, W: Buffer, L> ForwardViews<R, W, L> {
    /// Dense tensors of `shape`: Q and O with its `q_heads`, K and V with its `kv_heads`, LSE
    /// `[rows, q_heads, n]` (checked by the call). A buffer whose length is a whole number of
    /// heads other than the shape's is [`crate::Error::WrongHeadCount`] naming it; any other
    /// wrong length is [`crate::Error::LengthMismatch`].
    pub fn dense(shape: &AttnShape, q: R, k: R, v: R, o: W, lse: L) -> Result<Self> {
        let (qh, kvh) = (shape.q_heads, shape.kv_heads);
        check_dense_len("q", q.elements(), shape, qh)?;
        check_dense_len("k", k.elements(), shape, kvh)?;
        check_dense_len("v", v.elements(), shape, kvh)?;
        check_dense_len("o", o.elements(), shape, qh)?;
        Ok(Self {
            q: View::new(q, dense(shape, qh)),
            k: View::new(k, dense(shape, kvh)),
            v: View::new(v, dense(shape, kvh)),
            o: View::new(o, dense(shape, qh)),
            lse,
        })
    }
}

impl<R: Buffer, W: Buffer, L> BackwardViews<R, W, L> {
    /// Dense tensors of `shape` (q, o, d_o and dq with its `q_heads`, k, v, dk and dv with its
    /// `kv_heads`, LSE `[rows, q_heads, n]`), with the errors of [`ForwardViews::dense`].
    #[allow(clippy::too_many_arguments)]
    pub fn dense(
        shape: &AttnShape,
        q: R,
        k: R,
        v: R,
        o: R,
        lse: L,
        d_o: R,
        dq: W,
        dk: W,
        dv: W,
    ) -> Result<Self> {
        let (qh, kvh) = (shape.q_heads, shape.kv_heads);
        for (what, len, heads) in [
            ("q", q.elements(), qh),
            ("k", k.elements(), kvh),
            ("v", v.elements(), kvh),
            ("o", o.elements(), qh),
            ("d_o", d_o.elements(), qh),
            ("dq", dq.elements(), qh),
            ("dk", dk.elements(), kvh),
            ("dv", dv.elements(), kvh),
        ] {
            check_dense_len(what, len, shape, heads)?;
        }
        Ok(Self {
            q: View::new(q, dense(shape, qh)),
            k: View::new(k, dense(shape, kvh)),
            v: View::new(v, dense(shape, kvh)),
            o: View::new(o, dense(shape, qh)),
            lse,
            d_o: View::new(d_o, dense(shape, qh)),
            dq: View::new(dq, dense(shape, qh)),
            dk: View::new(dk, dense(shape, kvh)),
            dv: View::new(dv, dense(shape, kvh)),
        })
    }
}

impl<'a, T> ForwardViews<&'a [T], &'a mut [T], &'a mut [f32]> {
    /// The host addresses of the slices, for the emulator's raw entry.
    pub(crate) fn raw(&mut self) -> RawForward {
        RawForward {
            q: host_tensor(&self.q),
            k: host_tensor(&self.k),
            v: host_tensor(&self.v),
            o: host_tensor_mut(&mut self.o),
            lse: host_buffer(self.lse),
        }
    }
}

impl<'a, T> BackwardViews<&'a [T], &'a mut [T], &'a [f32]> {
    /// The host addresses of the slices, with the workspace given, for the emulator's raw entry.
    pub(crate) fn raw(&mut self, workspace: RawWorkspace) -> RawBackward {
        RawBackward {
            q: host_tensor(&self.q),
            k: host_tensor(&self.k),
            v: host_tensor(&self.v),
            o: host_tensor(&self.o),
            lse: host_buffer(self.lse),
            d_o: host_tensor(&self.d_o),
            dq: host_tensor_mut(&mut self.dq),
            dk: host_tensor_mut(&mut self.dk),
            dv: host_tensor_mut(&mut self.dv),
            workspace,
        }
    }
}

fn host_tensor<T>(v: &View<&[T]>) -> RawTensor {
    RawTensor {
        addr: v.data.as_ptr() as usize as u64,
        len: v.data.len(),
        strides: v.strides,
    }
}

fn host_tensor_mut<T>(v: &mut View<&mut [T]>) -> RawTensor {
    RawTensor {
        addr: v.data.as_mut_ptr() as usize as u64,
        len: v.data.len(),
        strides: v.strides,
    }
}

fn host_buffer(b: &[f32]) -> RawBuffer {
    RawBuffer {
        addr: b.as_ptr() as usize as u64,
        len: b.len(),
    }
}

/// A read view's device address, its stream-ordering guard kept in `args`.
fn device_tensor<'s, T>(
    args: &mut DeviceArgs<'s>,
    v: &'s View<CudaView<'_, T>>,
) -> Result<RawTensor> {
    Ok(RawTensor {
        addr: args.read(&v.data)?,
        len: v.data.len(),
        strides: v.strides,
    })
}

/// A written view's device address, its stream-ordering guard kept in `args`.
fn device_tensor_mut<'s, T>(
    args: &mut DeviceArgs<'s>,
    v: &'s mut View<CudaViewMut<'_, T>>,
) -> Result<RawTensor> {
    let (len, strides) = (v.data.len(), v.strides);
    Ok(RawTensor {
        addr: args.write(&mut v.data)?,
        len,
        strides,
    })
}

impl<T> ForwardViews<CudaView<'_, T>, CudaViewMut<'_, T>, CudaViewMut<'_, f32>> {
    /// The device addresses of the views, their stream-ordering guards kept in `args` (which
    /// the caller holds until the launch is enqueued).
    pub(crate) fn raw<'s>(&'s mut self, args: &mut DeviceArgs<'s>) -> Result<RawForward> {
        let lse_len = self.lse.len();
        Ok(RawForward {
            q: device_tensor(args, &self.q)?,
            k: device_tensor(args, &self.k)?,
            v: device_tensor(args, &self.v)?,
            o: device_tensor_mut(args, &mut self.o)?,
            lse: RawBuffer {
                addr: args.write(&mut self.lse)?,
                len: lse_len,
            },
        })
    }
}

impl<T> BackwardViews<CudaView<'_, T>, CudaViewMut<'_, T>, CudaView<'_, f32>> {
    /// The device addresses of the views, their stream-ordering guards kept in `args`, with the
    /// workspace given.
    pub(crate) fn raw<'s>(
        &'s mut self,
        args: &mut DeviceArgs<'s>,
        workspace: RawWorkspace,
    ) -> Result<RawBackward> {
        Ok(RawBackward {
            q: device_tensor(args, &self.q)?,
            k: device_tensor(args, &self.k)?,
            v: device_tensor(args, &self.v)?,
            o: device_tensor(args, &self.o)?,
            lse: RawBuffer {
                addr: args.read(&self.lse)?,
                len: self.lse.len(),
            },
            d_o: device_tensor(args, &self.d_o)?,
            dq: device_tensor_mut(args, &mut self.dq)?,
            dk: device_tensor_mut(args, &mut self.dk)?,
            dv: device_tensor_mut(args, &mut self.dv)?,
            workspace,
        })
    }
}
