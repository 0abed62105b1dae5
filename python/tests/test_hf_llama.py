"""A tiny, randomly initialised Llama from transformers (built from a config: nothing downloaded):
the shared rows through ``attn_implementation="prefix_attn"`` give the per-completion log-probs,
the DPO loss and the parameter gradients of the paired rows through ``"sdpa"``, within a bound
derived from the op's own bounds.

The model runs in float64; the op rounds q, k and v to float16 (``hf.register(torch.float16)``)
and its output back. So the two runs differ by (1) the kernels' errors and (2) the rounding of
q, k, v and dO to float16. The bound (python/README.md, "The Llama test"):

- A third run, the shared rows through a float64 masked attention (``"prefix_attn_reference"``,
  defined here), equals the paired SDPA run to 1e-10 relative: sharing itself changes nothing.
- Around that run, each attention call l's output error is bounded per element by
  ``E_O = forward bound of the rounded inputs (tests/bounds.py) + |O(rounded) - O(exact)|``
  (the second computed exactly in float64), and its gradients' errors in Frobenius norm by
  ``e_G = backward bound + ||G(rounded inputs, rounded dO) - G(exact)||``, all evaluated on the
  inputs the op was given in the prefix_attn run.
- A scalar y (a log-prob, the loss) moves by at most ``sum_l <|dy/dO_l|, E_O,l>`` to first
  order (dy/dO_l by autograd in float64).
- The parameter gradients G: for any unit direction w, ``<w, G>`` is a scalar that moves by at
  most ``sum_l <|d<w,G>/dE_l|, E_O,l> + sum_l sum_x ||d<w,G>/d delta_x,l|| e_x,l`` (E_l an
  error added to O_l, delta_x,l one added to the gradient reaching x = q, k, v of call l; both
  derivatives by double backward in float64). The bound holds for every w at once, so it holds
  for w along the observed difference, where ``<w, dG> = ||dG||``: the norm of the difference is
  bounded, per parameter tensor and for all of them together.
- First-order terms are taken 1.25 times and must be under 10% of the quantity they bound (the
  neglected second-order terms are then about that fraction of them, inside the 25%), as in the
  crate's toy-model test (docs/backward.md, "The toy model through the kernels", which uses 5%;
  here the layer-norm weights' gradients, the most sensitive, reach 9%).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import bounds
import prefix_attn
import prefix_attn.hf

transformers = pytest.importorskip("transformers")

VOCAB = 96
BETA = 0.1
SLACK = 1.25
#: A first-order bound is trusted while it is under this fraction of what it bounds: the
#: neglected second-order terms are then about that fraction of it, inside SLACK's 25%.
VALID = 0.10


def make_model(attn, device):
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=128,
        initializer_range=0.08, tie_word_embeddings=False, attn_implementation=attn,
    )
    torch.manual_seed(1234)
    model = transformers.LlamaForCausalLM(cfg).to(device=device, dtype=torch.float64)
    model.train()
    return model


def samples():
    g = torch.Generator().manual_seed(5)
    tok = lambda k: torch.randint(1, VOCAB, (k,), generator=g).tolist()  # noqa: E731
    return [(tok(20), [tok(12), tok(7)]), (tok(9), [tok(15), tok(15)]), (tok(14), [tok(4), tok(10)])]


REF_LOGPS_CPU = torch.tensor([[-30.0, -25.0], [-40.0, -41.0], [-20.0, -24.0]], dtype=torch.float64)


def dpo(logps):
    ref = REF_LOGPS_CPU.to(logps.device)
    margin = (logps[:, 0] - logps[:, 1]) - (ref[:, 0] - ref[:, 1])
    return -F.logsigmoid(BETA * margin).mean()


class Recorder:
    """Per attention call (layer): the inputs and output it was given, and the gradient that came
    back into its output; optional additive errors E (outputs) and delta (q, k, v gradients)."""

    def __init__(self):
        self.calls = {}
        self.inject_o = None
        self.inject_grads = None

    def record(self, module, query, key, value, out):
        c = {"q": query, "k": key, "v": value, "o": out}
        self.calls[module.layer_idx] = c
        if out.requires_grad:
            out.register_hook(lambda g: c.__setitem__("d_o", g.detach()))


REC = Recorder()


def reference_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                        prefix_attn_plan=None, **kwargs):
    """float64 masked attention of the same rule (torch's SDPA math backend, boolean mask from
    the plan's vis_end), with the recorder's injections."""
    group = query.shape[1] // key.shape[1]
    mask = bounds.mask_of(prefix_attn_plan.vis_end.cpu())[:, None].to(query.device)
    scale = float(torch.tensor(scaling, dtype=torch.float32))
    with sdpa_kernel(SDPBackend.MATH):
        o = F.scaled_dot_product_attention(
            query, key.repeat_interleave(group, 1), value.repeat_interleave(group, 1),
            attn_mask=mask, scale=scale,
        ).transpose(1, 2)
    layer = module.layer_idx
    if REC.inject_o is not None:
        o = o + REC.inject_o[layer]
    REC.record(module, query, key, value, o)
    return o, None


def recording_prefix_attn(module, query, key, value, attention_mask, **kwargs):
    """The package's attention function (what hf.register installs), recording its call."""
    o, w = prefix_attn.hf.prefix_attn_forward(module, query, key, value, attention_mask, **kwargs)
    REC.record(module, query, key, value, o)
    return o, w


def _rms_norm_f64(self, hidden_states):
    """LlamaRMSNorm without its cast to float32 (which rounds a float64 model's activations and
    makes a prompt token's summed gradient round differently from its copies' gradients)."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.fixture(scope="module")
def registered():
    from transformers.models.llama import modeling_llama

    patch = pytest.MonkeyPatch()
    patch.setattr(modeling_llama.LlamaRMSNorm, "forward", _rms_norm_f64)
    prefix_attn.hf.register(torch.float16)
    iface = transformers.AttentionInterface
    assert iface._global_mapping["prefix_attn"] is prefix_attn.hf.prefix_attn_forward
    iface.register("prefix_attn", recording_prefix_attn)
    iface.register("prefix_attn_reference", reference_attention)
    yield
    prefix_attn.hf.register()  # back to the package's function and bfloat16
    patch.undo()


def run(model, batch, plan=None):
    """Log-probs, DPO loss and parameter gradients of one step (use_cache off: a training
    step; position_ids from the batch, no attention_mask)."""
    model.zero_grad()
    REC.calls = {}
    kw = {} if plan is None else {"prefix_attn_plan": plan}
    out = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False, **kw)
    logps = prefix_attn.completion_logps(out.logits, batch)
    loss = dpo(logps)
    return out.logits, logps, loss


def params(model):
    return [p for p in model.parameters()]


def test_shared_prefix_attn_matches_paired_sdpa(registered, device):
    shared = prefix_attn.Batch.shared(samples(), max_len=64, round_to=64, vocab=VOCAB).to(device)
    paired = prefix_attn.Batch.paired(samples(), max_len=64, round_to=64, vocab=VOCAB).to(device)
    # Each prompt once: fewer real tokens than the paired rows.
    assert shared.efficiency * shared.rows * shared.n < paired.efficiency * paired.rows * paired.n
    plan = shared.plan(device)
    arith = "emulator" if device.type == "cpu" else "device"

    # 1. Paired rows through "sdpa" (transformers finds the packed sequences from position_ids).
    m_sdpa = make_model("sdpa", device)
    with sdpa_kernel(SDPBackend.MATH):  # float64 throughout (the CPU flash kernel is not)
        _, lp_paired, loss_paired = run(m_sdpa, paired)
        loss_paired.backward()
    g_paired = [p.grad.clone() for p in params(m_sdpa)]

    # 2. Shared rows through the float64 reference of the same rule: equal to 1e-10.
    m_ref = make_model("prefix_attn_reference", device)
    _, lp_ref, loss_ref = run(m_ref, shared, plan)
    torch.testing.assert_close(lp_ref, lp_paired, rtol=1e-10, atol=1e-10)
    loss_ref_v = loss_ref.item()
    grads_o = {}
    scalars = [lp_ref[s, c] for s in range(3) for c in range(2)] + [loss_ref]
    outs = [REC.calls[l]["o"] for l in sorted(REC.calls)]
    for i, y in enumerate(scalars):
        grads_o[i] = torch.autograd.grad(y, outs, retain_graph=True)
    loss_ref.backward()
    g_ref = [p.grad.clone() for p in params(m_ref)]
    for a, b in zip(g_ref, g_paired):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    # 3. Shared rows through "prefix_attn" (the kernels; on the CPU, the emulator).
    m_pa = make_model("prefix_attn", device)
    _, lp_pa, loss_pa = run(m_pa, shared, plan)
    loss_pa.backward()
    g_pa = [p.grad.clone() for p in params(m_pa)]
    calls = {l: dict(c) for l, c in REC.calls.items()}

    # Error bounds of each call, on the inputs the op was given.
    e_o, e_g = {}, {}
    for l, c in calls.items():
        e_o[l], e_g[l] = call_bounds(c, plan, arith)

    # Scalars: log-probs and the loss.
    paired_scalars = [lp_paired[s, c] for s in range(3) for c in range(2)] + [loss_paired]
    for i, (got, want, base) in enumerate(zip(
            [lp_pa[s, c] for s in range(3) for c in range(2)] + [loss_pa], scalars, paired_scalars)):
        first = sum(float((g.cpu().abs() * e_o[l]).sum()) for l, g in enumerate(grads_o[i]))
        y = want.item()
        assert first <= VALID * abs(y), f"scalar {i}: first-order bound {first:.2e} too large"
        tol = SLACK * first + 1e-10 * abs(y)
        err = abs(got.item() - base.item())
        assert err <= tol, f"scalar {i}: |shared - paired| = {err:.3e} > bound {tol:.3e}"

    # Parameter gradients: for a unit direction w, <w, G> is a scalar whose first-order error
    # is at most sum_l <|d<w,G>/dE_l|, E_O,l> + sum_l sum_x ||d<w,G>/d delta_x,l|| e_x,l, for every
    # w at once; so taking w = the observed difference's direction bounds its norm. Per parameter
    # tensor and for all of them together.
    diffs = [a - b for a, b in zip(g_pa, g_paired)]
    named = [name for name, _ in m_pa.named_parameters()]
    blocks = [(name, [i]) for i, name in enumerate(named)] + [("all", list(range(len(named))))]
    for name, idx in blocks:
        diff = math.sqrt(sum(float(diffs[i].norm()) ** 2 for i in idx))
        g_norm = math.sqrt(sum(float(g_paired[i].norm()) ** 2 for i in idx))
        if diff == 0.0:
            continue
        w = [diffs[i] / diff if i in idx else torch.zeros_like(diffs[i]) for i in range(len(named))]
        d_e, d_delta = directional_sensitivity(m_ref, shared, plan, w)
        first = sum(float((d_e[l].cpu().abs() * e_o[l]).sum()) for l in calls)
        first += sum(float(t.norm()) * e for l in calls for t, e in zip(d_delta[l], e_g[l]))
        assert first <= VALID * g_norm, f"{name}: first-order bound {first:.2e} vs ||G|| {g_norm:.2e}"
        tol = SLACK * first + 1e-10 * g_norm
        assert diff <= tol, f"{name}: ||G_shared - G_paired|| = {diff:.3e} > bound {tol:.3e}"
        if name == "all":
            print(f"\nllama: loss {loss_pa.item():.8f} vs {loss_paired.item():.8f}; ||dG|| {diff:.3e} "
                  f"<= {tol:.3e} (||G|| {g_norm:.3e})")


def call_bounds(c, plan, arith):
    """E_O (elementwise, [b, s, h, d]) and e_G (dq, dk, dv: Frobenius) of one call."""
    q64, k64, v64 = (c[x].detach().transpose(1, 2) for x in ("q", "k", "v"))  # [b, s, h, d]
    q64, k64, v64 = (t.cpu() for t in (q64, k64, v64))
    d_o64 = c["d_o"].cpu()
    q16, k16, v16, d_o16 = (t.to(torch.float16) for t in (q64, k64, v64, d_o64))
    scale = 64**-0.5
    ex = bounds.exact(q16, k16, v16, plan.vis_end, scale)
    o_tol, lse_tol = bounds.forward_bounds(ex, plan, torch.float16, arith)
    ex_exact = bounds.exact(q64, k64, v64, plan.vis_end, scale)
    e_o = o_tol + (ex.o - ex_exact.o).abs().transpose(1, 2)
    ref16 = bounds.backward_reference(ex, d_o16, torch.float16)
    ref64 = bounds.backward_reference(ex_exact, d_o64, torch.float16)
    lse_err = float(lse_tol.max())  # the forward's LSE is within its own bound
    e_g = []
    for which, (a, b) in enumerate(zip((ref16.dq, ref16.dk, ref16.dv), (ref64.dq, ref64.dk, ref64.dv))):
        tol = bounds.backward_tolerance(ref16, which, torch.float16, lse_err * (1 + lse_err))
        e_g.append(tol + float((a - b).norm()))
    return e_o, e_g


def directional_sensitivity(model, batch, plan, w):
    """d<w, G>/dE_l and d<w, G>/d delta_l at the float64 reference run, by double backward: G is
    the parameter gradient of the loss plus sum_l <delta_q,l, q_l> + <delta_k,l, k_l> +
    <delta_v,l, v_l> (an additive error in the gradients reaching q, k, v), with each attention
    output O_l + E_l; both perturbations at 0."""
    ps = params(model)
    REC.calls = {}
    with torch.no_grad():
        model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
              prefix_attn_plan=plan)
    layers = sorted(REC.calls)
    e = [torch.zeros_like(REC.calls[l]["o"]).requires_grad_() for l in layers]
    deltas = [tuple(torch.zeros_like(REC.calls[l][x]).requires_grad_() for x in ("q", "k", "v"))
              for l in layers]
    REC.inject_o = e
    REC.calls = {}
    model.zero_grad()
    out = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                prefix_attn_plan=plan)
    REC.inject_o = None
    loss = dpo(prefix_attn.completion_logps(out.logits, batch))
    for l in layers:
        c = REC.calls[l]
        loss = loss + sum((d * c[x]).sum() for d, x in zip(deltas[l], ("q", "k", "v")))
    gs = torch.autograd.grad(loss, ps, create_graph=True)
    s = sum((g * wi).sum() for g, wi in zip(gs, w))
    flat_deltas = [d for ds in deltas for d in ds]
    got = torch.autograd.grad(s, e + flat_deltas, allow_unused=True)
    z = lambda g, t: torch.zeros_like(t) if g is None else g  # noqa: E731
    d_e = {l: z(got[i], e[i]).detach() for i, l in enumerate(layers)}
    rest = [z(g, t).detach() for g, t in zip(got[len(e):], flat_deltas)]
    d_delta = {l: rest[3 * i:3 * i + 3] for i, l in enumerate(layers)}
    return d_e, d_delta
