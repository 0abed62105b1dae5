"""Error bounds of the op against float64 attention on the same bf16/f16 inputs, derived from the
kernels' arithmetic: the same derivation as the crate's own tests (docs/forward.md and
docs/backward.md, "Error bounds"; src/bounds/, the crate's public
`prefix_attn::bounds`), vectorised here in float64 torch. python/README.md,
"Error bounds", sums it up. Nothing here reads the output under test, except the backward's use
of the forward's LSE (whose own bound is checked first).

Forward: a bound per element of O and of LSE. Backward: a bound on the Frobenius norm of each of
dQ, dK and dV's error, in which independent roundings add in quadrature (R) and shared ones term
by term (W).

Which kernel runs (and so its tile) depends on the device; the bound takes, per query, the
largest number of k tiles T any of the plan's tile shapes walks for its q tile, and the largest
k tile B = 128. Every term grows with T and B, so the bound holds for whichever kernel ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

U = 2.0**-24  # f32 unit roundoff
EX2 = 5.0 * U * (1.0 + 2.0**-20)  # ex2.approx.ftz.f32: 2 ulp of the rounded result (PTX ISA) + u
LG2_ABS = 2.0**-22  # lg2.approx.ftz.f32 on [1, 2): absolute (PTX ISA)
ETA = 2.0001 * U  # scale_log2 = fl(scale * fl(log2 e))
LN2 = math.log(2.0)
LOG2E = 1.0 / LN2
#: The LSE error beyond which the backward's first-order bound stops holding.
LSE_ERR_MAX = 2.0**-12


def unit_roundoff(dtype) -> float:
    """P, O and the gradients round to the element type: 8 (bf16) or 11 (f16) significant bits."""
    return 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11


def underflow(dtype) -> float:
    """Half the smallest subnormal: the absolute rounding below the normal range."""
    return 2.0**-134 if dtype == torch.bfloat16 else 2.0**-25


def mma_step(arith: str) -> float:
    """Forward: error of one mma.m16n8k16 step, relative to |d| (emulator: sums exactly, rounds
    once) or to |c| + sum |a b| (device: the PTX ISA leaves the accumulation's order and
    rounding open, 17 additions of 2u each)."""
    return U if arith == "emulator" else 34.0 * U


def mask_of(vis_end: torch.Tensor) -> torch.Tensor:
    """Boolean ``[rows, n, n]``: query i sees key j iff j <= i < vis_end[j]."""
    n = vis_end.shape[1]
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    ve = vis_end.to(torch.int64).cpu()[:, None, :]
    return (j <= i) & (i < ve)


def tiles_per_query(plan) -> tuple:
    """``[rows, n]`` the largest number of k tiles any of the plan's tile shapes lists for the q
    tile of each query, and the largest k tile."""
    rows, n = plan.rows, plan.n
    t = torch.zeros(rows, n, dtype=torch.float64)
    bk_max = 0
    for bq, bk, counts in plan.q_list_lengths():
        per_query = counts.to(torch.float64).repeat_interleave(bq, dim=1)[:, :n]
        t = torch.maximum(t, per_query)
        bk_max = max(bk_max, bk)
    return t, bk_max


def heads_major(x: torch.Tensor) -> torch.Tensor:
    """``[rows, n, h, d]`` to float64 ``[rows, h, n, d]``."""
    return x.detach().to("cpu", torch.float64).transpose(1, 2).contiguous()


@dataclass
class Exact:
    """The float64 softmax of the rounded inputs, per (row, q head, query, key)."""

    q: torch.Tensor  # [r, h, n, d]
    k: torch.Tensor  # [r, h, n, d]: the kv head of each q head
    v: torch.Tensor
    mask: torch.Tensor  # [r, 1, n, n]
    sigma: torch.Tensor  # scale q.k, -inf where masked
    lse: torch.Tensor  # [r, h, n], -inf where a query sees nothing
    p: torch.Tensor  # [r, h, n, n]
    o: torch.Tensor  # [r, h, n, d]
    sees: torch.Tensor  # [r, 1, n] bool
    scale: float
    group: int


def exact(q, k, v, vis_end, scale: float) -> Exact:
    group = q.shape[2] // k.shape[2]
    qw, kw, vw = heads_major(q), heads_major(k), heads_major(v)
    kw = kw.repeat_interleave(group, dim=1)
    vw = vw.repeat_interleave(group, dim=1)
    mask = mask_of(vis_end)[:, None]
    # The scale the kernels use: rounded to f32 once.
    scale = float(torch.tensor(scale, dtype=torch.float32))
    sigma = scale * qw @ kw.transpose(-1, -2)
    sigma = sigma.masked_fill(~mask, -math.inf)
    lse = torch.logsumexp(sigma, dim=-1)
    sees = mask.any(-1)
    lse_safe = lse.where(sees, 0.0)
    p = torch.where(mask, torch.exp(sigma - lse_safe[..., None]), 0.0)
    o = p @ vw
    return Exact(qw, kw, vw, mask, sigma, lse, p, o, sees, scale, group)


def score_error(ex: Exact, arith: str) -> torch.Tensor:
    """``[r, h, n, n]`` the bound on each raw score's error: head_dim / 16 mma steps in
    ascending 16-column chunks, each adding 16 products to the running score (0 at first)."""
    r, h, n, d = ex.q.shape
    qc = ex.q.view(r, h, n, d // 16, 16)
    kc = ex.k.view(r, h, n, d // 16, 16)
    part = torch.einsum("rhitc,rhjtc->rhijt", qc, kc)
    mag = torch.einsum("rhitc,rhjtc->rhijt", qc.abs(), kc.abs())
    c = part.cumsum(-1)
    before = torch.cat([torch.zeros_like(c[..., :1]), c[..., :-1]], -1).abs()
    if arith == "emulator":
        step = U * c.abs() + 2.0**-48 * (before + mag)
    else:
        step = mma_step(arith) * (before + mag)
    return step.sum(-1) * (1.0 + 2.0**-10)


def forward_bounds(ex: Exact, plan, dtype, arith: str):
    """Per-element bounds: O ``[r, n, h, d]`` and LSE ``[r, h, n]`` (0 where a query sees no
    key: those must be exact). docs/forward.md, "LSE bound" and "O bound"."""
    u_t, tiny_t = unit_roundoff(dtype), underflow(dtype)
    tiles, bk = tiles_per_query(plan)
    T = tiles[:, None, :]  # [r, 1, n]
    mask = ex.mask
    err = score_error(ex, arith)
    e_s = (ex.scale * err).masked_fill(~mask, 0.0).amax(-1)  # [r, h, n]
    top = ex.sigma.amax(-1, keepdim=True)
    gap = torch.where(mask, top - ex.sigma, 0.0)
    w = ex.p
    mean_gap = (w * gap).sum(-1)
    n_vis = mask.sum(-1).to(torch.float64).expand_as(e_s)
    lam = (T + bk / 4.0 + 1.0) * U
    kappa = 2.0 * U + ETA
    lse = ex.lse.where(ex.sees, 0.0)
    lse_tol = (
        e_s + U * lse.abs() + T * EX2 + lam + kappa * mean_gap + LN2 * LG2_ABS
        + 4.0 * U * (torch.log(n_vis.clamp(min=1)) + 1.0) + n_vis * 2.0**-126
    ) * (1.0 + 2.0**-10)
    pv = (bk / 16.0) * T * mma_step(arith) + (T - 1.0) * U
    rel = 2.0 * (e_s + T * EX2) + u_t + pv + lam + kappa * mean_gap
    assert float(rel.max()) < 0.05, "first-order O bound too large to apply"
    flushed = (tiny_t + 2.0**-126) * 1.002
    coef = torch.where(mask, rel[..., None] * w + kappa * w * gap + flushed, 0.0)
    o_tol = coef @ ex.v.abs()
    slack = (1.0 + 2.0 * rel)[..., None]
    o_tol = slack * (o_tol + (u_t + 2.0 * U) * ex.o.abs()) + tiny_t
    sees = ex.sees
    lse_tol = lse_tol.where(sees, 0.0)
    o_tol = o_tol.where(sees[..., None], 0.0)
    return o_tol.transpose(1, 2), lse_tol


def stats_stride(n: int) -> int:
    """n rounded up to whole backward q tiles (the crate's workspace stride)."""
    from prefix_attn import _native

    return _native.workspace_len((1, n, 1, 1, 64))


@dataclass
class BackwardRef:
    dq: torch.Tensor  # [r, n, h, d]
    dk: torch.Tensor  # [r, n, kvh, d]
    dv: torch.Tensor
    r: tuple  # R_G per gradient (square-rooted), layouts as the gradients
    w: tuple  # W_G
    delta: float
    query_sees: torch.Tensor  # [r, n]
    key_seen: torch.Tensor  # [r, n]


def backward_reference(ex: Exact, d_o, dtype) -> BackwardRef:
    """The float64 gradients of the rounded inputs and the magnitudes R and W of the backward's
    bound (docs/backward.md, "Where the kernels round", "Independent and shared errors")."""
    r, h, n, d = ex.q.shape
    u = unit_roundoff(dtype)
    scale, group = ex.scale, ex.group
    mma = lambda steps: steps * 18.0 * 2.0**-23  # noqa: E731: per 16-product mma step
    gamma_d = mma(d / 16.0)
    keys = max(stats_stride(n), -(-n // 128) * 128)
    gamma_keys = mma(keys / 16.0) + 2.0**-21
    gamma_acc = mma(group * keys / 16.0) + 2.0**-23
    g = heads_major(d_o)
    m = ex.mask
    p, o = ex.p, ex.o
    big_d = (g * o).sum(-1)  # [r, h, n]
    dp = g @ ex.v.transpose(-1, -2)  # [r, h, i, j]
    ds = torch.where(m, p * (dp - big_d[..., None]), 0.0)
    abs_qk = ex.q.abs() @ ex.k.abs().transpose(-1, -2)
    eps = torch.where(m, LN2 * 1.01 * gamma_d * scale * LOG2E * abs_qk, 0.0)
    pv = p @ ex.v.abs()
    pk = p @ ex.k
    d_rms = (((u + eps) * p * dp) ** 2).sum(-1) + ((u * g * o) ** 2).sum(-1)
    d_err = d_rms.sqrt() + gamma_keys * (g.abs() * pv).sum(-1) + gamma_d * (g * o).abs().sum(-1)
    abs_dov = g.abs() @ ex.v.abs().transpose(-1, -2)
    ds_pair = ds.abs() * (u + eps) + p * gamma_d * abs_dov
    ds_with_d = torch.where(m, ds_pair + p * d_err[..., None], 0.0)
    ds_pair = torch.where(m, ds_pair, 0.0)
    t = lambda x: x.transpose(-1, -2)  # noqa: E731

    def per_kv(x):  # [r, h, n, d] summed over each kv head's group -> [r, n, kvh, d]
        return x.view(r, h // group, group, n, d).sum(2).transpose(1, 2)

    dv = per_kv(t(p) @ g)
    dk = per_kv(scale * t(ds) @ ex.q)
    dq = (scale * ds @ ex.k).transpose(1, 2)
    r_dv = per_kv(t(((u + eps) * p) ** 2) @ g**2).sqrt()
    r_dk = per_kv(scale**2 * t(ds_with_d**2) @ ex.q**2).sqrt()
    r_dq = (scale**2 * ds_pair**2 @ ex.k**2 + (scale * d_err[..., None] * pk) ** 2)
    r_dq = r_dq.sqrt().transpose(1, 2)
    w_dv = per_kv(t(p) @ g.abs())
    w_dk = per_kv(scale * t(ds.abs()) @ ex.q.abs())
    w_dq = (scale * ds.abs() @ ex.k.abs()).transpose(1, 2)
    sig = ex.sigma.where(m, 0.0)
    s_max = float(sig.abs().max()) * LOG2E
    l_max = float(ex.lse.where(ex.sees, 0.0).abs().max()) * LOG2E
    delta_sys = EX2 + LN2 * 1.01 * U * (2.0 * s_max + 2.0 * l_max)
    delta = delta_sys + gamma_acc + 2.0 * U
    query_sees = ex.sees[:, 0]
    key_seen = m[:, 0].any(1)
    return BackwardRef(dq, dk, dv, (r_dq, r_dk, r_dv), (w_dq, w_dk, w_dv), delta, query_sees, key_seen)


def given_lse_error(ex: Exact, lse: torch.Tensor) -> float:
    """max |LSE_kernel - LSE| over queries that see a key (where it must be exactly -inf
    elsewhere), checked against LSE_ERR_MAX: the relative error of every recomputed P is at most
    e (1 + e), added to delta."""
    got = lse.detach().to("cpu", torch.float64)
    sees = ex.sees.expand_as(got)
    assert bool((got[~sees] == -math.inf).all()), "LSE of a query that sees no key is not -inf"
    e = float((got - ex.lse).where(sees, 0.0).abs().max())
    assert e <= LSE_ERR_MAX, f"the forward's LSE is {e:e} off, beyond {LSE_ERR_MAX:e}"
    return e


def backward_tolerance(ref: BackwardRef, which: int, dtype, extra_delta: float) -> float:
    """``2 ||R|| + delta ||W|| + u ||G|| + eta sqrt(N)`` for gradient ``which`` (0 dQ, 1 dK, 2 dV)."""
    g = (ref.dq, ref.dk, ref.dv)[which]
    delta = ref.delta + extra_delta
    return float(
        2.0 * ref.r[which].norm() + delta * ref.w[which].norm() + unit_roundoff(dtype) * g.norm()
        + underflow(dtype) * math.sqrt(g.numel())
    )
