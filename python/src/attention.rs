//! The raw entry's forward and backward, called with integers: on a CUDA device (`device` >= 0,
//! enqueued on the given stream, no host synchronisation) or on the CPU emulator (`device` =
//! -1, host addresses, synchronous).

use prefix_attn::attention::workspace;
use prefix_attn::attention::{
    backward_emulated_raw, forward_emulated_raw, BackwardChoice, KernelChoice, RawBackward,
    RawBuffer, RawForward, RawTensor, RawWorkspace,
};
use prefix_attn::cudarc::driver::sys::CUstream;
use prefix_attn::{Attention, AttnShape, Dtype, Scale, Schedule, Strides};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrPy;
use crate::plan::{context, Plan};

/// `(addr, len, row_stride, token_stride, head_stride)`: a `[rows, n, heads, head_dim]` tensor
/// with element (0, 0, 0, 0) at `addr`, `len` elements reachable from there, element strides
/// (head_dim contiguous).
type TensorSpec = (u64, usize, usize, usize, usize);
/// `(addr, len)`: a flat f32 buffer.
type BufferSpec = (u64, usize);
/// `(rows, n, q_heads, kv_heads, head_dim)`.
type ShapeSpec = (usize, usize, usize, usize, usize);

fn tensor(t: TensorSpec) -> RawTensor {
    RawTensor {
        addr: t.0,
        len: t.1,
        strides: Strides {
            row: t.2,
            token: t.3,
            head: t.4,
        },
    }
}

fn buffer(b: BufferSpec) -> RawBuffer {
    RawBuffer {
        addr: b.0,
        len: b.1,
    }
}

fn shape(s: ShapeSpec) -> AttnShape {
    AttnShape {
        rows: s.0,
        n: s.1,
        q_heads: s.2,
        kv_heads: s.3,
        head_dim: s.4,
    }
}

fn dtype(name: &str) -> PyResult<Dtype> {
    match name {
        "bf16" => Ok(Dtype::Bf16),
        "f16" => Ok(Dtype::F16),
        other => Err(PyValueError::new_err(format!(
            "dtype {other:?}: the kernels take bf16 or f16"
        ))),
    }
}

/// Where a call runs: a CUDA device's ordinal, or the emulator.
enum Target {
    Device(usize),
    Emulator,
}

fn target(device: i64) -> PyResult<Target> {
    match device {
        -1 => Ok(Target::Emulator),
        d if d >= 0 => Ok(Target::Device(d as usize)),
        d => Err(PyValueError::new_err(format!(
            "device {d}: a CUDA ordinal (>= 0) or -1 for the CPU emulator"
        ))),
    }
}

/// fp32 elements of each of the backward's two workspace arrays for this shape.
#[pyfunction]
pub fn workspace_len(shape_: ShapeSpec) -> PyResult<usize> {
    workspace::workspace_len(&shape(shape_)).py()
}

/// O and LSE (`[rows, q_heads, n]` f32, natural log) from Q, K and V. On a device the kernels
/// are enqueued on `stream` (a `CUstream` handle as an integer; 0 the legacy default stream) of
/// device `device`'s primary context; with `device` = -1 they run on the emulator, now.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn forward(
    py: Python<'_>,
    plan: &Plan,
    device: i64,
    stream: usize,
    dtype_: &str,
    shape_: ShapeSpec,
    q: TensorSpec,
    k: TensorSpec,
    v: TensorSpec,
    o: TensorSpec,
    lse: BufferSpec,
    scale: f64,
) -> PyResult<()> {
    let dt = dtype(dtype_)?;
    let sh = shape(shape_);
    let raw = RawForward {
        q: tensor(q),
        k: tensor(k),
        v: tensor(v),
        o: tensor(o),
        lse: buffer(lse),
    };
    let scale = Scale::from(scale);
    let plan = plan.plan.clone();
    match target(device)? {
        Target::Emulator => py
            .detach(move || {
                // SAFETY: the package passes live host tensors of the stated lengths, O and LSE
                // freshly allocated and not aliased, and holds them for this synchronous call.
                unsafe {
                    forward_emulated_raw(
                        &plan,
                        &sh,
                        dt,
                        &raw,
                        scale,
                        KernelChoice::default(),
                        Schedule::Ascending,
                    )
                }
                .map(|_| ())
            })
            .py(),
        Target::Device(ordinal) => {
            let ctx = context(ordinal)?;
            py.detach(move || {
                let attn = Attention::for_context(&ctx)?;
                // SAFETY: the package passes live device tensors of this context of the stated
                // lengths, O and LSE freshly allocated by torch's caching allocator on the
                // current stream, which is `stream`: torch orders their reuse after it, and the
                // inputs were produced in stream order before this call.
                unsafe { attn.forward_raw(stream as CUstream, &plan, &sh, dt, &raw, scale) }
            })
            .py()
        }
    }
}

/// dQ, dK and dV given the forward's O and LSE and dO, with a workspace of two f32 arrays of at
/// least `workspace_len(shape)` elements. Device and stream as [`forward`].
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn backward(
    py: Python<'_>,
    plan: &Plan,
    device: i64,
    stream: usize,
    dtype_: &str,
    shape_: ShapeSpec,
    q: TensorSpec,
    k: TensorSpec,
    v: TensorSpec,
    o: TensorSpec,
    lse: BufferSpec,
    d_o: TensorSpec,
    dq: TensorSpec,
    dk: TensorSpec,
    dv: TensorSpec,
    ws_lse_log2: BufferSpec,
    ws_delta: BufferSpec,
    scale: f64,
) -> PyResult<()> {
    let dt = dtype(dtype_)?;
    let sh = shape(shape_);
    let raw = RawBackward {
        q: tensor(q),
        k: tensor(k),
        v: tensor(v),
        o: tensor(o),
        lse: buffer(lse),
        d_o: tensor(d_o),
        dq: tensor(dq),
        dk: tensor(dk),
        dv: tensor(dv),
        workspace: RawWorkspace {
            lse_log2: buffer(ws_lse_log2),
            delta: buffer(ws_delta),
        },
    };
    let scale = Scale::from(scale);
    let plan = plan.plan.clone();
    match target(device)? {
        Target::Emulator => py
            .detach(move || {
                // SAFETY: as in `forward`: live host tensors, outputs and workspace fresh.
                unsafe {
                    backward_emulated_raw(
                        &plan,
                        &sh,
                        dt,
                        &raw,
                        scale,
                        BackwardChoice::default(),
                        Schedule::Ascending,
                    )
                }
                .map(|_| ())
            })
            .py(),
        Target::Device(ordinal) => {
            let ctx = context(ordinal)?;
            py.detach(move || {
                let attn = Attention::for_context(&ctx)?;
                // SAFETY: as in `forward`, on the current stream.
                unsafe { attn.backward_raw(stream as CUstream, &plan, &sh, dt, &raw, scale) }
            })
            .py()
        }
    }
}
