"""The op against torch's own SDPA (math backend) in float64 on the same bf16/f16 inputs, with the
boolean mask from ``vis_end``: every element of O and LSE within its derived bound, each gradient
within its derived Frobenius bound (tests/bounds.py), outputs poisoned (NaN) so an element the
kernels skip fails, exact zeros where a query sees nothing or nobody sees a key. Rows: DPO,
GRPO, packed, tree and padded; GQA; head dims 64 and 128; bf16 and f16."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import bounds
import layouts
import prefix_attn
from prefix_attn import ops

# (layout, dtype, head_dim, q_heads, kv_heads): each layout at least once, both dtypes and head
# dims, GQA groups of 1, 2 and 4. Kept small: on the CPU the kernels run under the emulator.
CASES = [
    ("dpo", torch.bfloat16, 64, 4, 2),
    ("dpo", torch.float16, 128, 2, 1),
    ("grpo", torch.float16, 64, 4, 1),
    ("grpo", torch.bfloat16, 128, 2, 2),
    ("packed", torch.bfloat16, 64, 2, 2),
    ("tree", torch.float16, 64, 4, 2),
    ("tree", torch.bfloat16, 128, 4, 4),
    ("padded", torch.bfloat16, 64, 2, 1),
]


def case_id(c):
    layout, dtype, d, qh, kvh = c
    return f"{layout}-{str(dtype).split('.')[-1]}-d{d}-{qh}q{kvh}kv"


def make_inputs(vis_end, dtype, d, qh, kvh, device, seed, spread=1.0):
    """Q, K, V and dO, seeded, rounded to ``dtype``; Q, K and V as ``transpose(1, 2)`` views of
    Hugging Face's ``[b, h, s, d]`` (the layout a model hands the op), dO dense."""
    g = torch.Generator().manual_seed(seed)
    rows, n = vis_end.shape

    def x(heads):
        t = (torch.rand(rows, heads, n, d, generator=g, dtype=torch.float64) * 2 - 1) * spread
        return t.to(dtype).to(device).transpose(1, 2)

    q, k, v = x(qh), x(kvh), x(kvh)
    d_o = (torch.rand(rows, n, qh, d, generator=g, dtype=torch.float64) * 2 - 1).to(dtype).to(device)
    return q, k, v, d_o


@pytest.fixture
def poisoned(monkeypatch):
    """Every buffer the ops allocate starts as NaN (0xFFFF for the 2-byte types)."""

    def alloc(shape, dtype, device):
        return torch.full(shape, math.nan, dtype=dtype, device=device)

    monkeypatch.setattr(ops, "_alloc", alloc)


def sdpa_reference(q, k, v, d_o, vis_end, scale):
    """O and dQ, dK, dV from torch's SDPA (math backend) in float64 with the boolean mask."""
    group = q.shape[2] // k.shape[2]
    wide = [t.detach().to("cpu", torch.float64).transpose(1, 2).requires_grad_() for t in (q, k, v)]
    mask = bounds.mask_of(vis_end)[:, None]
    with sdpa_kernel(SDPBackend.MATH):
        o = F.scaled_dot_product_attention(
            wide[0], wide[1].repeat_interleave(group, 1), wide[2].repeat_interleave(group, 1),
            attn_mask=mask, scale=scale,
        )
    o.backward(d_o.detach().to("cpu", torch.float64).transpose(1, 2))
    return o.detach().transpose(1, 2), [w.grad.transpose(1, 2) for w in wide]


