"""The custom ops are ordinary ops to torch: ``torch.library.opcheck`` (schema, fake tensors,
autograd registration, AOT dispatch with static and dynamic shapes) passes for both, and a module
calling the op under ``torch.compile`` gives the eager outputs and gradients, without a recompile
when the batch (plan) changes."""

import pytest
import torch

import layouts
import prefix_attn
from test_op import make_inputs


def inputs(device, layout="dpo", dtype=torch.bfloat16, d=64, qh=2, kvh=1, seed=21):
    vis_end = layouts.LAYOUTS[layout]()
    plan = prefix_attn.Plan(vis_end.to(device))
    q, k, v, d_o = make_inputs(vis_end, dtype, d, qh, kvh, device, seed)
    return plan, q, k, v, d_o


def test_opcheck_forward(device):
    plan, q, k, v, _ = inputs(device)
    args = (q.detach().requires_grad_(), k.detach().requires_grad_(), v.detach().requires_grad_(),
            plan.vis_end, plan.key, 64**-0.5)
    torch.library.opcheck(torch.ops.prefix_attn.attention_fwd.default, args)


def test_opcheck_backward(device):
    plan, q, k, v, d_o = inputs(device, layout="tree", dtype=torch.float16)
    o, lse = torch.ops.prefix_attn.attention_fwd(q, k, v, plan.vis_end, plan.key, 0.125)
    args = (d_o, q, k, v, o, lse, plan.vis_end, plan.key, 0.125)
    torch.library.opcheck(torch.ops.prefix_attn.attention_bwd.default, args)


class Block(torch.nn.Module):
    """Projections around the op, as a model layer would hold it."""

    def __init__(self, hidden=128, qh=2, kvh=1, d=64):
        super().__init__()
        self.qh, self.kvh, self.d = qh, kvh, d
        self.qkv = torch.nn.Linear(hidden, (qh + 2 * kvh) * d, bias=False)
        self.out = torch.nn.Linear(qh * d, hidden, bias=False)

    def forward(self, x, plan):
        rows, n, _ = x.shape
        qkv = self.qkv(x).view(rows, n, self.qh + 2 * self.kvh, self.d).to(torch.bfloat16)
        q, k, v = qkv.split([self.qh, self.kvh, self.kvh], dim=2)
        o = prefix_attn.attention(q, k, v, plan)
        return self.out(o.reshape(rows, n, -1).float())


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_matches_eager(device, backend, monkeypatch):
    """aot_eager: the same bits as eager (the graph runs the same ops). inductor: the op is an
    extern kernel and the projections around it generated code (see the tolerances below)."""
    torch.manual_seed(0)
    block = Block().to(device)
    x = torch.randn(2, 100, 128, device=device)
    plans = [prefix_attn.Plan(layouts.dpo().to(device)), prefix_attn.Plan(layouts.grpo().to(device))]
    torch._dynamo.reset()
    compiled = torch.compile(block, backend=backend, fullgraph=True)
    for i, plan in enumerate(plans):
        results = []
        for fn in (block, compiled):
            block.zero_grad()
            xi = x.detach().requires_grad_()
            y = fn(xi, plan)
            y.square().mean().backward()
            results.append([y, xi.grad] + [p.grad.clone() for p in block.parameters()])
        for a, b in zip(*results):
            if backend == "aot_eager":
                assert torch.equal(a, b)
            elif device.type == "cpu":
                # Observed bit-equal here (the projections run the same BLAS calls).
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            else:
                # Generated float32 projections may round their last bit differently from
                # eager's, which can flip one bf16 rounding of a q, k or v element (2^-8
                # relative): this test checks the op's plumbing under inductor, the op's
                # numerics are test_op's.
                torch.testing.assert_close(a, b, rtol=2**-6, atol=2**-6)
        if i == 0:
            # A new batch of the same shape must not recompile: the plan reaches the graph as
            # tensors (vis_end, key), never as a Python constant.
            monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    torch._dynamo.reset()
