"""The attention op: ``prefix_attn::attention_fwd`` and ``prefix_attn::attention_bwd``, two
``torch.library`` custom ops with fake (meta) implementations, the forward's autograd formula
calling the backward op. ``torch.compile``, AOTAutograd, FSDP and ``torch.library.opcheck`` see
ordinary ops.

Where they run: CUDA tensors run the crate's kernels on ``torch.cuda.current_stream()`` of their
device (enqueued, no host synchronisation); CPU tensors run the same kernels under the crate's
SIMT emulator (exact, single-threaded and slow: for tests and machines without a GPU). Every
buffer (O, LSE, dQ, dK, dV, the backward's workspace) is allocated by torch.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import _native
from .plan import Plan, native_plan

_DTYPES = {torch.bfloat16: "bf16", torch.float16: "f16"}

# Allocates every buffer the ops write (O, LSE, gradients, workspace): torch's allocator. The
# tests swap in a NaN-filling one to check that the kernels write every element.
_alloc = torch.empty


def _aligned(t: Tensor) -> Tensor:
    """``t`` if the raw entry can read it in place (head dim contiguous, element 0 and every stride
    of a dimension longer than 1 a multiple of 16 bytes), else a dense copy in a fresh (aligned)
    allocation (``.contiguous()`` alone would keep a contiguous view at an odd offset)."""
    if t.dim() != 4:
        return t
    ok = t.stride(3) == 1 or t.shape[3] == 1
    ok = ok and t.data_ptr() % 16 == 0
    ok = ok and all(t.stride(i) % 8 == 0 or t.shape[i] == 1 for i in range(3))
    if ok:
        return t
    return torch.empty_like(t, memory_format=torch.contiguous_format).copy_(t)


def _spec(t: Tensor):
    """``(addr, len, row, token, head)`` of a 4-D 2-byte tensor the raw entry reads or writes:
    strides of size-1 dimensions as 0 (never multiplied), ``len`` exactly what the strides reach."""
    st = [0 if t.shape[i] == 1 else t.stride(i) for i in range(3)]
    reach = sum((t.shape[i] - 1) * st[i] for i in range(3)) + t.shape[3]
    return (t.data_ptr(), reach, st[0], st[1], st[2])


def _where(t: Tensor):
    """(device ordinal or -1 for the emulator, CUDA stream handle)."""
    if t.device.type == "cuda":
        return t.device.index, torch.cuda.current_stream(t.device).cuda_stream
    if t.device.type == "cpu":
        return -1, 0
    raise ValueError(f"prefix_attn runs on CUDA devices and on the CPU emulator, not on {t.device}")


def _check(q: Tensor, k: Tensor, v: Tensor, vis_end: Tensor) -> None:
    if q.dtype not in _DTYPES:
        raise ValueError(f"q is {q.dtype}: the kernels take bfloat16 or float16")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name} is {t.dtype}, q is {q.dtype}: all three must match")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device}, q on {q.device}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q must be [rows, n, q_heads, d] and k, v [rows, n, kv_heads, d]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)}: rows, n and head dim must match"
        )
    if tuple(vis_end.shape) != tuple(q.shape[:2]):
        raise ValueError(
            f"the plan is for [rows, n] = {tuple(vis_end.shape)}, q is {tuple(q.shape)}"
        )


def _shape(q: Tensor, k: Tensor):
    return (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])


@torch.library.custom_op("prefix_attn::attention_fwd", mutates_args=())
def attention_fwd(
    q: Tensor, k: Tensor, v: Tensor, vis_end: Tensor, plan_key: Tensor, scale: float
) -> Tuple[Tensor, Tensor]:
    """O (dense ``[rows, n, q_heads, d]``, q's dtype) and LSE (``[rows, q_heads, n]`` float32,
    natural log; -inf and O = 0 where a query sees no key)."""
    _check(q, k, v, vis_end)
    q, k, v = _aligned(q), _aligned(k), _aligned(v)
    plan = native_plan(plan_key, vis_end)
    rows, n, qh, kvh, d = _shape(q, k)
    o = _alloc((rows, n, qh, d), dtype=q.dtype, device=q.device)
    lse = _alloc((rows, qh, n), dtype=torch.float32, device=q.device)
    device, stream = _where(q)
    _native.forward(
        plan, device, stream, _DTYPES[q.dtype], (rows, n, qh, kvh, d),
        _spec(q), _spec(k), _spec(v), _spec(o), (lse.data_ptr(), lse.numel()), float(scale),
    )
    return o, lse


@attention_fwd.register_fake
def _attention_fwd_fake(q, k, v, vis_end, plan_key, scale):
    rows, n, qh, d = q.shape
    o = q.new_empty((rows, n, qh, d))
    lse = q.new_empty((rows, qh, n), dtype=torch.float32)
    return o, lse


@torch.library.custom_op("prefix_attn::attention_bwd", mutates_args=())
def attention_bwd(
    d_o: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    lse: Tensor,
    vis_end: Tensor,
    plan_key: Tensor,
    scale: float,
) -> Tuple[Tensor, Tensor, Tensor]:
    """dQ, dK, dV (dense, like q, k, v) from dO and the forward's O and LSE; deterministic (no
    atomics: the same bits every run). Zero where a query sees no key (dQ) or nobody sees a key
    (dK, dV)."""
    _check(q, k, v, vis_end)
    if d_o.dtype != q.dtype or o.dtype != q.dtype:
        raise ValueError(f"d_o {d_o.dtype} and o {o.dtype} must be q's dtype {q.dtype}")
    q, k, v, o, d_o = _aligned(q), _aligned(k), _aligned(v), _aligned(o), _aligned(d_o)
    lse = lse.contiguous()
    plan = native_plan(plan_key, vis_end)
    shape = _shape(q, k)
    rows, n, qh, kvh, d = shape
    dq = _alloc((rows, n, qh, d), dtype=q.dtype, device=q.device)
    dk = _alloc((rows, n, kvh, d), dtype=q.dtype, device=q.device)
    dv = _alloc((rows, n, kvh, d), dtype=q.dtype, device=q.device)
    ws_len = _native.workspace_len(shape)
    ws = _alloc((2, ws_len), dtype=torch.float32, device=q.device)
    device, stream = _where(q)
    _native.backward(
        plan, device, stream, _DTYPES[q.dtype], shape,
        _spec(q), _spec(k), _spec(v), _spec(o), (lse.data_ptr(), lse.numel()), _spec(d_o),
        _spec(dq), _spec(dk), _spec(dv),
        (ws[0].data_ptr(), ws_len), (ws[1].data_ptr(), ws_len), float(scale),
    )
    return dq, dk, dv


@attention_bwd.register_fake
def _attention_bwd_fake(d_o, q, k, v, o, lse, vis_end, plan_key, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, vis_end, plan_key, scale = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, vis_end, plan_key)
    ctx.scale = scale


def _backward(ctx, d_o, d_lse):
    # LSE is an auxiliary output for the backward: `attention` never returns it, so no gradient
    # flows into it (d_lse is None or zeros).
    q, k, v, o, lse, vis_end, plan_key = ctx.saved_tensors
    if d_o is None:
        return None, None, None, None, None, None
    dq, dk, dv = attention_bwd(d_o, q, k, v, o, lse, vis_end, plan_key, ctx.scale)
    return dq, dk, dv, None, None, None


attention_fwd.register_autograd(_backward, setup_context=_setup_context)


def attention(
    q: Tensor, k: Tensor, v: Tensor, plan: Plan, scale: Optional[float] = None
) -> Tensor:
    """Attention under the ``vis_end`` rule: ``o = softmax(scale q k^T + mask) v`` per row and
    head, where query ``i`` sees key ``j`` iff ``j <= i < vis_end[j]``.

    - ``q`` ``[rows, n, q_heads, d]``, ``k`` and ``v`` ``[rows, n, kv_heads, d]`` (GQA: q head
      ``h`` reads kv head ``h // (q_heads // kv_heads)``), d 64 or 128, all bfloat16 or all
      float16, on one CUDA device or all on the CPU (emulator).
    - Any strides whose head dim is contiguous and whose other strides and element 0 are
      16-byte aligned are read in place, so ``x.transpose(1, 2)`` of Hugging Face's
      ``[b, h, s, d]`` costs no copy; any other layout (a head dim with stride, an odd offset
      view) is copied with ``.contiguous()`` first.
    - ``scale`` defaults to ``d ** -0.5`` (rounded to float32 once, as the kernels use it).
    - Returns ``o`` dense ``[rows, n, q_heads, d]`` in q's dtype; a query that sees no key gets
      0. Differentiable in q, k and v, with a deterministic backward.
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a prefix_attn.Plan, got {type(plan).__name__}")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    o, _ = attention_fwd(q, k, v, plan.vis_end, plan.key, float(scale))
    return o