def check_case(layout, dtype, d, qh, kvh, device, seed=7, report=None):
    vis_end = layouts.LAYOUTS[layout]()
    plan = prefix_attn.Plan(vis_end.to(device))
    q, k, v, d_o = make_inputs(vis_end, dtype, d, qh, kvh, device, seed)
    assert ops._aligned(q) is q and ops._aligned(k) is k, "transpose(1, 2) views must not be copied"
    scale = d**-0.5
    arith = "emulator" if device.type == "cpu" else "device"
    ex = bounds.exact(q, k, v, vis_end, scale)

    # Forward: O and LSE from the op itself, every element within its bound.
    o, lse = torch.ops.prefix_attn.attention_fwd(q, k, v, plan.vis_end, plan.key, scale)
    assert o.shape == q.shape and o.dtype == dtype and lse.shape == (vis_end.shape[0], qh, vis_end.shape[1])
    o64, lse64 = o.to("cpu", torch.float64), lse.to("cpu", torch.float64)
    sees = ex.sees.expand_as(lse64)
    assert torch.isfinite(o64).all(), "O has NaN/inf: an element was not written"
    assert torch.isfinite(lse64[sees]).all() and (lse64[~sees] == -math.inf).all()
    assert (o64.transpose(1, 2)[~sees] == 0).all(), "a query that sees no key must give O = 0"
    o_tol, lse_tol = bounds.forward_bounds(ex, plan, dtype, arith)
    o_ref, grads_ref = sdpa_reference(q, k, v, d_o, vis_end, ex.scale)
    # The bound's own float64 softmax is SDPA's.
    assert torch.allclose(ex.o.transpose(1, 2), o_ref, rtol=1e-12, atol=1e-13)
    o_err = (o64 - o_ref).abs()
    worst = float((o_err / o_tol.clamp(min=1e-300)).max())
    assert (o_err <= o_tol).all(), f"O off by {float(o_err.max()):.3e}, {worst:.2f}x its bound"
    lse_err = (lse64 - ex.lse).where(sees, 0.0).abs()
    assert (lse_err <= lse_tol).all(), f"LSE off by {float(lse_err.max()):.3e}"

    # Backward through autograd (attention -> the backward op), against SDPA's gradients.
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = prefix_attn.attention(*leaves, plan)
    assert torch.equal(out, o), "attention() and the forward op differ"
    out.backward(d_o)
    ref = bounds.backward_reference(ex, d_o, dtype)
    for mine, theirs in zip((ref.dq, ref.dk, ref.dv), grads_ref):
        assert torch.allclose(mine, theirs, rtol=1e-10, atol=1e-12), "bound's gradients != SDPA's"
    extra = bounds.given_lse_error(ex, lse)
    ratios = []
    for which, (name, leaf, want) in enumerate(zip(("dq", "dk", "dv"), leaves, grads_ref)):
        got = leaf.grad.to("cpu", torch.float64)
        assert got.shape == want.shape
        assert torch.isfinite(got).all(), f"{name} has NaN/inf: an element was not written"
        zero = ~(ref.query_sees if which == 0 else ref.key_seen)
        assert (got[zero] == 0).all(), f"{name}: nonzero where there is no gradient"
        err = float((got - want).norm())
        tol = bounds.backward_tolerance(ref, which, dtype, extra * (1 + extra))
        ratios.append(err / tol)
        assert err <= tol, f"||{name} - SDPA|| = {err:.3e} > bound {tol:.3e} (||G|| = {float(want.norm()):.3e})"
    if report is not None:
        report.append((worst, ratios))
    return leaves, d_o, plan


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_against_sdpa(case, device, poisoned):
    check_case(*case, device)


def test_backward_is_deterministic(device):
    """The same bits from two backward calls (no atomics)."""
    vis_end = layouts.grpo()
    plan = prefix_attn.Plan(vis_end.to(device))
    q, k, v, d_o = make_inputs(vis_end, torch.bfloat16, 64, 4, 2, device, seed=3)
    grads = []
    for _ in range(2):
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        prefix_attn.attention(*leaves, plan).backward(d_o)
        grads.append([t.grad for t in leaves])
    for a, b in zip(*grads):
        assert torch.equal(a.view(torch.int16), b.view(torch.int16))


