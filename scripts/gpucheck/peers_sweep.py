#!/usr/bin/env python3
"""Times PyTorch peers on the problems of `cargo bench --bench sharing`, for its tables and charts.

Usage: peers_sweep.py CASES_JSON OUT_CSV [--budget-s 180] [--iters 20] [--ops attn_fwd,attn_fwd_bwd,mlp]

CASES_JSON comes from the bench (PREFIX_ATTN_BENCH_CASES_ONLY=1 writes it into its results
folder). Every case is rebuilt from its numbers, in the bench's two formats:
- paired: rows * per_row * k causal sequences of prefix + completion tokens (every completion
  with its own copy of the prompt);
- shared: rows rows of n tokens, each holding per_row samples [prefix | completion x k], masked by
  the crate's rule: query i sees key j iff j <= i and i < vis_end[j] (a prompt token is seen by
  its sample, a completion token by its own completion).

Peers, bf16, the cases' heads (GQA) and head dim:
- sdpa_cudnn, sdpa_flash: scaled_dot_product_attention restricted to ONE backend each (cuDNN,
  flash = FA2), paired format, is_causal=True. With enable_gqa first; if the backend refuses it,
  with the kv heads repeated (noted in the `note` column);
- flex: FlexAttention (the seed paper's method) on the shared format with the same mask, compiled
  once per shape;
- torch: the SwiGLU MLP as PyTorch matmuls (cuBLAS) on the tokens of each format.
Ops: attn_fwd (forward), attn_fwd_bwd (forward + backward of out against a random gradient), mlp.

Timing: 3 warm-up calls, then --iters calls each between its own pair of CUDA events; the median.
Random inputs. Each measurement is guarded: a failure is written as ms=failed with the error in
`note`, and the rest goes on. The CSV is rewritten after every case, so a run stopped at its time
limit keeps what it measured; cases left when --budget-s runs out are skipped (said on stderr).

Output CSV (read by benches/sharing/peers.rs): peer,op,case,format,ms,note
"""
import argparse
import json
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

WARMUP = 3


def median_ms(fn, iters):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def shared_vis_end(c):
    """vis_end of one shared row: per_row samples [prefix | completion x k]."""
    row = []
    p, comp, k = c["prefix"], c["completion"], c["k"]
    for _ in range(c["per_row"]):
        start = len(row)
        end = start + p + k * comp
        row += [end] * p
        for i in range(k):
            row += [start + p + (i + 1) * comp] * comp
    assert len(row) == c["shared_n"], (c["id"], len(row), c["shared_n"])
    return row


def rand(*shape, grad=False):
    t = torch.rand(*shape, device="cuda", dtype=torch.bfloat16) * 2 - 1
    return t.requires_grad_(grad)


def call(fn, backward):
    """fn() -> output; with backward, also its backward against a fixed random gradient."""
    if not backward:
        return lambda: fn()
    state = {}

    def run():
        out = fn()
        if "g" not in state:
            state["g"] = torch.rand_like(out)
        out.backward(state["g"])

    return run


def sdpa_paired(c, model, backend_name, backward, iters):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)
    hq, hkv, d = model["q_heads"], model["kv_heads"], model["head_dim"]
    batch = c["rows"] * c["per_row"] * c["k"]
    length = c["prefix"] + c["completion"]
    q = rand(batch, hq, length, d, grad=backward)
    k = rand(batch, hkv, length, d, grad=backward)
    v = rand(batch, hkv, length, d, grad=backward)
    note = ""

    def gqa():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    fn = call(gqa, backward)
    try:
        fn()
        torch.cuda.synchronize()
    except RuntimeError:
        note = "kv heads repeated"
        kx = k.detach().repeat_interleave(hq // hkv, 1).requires_grad_(backward)
        vx = v.detach().repeat_interleave(hq // hkv, 1).requires_grad_(backward)

        def expanded():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, kx, vx, is_causal=True)

        fn = call(expanded, backward)
    return median_ms(fn, iters), note


_flex = None


def flex_shared(c, model, backward, iters):
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _flex is None:
        # One compiled graph per shape; above dynamo's recompile limit flex would run eagerly.
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 256)
        _flex = torch.compile(flex_attention, dynamic=False)
    hq, hkv, d = model["q_heads"], model["kv_heads"], model["head_dim"]
    rows, n = c["rows"], c["shared_n"]
    vis = torch.tensor([shared_vis_end(c)] * rows, device="cuda", dtype=torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx < vis[b, kv_idx])

    block_mask = create_block_mask(mask_mod, rows, None, n, n, device="cuda")
    q = rand(rows, hq, n, d, grad=backward)
    k = rand(rows, hkv, n, d, grad=backward)
    v = rand(rows, hkv, n, d, grad=backward)
    fn = call(lambda: _flex(q, k, v, block_mask=block_mask, enable_gqa=True), backward)
    return median_ms(fn, iters), ""


