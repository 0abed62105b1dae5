#!/usr/bin/env python3
"""Times PyTorch's attention forward + backward on the problems backward_bench ran, and writes the
comparison table next to ours.

Usage: peers_backward.py CASES_JSON OUT_DIR   (CASES_JSON: cases_fwd_bwd.json from
examples/backward_bench.rs; writes OUT_DIR/peers_fwd_bwd.csv and OUT_DIR/table_fwd_bwd.md).
Needs peers.py next to it (the GPU check bundles both): the same peers, helpers and rules.

Peers, bf16, same head counts (GQA) and head dim, each timed as one forward and one backward
(out.backward(dO) with Q, K and V requiring grad):
- SDPA, paired format: a prefix-shared row becomes k causal sequences prompt+completion;
- FlexAttention, shared format: the same mask as ours (query i sees key j iff j <= i < vis_end[j]).
TFLOP/s counts each method's own visible pairs, 14 * pairs * heads * head_dim (4 forward + 10
backward, FlashAttention's convention).
"""
import sys

import torch
import torch.nn.functional as F

import peers


def _grad_inputs(batch, hq, hkv, length, d):
    kw = dict(device="cuda", dtype=torch.bfloat16, requires_grad=True)
    q = torch.randn(batch, hq, length, d, **kw)
    k = torch.randn(batch, hkv, length, d, **kw)
    v = torch.randn(batch, hkv, length, d, **kw)
    d_o = torch.randn(batch, hq, length, d, device="cuda", dtype=torch.bfloat16)
    return q, k, v, d_o


def sdpa_paired_fwd_bwd(c):
    from torch.nn.attention import sdpa_kernel

    d, hq, hkv = c["head_dim"], c["q_heads"], c["kv_heads"]
    if c["kind"] == "causal":
        batch, length = c["rows"], c["n"]
    else:
        lengths = {c["prompt"] + x for x in c["completions"]}
        assert len(lengths) == 1, "the bench uses equal completion lengths"
        batch, length = c["rows"] * len(c["completions"]), lengths.pop()
    q, k, v, d_o = _grad_inputs(batch, hq, hkv, length, d)
    backends = peers._sdpa_backends()

    def step(kx, vx, gqa):
        with sdpa_kernel(backends):
            out = F.scaled_dot_product_attention(q, kx, vx, is_causal=True, enable_gqa=gqa)
        out.backward(d_o)

    try:
        ms = peers.timed_ms(lambda: step(k, v, True))
    except RuntimeError as e:
        print(f"SDPA fwd+bwd: enable_gqa without the math backend failed ({e}); timing with kv "
              f"heads repeated to {hq}", file=sys.stderr)
        kx = k.detach().repeat_interleave(hq // hkv, 1).requires_grad_()
        vx = v.detach().repeat_interleave(hq // hkv, 1).requires_grad_()
        ms = peers.timed_ms(lambda: step(kx, vx, False))
    pairs = batch * length * (length + 1) // 2
    return ms, 14.0 * pairs * hq * d / (ms * 1e-3) / 1e12


_flex = None


def flex_shared_fwd_bwd(c):
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _flex is None:
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 64)
        _flex = torch.compile(flex_attention, dynamic=False)
    d, hq, hkv, rows, n = c["head_dim"], c["q_heads"], c["kv_heads"], c["rows"], c["n"]
    vis = torch.tensor([peers.vis_end_row(c)] * rows, device="cuda", dtype=torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx < vis[b, kv_idx])

    block_mask = create_block_mask(mask_mod, rows, None, n, n, device="cuda")
    q, k, v, d_o = _grad_inputs(rows, hq, hkv, n, d)

    def step():
        _flex(q, k, v, block_mask=block_mask, enable_gqa=True).backward(d_o)

    ms = peers.timed_ms(step)
    return ms, 14.0 * c["visible_pairs"] * hq * d / (ms * 1e-3) / 1e12


def write_tables(out_dir, lines, csv):
    with open(f"{out_dir}/peers_fwd_bwd.csv", "w") as f:
        f.write("\n".join(csv) + "\n")
    with open(f"{out_dir}/table_fwd_bwd.md", "w") as f:
        f.write("Forward + backward, bf16 (time per step; 'vs' = peer time / ours for the same "
                "samples)\n\n")
        f.write("\n".join(lines) + "\n")
        if peers.FAILURES:
            f.write("\nFailed measurements:\n\n" + "\n".join(f"- {x}" for x in peers.FAILURES) + "\n")


def main():
    import json

    cases_path, out_dir = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    if not torch.cuda.is_available():
        print(f"peers_backward: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    lines = [
        "| mask | n | rows | heads q/kv | d | ours fwd ms | ours bwd ms | ours fwd+bwd ms | ours TFLOP/s | SDPA paired ms | SDPA TFLOP/s | vs SDPA | Flex ms | Flex TFLOP/s | vs Flex |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    csv = ["kind,n,rows,q_heads,kv_heads,head_dim,ours_fwd_ms,ours_bwd_ms,ours_ms,ours_tflops,sdpa_ms,sdpa_tflops,flex_ms,flex_tflops"]
    flex_failures_in_a_row = 0
    for c in cases:
        sdpa = peers.guarded("SDPA fwd+bwd", sdpa_paired_fwd_bwd, c)
        if flex_failures_in_a_row >= 2:
            flex = None
        else:
            flex = peers.guarded("FlexAttention fwd+bwd", flex_shared_fwd_bwd, c)
            flex_failures_in_a_row = 0 if flex else flex_failures_in_a_row + 1
        ours = c["ours_ms"]
        s_ms, s_tf = sdpa if sdpa else (None, None)
        f_ms, f_tf = flex if flex else (None, None)
        vs_s = None if s_ms is None else s_ms / ours
        vs_f = None if f_ms is None else f_ms / ours
        fmt = peers.fmt
        lines.append(
            f"| {c['kind']} | {c['n']} | {c['rows']} | {c['q_heads']}/{c['kv_heads']} | {c['head_dim']} "
            f"| {c['ours_fwd_ms']:.3f} | {c['ours_bwd_ms']:.3f} | {ours:.3f} | {c['ours_tflops']:.1f} "
            f"| {fmt(s_ms, '.3f')} | {fmt(s_tf, '.1f')} | {fmt(vs_s, '.2f')}{'' if vs_s is None else 'x'} "
            f"| {fmt(f_ms, '.3f')} | {fmt(f_tf, '.1f')} | {fmt(vs_f, '.2f')}{'' if vs_f is None else 'x'} |"
        )
        csv.append(",".join(str(x) for x in [
            c["kind"], c["n"], c["rows"], c["q_heads"], c["kv_heads"], c["head_dim"], c["ours_fwd_ms"],
            c["ours_bwd_ms"], ours, c["ours_tflops"], fmt(s_ms, ".4f"), fmt(s_tf, ".2f"), fmt(f_ms, ".4f"),
            fmt(f_tf, ".2f")]))
        print(lines[-1], flush=True)
        write_tables(out_dir, lines, csv)
    return 1 if peers.FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