def test_layouts_give_the_same_bits(device):
    """Dense, transposed (HF) and fused-QKV-slice inputs read in place, and a misaligned view
    (copied first) give identical outputs and gradients."""
    vis_end = layouts.dpo()
    rows, n = vis_end.shape
    plan = prefix_attn.Plan(vis_end.to(device))
    q, k, v, d_o = make_inputs(vis_end, torch.float16, 64, 2, 2, device, seed=5)
    dense = [t.contiguous() for t in (q, k, v)]
    fused = torch.stack(dense, dim=2)  # [rows, n, 3, heads, d]
    sliced = [fused[:, :, i] for i in range(3)]
    assert all(ops._aligned(t) is t for t in sliced)
    buf = torch.empty(fused.numel() + 1, dtype=torch.float16, device=device)
    odd = [buf[1:1 + t.numel()].view(t.shape).copy_(t) for t in dense[:1]] + dense[1:]
    assert ops._aligned(odd[0]) is not odd[0]
    results = []
    for inputs in ((q, k, v), dense, sliced, odd):
        leaves = [t.detach().requires_grad_() for t in inputs]
        o = prefix_attn.attention(*leaves, plan)
        o.backward(d_o)
        results.append([o] + [t.grad.contiguous() for t in leaves])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_scale_defaults_to_inverse_sqrt_d():
    vis_end = layouts.packed()
    plan = prefix_attn.Plan(vis_end)
    q, k, v, _ = make_inputs(vis_end, torch.bfloat16, 128, 2, 1, torch.device("cpu"), seed=9)
    assert torch.equal(prefix_attn.attention(q, k, v, plan), prefix_attn.attention(q, k, v, plan, 128**-0.5))
    assert not torch.equal(prefix_attn.attention(q, k, v, plan), prefix_attn.attention(q, k, v, plan, 0.05))


def test_bad_input_is_a_python_exception():
    cpu = torch.device("cpu")
    vis_end = layouts.dpo()
    plan = prefix_attn.Plan(vis_end)
    q, k, v, _ = make_inputs(vis_end, torch.bfloat16, 64, 4, 2, cpu, seed=1)
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        prefix_attn.attention(q.float(), k.float(), v.float(), plan)
    with pytest.raises(ValueError, match="must match"):
        prefix_attn.attention(q, k.half(), v, plan)
    with pytest.raises(ValueError, match="the plan is for"):
        prefix_attn.attention(q[:1], k[:1], v[:1], plan)
    # The crate's own typed errors, with their text.
    q3, k3, v3, _ = make_inputs(vis_end, torch.bfloat16, 64, 3, 2, cpu, seed=1)
    with pytest.raises(ValueError, match="key/value heads"):
        prefix_attn.attention(q3, k3, v3, plan)
    q32, k32, v32, _ = make_inputs(vis_end, torch.bfloat16, 32, 2, 2, cpu, seed=1)
    with pytest.raises(ValueError, match="32"):
        prefix_attn.attention(q32, k32, v32, plan)
    with pytest.raises(ValueError, match="scale"):
        prefix_attn.attention(q, k, v, plan, scale=-1.0)
    bad = vis_end.clone()
    bad[0, 5] = 101
    with pytest.raises(ValueError, match="vis_end"):
        prefix_attn.Plan(bad)
    bad[0, 5] = 3  # below its own index
    with pytest.raises(ValueError):
        prefix_attn.Plan(bad)
    with pytest.raises(ValueError, match=r"\[rows, n\]"):
        prefix_attn.Plan(torch.zeros(5, dtype=torch.int32))
    with pytest.raises(TypeError):
        prefix_attn.attention(q, k, v, vis_end)


def test_a_dropped_plan_is_rebuilt_from_vis_end():
    """The backward after the Plan object is gone (or a key from another process) rebuilds the
    plan from vis_end and gives the same bits."""
    vis_end = layouts.tree()
    q, k, v, d_o = make_inputs(vis_end, torch.bfloat16, 64, 2, 1, torch.device("cpu"), seed=11)
    plan = prefix_attn.Plan(vis_end)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    prefix_attn.attention(*leaves, plan).backward(d_o)
    want = [t.grad for t in leaves]
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    o = prefix_attn.attention(*leaves, prefix_attn.Plan(vis_end))  # dropped right after
    import gc

    gc.collect()
    o.backward(d_o)
    for a, b in zip(want, (t.grad for t in leaves)):
        assert torch.equal(a, b)
    foreign = torch.tensor([12345, 1], dtype=torch.int64)
    o2, _ = torch.ops.prefix_attn.attention_fwd(q, k, v, vis_end, foreign, 64**-0.5)
    assert torch.equal(o2, prefix_attn.attention(q, k, v, plan))