_weights = {}


def torch_mlp(c, model, fmt, iters):
    h, f = model["hidden"], model["ffn"]
    if "w" not in _weights:
        _weights["w"] = (rand(h, 2 * f) / h**0.5, rand(f, h) / f**0.5)
    w_gu, w_d = _weights["w"]
    if fmt == "shared":
        tokens = c["rows"] * c["shared_n"]
    else:
        tokens = c["rows"] * c["paired_n"]
    x = rand(tokens, h)

    def mlp():
        gu = x @ w_gu
        return (F.silu(gu[:, :f]) * gu[:, f:]) @ w_d

    return median_ms(mlp, iters), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases_json")
    ap.add_argument("out_csv")
    ap.add_argument("--budget-s", type=float, default=180.0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--ops", default="attn_fwd,attn_fwd_bwd,mlp")
    a = ap.parse_args()
    with open(a.cases_json) as fh:
        spec = json.load(fh)
    model, cases = spec["model"], spec["cases"]
    if not torch.cuda.is_available():
        print(f"peers_sweep: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    ops = a.ops.split(",")
    rows = ["peer,op,case,format,ms,note"]
    failures = 0
    t_end = time.monotonic() + a.budget_s

    def measure(peer, op, c, fmt, fn):
        nonlocal failures
        label = f"{peer} {op} {c['id']} {fmt}"
        t0 = time.monotonic()
        try:
            ms, note = fn()
            rows.append(f"{peer},{op},{c['id']},{fmt},{ms:.5f},{note}")
            print(f"{label}: {ms:.3f} ms ({time.monotonic() - t0:.1f} s with setup)", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - one failed peer must not lose the others
            failures += 1
            first = (str(e).splitlines() or [""])[0].replace(",", ";")[:120]
            rows.append(f"{peer},{op},{c['id']},{fmt},failed,{type(e).__name__}: {first}")
            print(f"FAILED {label}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            traceback.print_exc()
            torch.cuda.empty_cache()

    for i, c in enumerate(cases):
        if time.monotonic() > t_end:
            print(f"peers_sweep: budget of {a.budget_s:.0f} s spent; {len(cases) - i} case(s) not timed",
                  file=sys.stderr)
            break
        for op in ops:
            if op in ("attn_fwd", "attn_fwd_bwd"):
                bwd = op == "attn_fwd_bwd"
                for peer, backend in (("sdpa_cudnn", "CUDNN_ATTENTION"), ("sdpa_flash", "FLASH_ATTENTION")):
                    measure(peer, op, c, "paired", lambda: sdpa_paired(c, model, backend, bwd, a.iters))
                measure("flex", op, c, "shared", lambda: flex_shared(c, model, bwd, a.iters))
            elif op == "mlp":
                for fmt in ("paired", "shared"):
                    measure("torch", op, c, fmt, lambda: torch_mlp(c, model, fmt, a.iters))
        with open(a.out_csv, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        torch.cuda.empty_cache()
    print(f"peers_sweep: {len(rows) - 1} measurement(s), {failures} failed -> {a.out_csv}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
