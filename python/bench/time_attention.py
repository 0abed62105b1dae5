#!/usr/bin/env python3
"""Times ``prefix_attn.attention`` (the installed package) against PyTorch's own attention on the
same samples, on a CUDA device:

- ours on the shared rows (each prompt once, the plan built from ``vis_end``);
- FlexAttention on the same shared rows with the same mask
  (``kv <= q & q < vis_end[b, kv]``), compiled once; its block mask's build is timed apart;
- SDPA (PyTorch's default backend choice, causal) on the paired rows: every completion with its
  own copy of the prompt, one causal sequence each, no padding (equal lengths).

bf16, random inputs, forward and forward + backward, CUDA events around ITERS calls after WARMUP,
the median of REPEATS such means. TFLOP/s counts each method's own visible pairs (4 per pair per
head per dim forward, 14 forward + backward: FlashAttention's convention), so the paired rows'
repeated prompt is counted as work done; the speedup column compares times.

Usage: time_attention.py [--out DIR] [--smoke]
  --smoke: tiny shapes on the CPU (ours through the emulator, SDPA), to check the script runs
           where there is no GPU; its times mean nothing.
Writes DIR/python_bench.csv and DIR/python_bench.md (DIR defaults to the current folder).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import prefix_attn

WARMUP, ITERS, REPEATS = 3, 10, 5


def problems(smoke):
    """(name, prompt, completion lengths, samples); d, q heads, kv heads."""
    if smoke:
        return [("dpo-smoke", 40, [20, 20], 1)], 64, 2, 1
    return [
        ("dpo p2048 c512", 2048, [512, 512], 4),
        ("dpo p1024 c1024", 1024, [1024, 1024], 4),
        ("grpo8 p1024 c256", 1024, [256] * 8, 4),
        ("grpo16 p512 c128", 512, [128] * 16, 8),
    ], 128, 32, 8


def shared_rows(prompt, completions, samples):
    """vis_end of `samples` rows, each prompt + its completions (one sample per row)."""
    n = prompt + sum(completions)
    row = [n] * prompt
    for c in completions:
        row += [len(row) + c] * c
    return torch.tensor([row] * samples, dtype=torch.int32)


def time_ms(fn, device):
    """Median over REPEATS of the mean time of ITERS calls (CUDA events; wall clock on the CPU)."""
    for _ in range(WARMUP):
        fn()
    means = []
    for _ in range(REPEATS):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(ITERS):
                fn()
            b.record()
            b.synchronize()
            means.append(a.elapsed_time(b) / ITERS)
        else:
            t0 = time.perf_counter()
            for _ in range(ITERS):
                fn()
            means.append((time.perf_counter() - t0) * 1e3 / ITERS)
    return statistics.median(means)


def inputs(rows, n, hq, hkv, d, device, grad):
    kw = dict(device=device, dtype=torch.bfloat16)
    # Hugging Face's [b, h, s, d], handed over as transpose(1, 2) views (no copy).
    q = torch.randn(rows, hq, n, d, **kw).transpose(1, 2)
    k = torch.randn(rows, hkv, n, d, **kw).transpose(1, 2)
    v = torch.randn(rows, hkv, n, d, **kw).transpose(1, 2)
    d_o = torch.randn(rows, n, hq, d, **kw)
    if grad:
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    return q, k, v, d_o


def run(name, prompt, completions, samples, d, hq, hkv, device, smoke):
    out = []
    vis_end = shared_rows(prompt, completions, samples)
    rows, n = vis_end.shape
    t0 = time.perf_counter()
    plan = prefix_attn.Plan(vis_end.to(device))  # block lists on the host, uploaded once
    plan_ms = (time.perf_counter() - t0) * 1e3
    mask = (torch.arange(n)[None, :, None] >= torch.arange(n)[None, None, :]) & (
        torch.arange(n)[None, :, None] < vis_end[:, None, :].long())
    shared_pairs = int(mask.sum())
    k_seq = len(completions)
    length = prompt + completions[0]
    assert all(c == completions[0] for c in completions), "paired rows need equal lengths"
    paired_pairs = samples * k_seq * length * (length + 1) // 2

    def record(method, passes, ms, pairs, note=""):
        flops = (4.0 if passes == "fwd" else 14.0) * pairs * hq * d
        out.append(dict(problem=name, method=method, passes=passes, ms=round(ms, 4),
                        tflops=round(flops / (ms * 1e-3) / 1e12, 2), note=note))

    for passes in ("fwd", "fwd+bwd"):
        grad = passes != "fwd"
        # Ours, shared rows.
        q, k, v, d_o = inputs(rows, n, hq, hkv, d, device, grad)

        def ours():
            o = prefix_attn.attention(q, k, v, plan)
            if grad:
                o.backward(d_o)

        record("prefix_attn (shared)", passes, time_ms(ours, device), shared_pairs,
               f"plan {plan_ms:.1f} ms host" if passes == "fwd" else "")

        # SDPA, paired rows.
        pq, pk, pv, pd_o = inputs(samples * k_seq, length, hq, hkv, d, device, grad)
        pq, pk, pv = (t.transpose(1, 2) for t in (pq, pk, pv))  # [b, h, s, d]

        def sdpa():
            o = F.scaled_dot_product_attention(pq, pk, pv, is_causal=True, enable_gqa=True)
            if grad:
                o.backward(pd_o.transpose(1, 2))

        try:
            record("SDPA (paired)", passes, time_ms(sdpa, device), paired_pairs)
        except RuntimeError as e:
            print(f"{name} SDPA {passes}: {e}", file=sys.stderr)

        # FlexAttention, shared rows, the same mask.
        if not smoke:
            try:
                ms, note = flex(q, k, v, d_o, vis_end.to(device), grad, device)
                record("FlexAttention (shared)", passes, ms, shared_pairs, note)
            except Exception as e:  # noqa: BLE001: a peer that fails is reported, not fatal
                print(f"{name} Flex {passes}: {type(e).__name__}: {e}", file=sys.stderr)
    return out


_flex = None


def flex(q, k, v, d_o, vis, grad, device):
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _flex is None:
        torch._dynamo.config.cache_size_limit = 64
        _flex = torch.compile(flex_attention, dynamic=False)
    rows, n = vis.shape

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx < vis[b, kv_idx])

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    block_mask = create_block_mask(mask_mod, rows, None, n, n, device=device)
    torch.cuda.synchronize()
    mask_ms = (time.perf_counter() - t0) * 1e3
    fq, fk, fv = (t.transpose(1, 2) for t in (q, k, v))

    def step():
        o = _flex(fq, fk, fv, block_mask=block_mask, enable_gqa=True)
        if grad:
            o.backward(d_o.transpose(1, 2))

    return time_ms(step, device), f"block mask {mask_ms:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --smoke for a CPU check of the script")
    probs, d, hq, hkv = problems(args.smoke)
    rows = []
    for name, prompt, comps, samples in probs:
        rows += run(name, prompt, comps, samples, d, hq, hkv, device, args.smoke)
        torch.cuda.empty_cache() if device.type == "cuda" else None
    with open(f"{args.out}/python_bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke: not a timing)"
    lines = [f"prefix_attn package timing, {card}, torch {torch.__version__}, bf16, d {d}, "
             f"{hq} q / {hkv} kv heads", "",
             "| problem | passes | method | ms | TFLOP/s | vs SDPA paired | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        base = [x for x in rows if x["problem"] == r["problem"] and x["passes"] == r["passes"]
                and x["method"].startswith("SDPA")]
        speed = f"{base[0]['ms'] / r['ms']:.2f}x" if base else ""
        lines.append(f"| {r['problem']} | {r['passes']} | {r['method']} | {r['ms']} | "
                     f"{r['tflops']} | {speed} | {r['note']} |")
    text = "\n".join(lines) + "\n"
    with open(f"{args.out}/python_bench.md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
