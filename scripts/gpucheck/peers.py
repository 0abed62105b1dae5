#!/usr/bin/env python3
"""Times PyTorch's attention on the problems forward_bench ran, and writes the comparison table.

Usage: peers.py CASES_JSON OUT_DIR   (CASES_JSON from forward_bench; writes OUT_DIR/peers.csv and
OUT_DIR/table.md).

Peers, bf16, same head counts (GQA) and head dim:
- SDPA, paired format: what a trainer without prefix sharing runs. A causal row stays one causal
  sequence; a prefix-shared row (prompt + k completions) becomes k sequences prompt+completion,
  each causal, so the prompt is recomputed k times.
- FlexAttention, shared format: the very mask forward_bench used (query i sees key j iff
  j <= i < vis_end[j]), as a block mask.

Time per call is the mean of 20 calls after 3 warm-ups, with CUDA events. "vs SDPA" is SDPA's time
over ours for the same samples. TFLOP/s counts each method's own visible pairs (4 * pairs * heads *
head_dim). Each measurement is guarded: a failure is printed (with its traceback), shown as
'failed' in the table and listed under it, and the rest goes on; the tables are rewritten after
every case, and the exit status is 1 when anything failed. SDPA runs only on its fused backends
(never MATH); FlexAttention is compiled once per shape.
"""
import json
import sys
import time
import traceback

import torch
import torch.nn.functional as F

WARMUP, ITERS = 3, 20


def timed_ms(fn):
    for _ in range(WARMUP):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(ITERS):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / ITERS


def vis_end_row(c):
    n = c["n"]
    if c["kind"] == "causal":
        return [n] * n
    row = [n] * c["prompt"]
    for length in c["completions"]:
        row += [len(row) + length] * length
    assert len(row) == n
    return row


def _sdpa_backends():
    """Every fused SDPA backend, never MATH: a silent fallback to the math backend would time a
    dense O(n^2)-memory reference, not what a trainer runs."""
    from torch.nn.attention import SDPBackend

    return [
        getattr(SDPBackend, name)
        for name in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION")
        if hasattr(SDPBackend, name)
    ]


def sdpa_paired(c):
    from torch.nn.attention import sdpa_kernel

    d, hq, hkv = c["head_dim"], c["q_heads"], c["kv_heads"]
    if c["kind"] == "causal":
        batch, length = c["rows"], c["n"]
    else:
        lengths = {c["prompt"] + x for x in c["completions"]}
        assert len(lengths) == 1, "the bench uses equal completion lengths"
        batch, length = c["rows"] * len(c["completions"]), lengths.pop()
    kw = dict(device="cuda", dtype=torch.bfloat16)
    q = torch.randn(batch, hq, length, d, **kw)
    k = torch.randn(batch, hkv, length, d, **kw)
    v = torch.randn(batch, hkv, length, d, **kw)
    backends = _sdpa_backends()

    def gqa():
        with sdpa_kernel(backends):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    try:
        ms = timed_ms(gqa)
    except RuntimeError as e:
        # No fused backend takes enable_gqa here: time SDPA on kv heads repeated to hq (what
        # enable_gqa means), still without the math backend, and say so.
        print(f"SDPA: enable_gqa without the math backend failed ({e}); timing with kv heads "
              f"repeated to {hq}", file=sys.stderr)
        kx, vx = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)

        def expanded():
            with sdpa_kernel(backends):
                return F.scaled_dot_product_attention(q, kx, vx, is_causal=True)

        ms = timed_ms(expanded)
    pairs = batch * length * (length + 1) // 2
    return ms, 4.0 * pairs * hq * d / (ms * 1e-3) / 1e12


_flex = None


def flex_shared(c):
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _flex is None:
        # One compiled graph per (rows, n, d): the bench has 6 shapes. Above dynamo's recompile
        # limit (8 by default) it would silently run flex_attention eagerly, materialising every
        # score: raise the limit (the config name changed across versions).
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 64)
        _flex = torch.compile(flex_attention, dynamic=False)
    d, hq, hkv, rows, n = c["head_dim"], c["q_heads"], c["kv_heads"], c["rows"], c["n"]
    vis = torch.tensor([vis_end_row(c)] * rows, device="cuda", dtype=torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx < vis[b, kv_idx])

    block_mask = create_block_mask(mask_mod, rows, None, n, n, device="cuda")
    kw = dict(device="cuda", dtype=torch.bfloat16)
    q = torch.randn(rows, hq, n, d, **kw)
    k = torch.randn(rows, hkv, n, d, **kw)
    v = torch.randn(rows, hkv, n, d, **kw)
    fn = lambda: _flex(q, k, v, block_mask=block_mask, enable_gqa=True)
    ms = timed_ms(fn)
    return ms, 4.0 * c["visible_pairs"] * hq * d / (ms * 1e-3) / 1e12


FAILURES = []


def guarded(what, fn, c):
    """Runs one measurement; a failure is printed with its traceback, recorded, and the rest
    goes on (the table says 'failed')."""
    label = f"{what} on {c['kind']} n={c['n']} d={c['head_dim']}"
    t0 = time.monotonic()
    try:
        result = fn(c)
        print(f"{label}: {result[0]:.3f} ms ({time.monotonic() - t0:.1f} s incl. setup/compile)",
              file=sys.stderr, flush=True)
        return result
    except Exception as e:  # noqa: BLE001 - one failed peer must not lose the table
        print(f"FAILED {label}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        traceback.print_exc()
        FAILURES.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        # Free what the failed attempt left (e.g. after an out-of-memory) before the next one.
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - a sticky CUDA error: later peers will say so
            pass
        torch.cuda.empty_cache()
        return None


def fmt(x, spec):
    return "failed" if x is None else format(x, spec)


def write_tables(out_dir, lines, csv):
    with open(f"{out_dir}/peers.csv", "w") as f:
        f.write("\n".join(csv) + "\n")
    with open(f"{out_dir}/table.md", "w") as f:
        f.write("Forward, bf16 (time per call; 'vs' = peer time / ours for the same samples)\n\n")
        f.write("\n".join(lines) + "\n")
        if FAILURES:
            f.write("\nFailed measurements:\n\n" + "\n".join(f"- {x}" for x in FAILURES) + "\n")


def main():
    cases_path, out_dir = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    if not torch.cuda.is_available():
        print(f"peers: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    lines = [
        "| mask | n | rows | heads q/kv | d | ours ms | ours TFLOP/s | SDPA paired ms | SDPA TFLOP/s | vs SDPA | Flex ms | Flex TFLOP/s | vs Flex |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    csv = ["kind,n,rows,q_heads,kv_heads,head_dim,ours_ms,ours_tflops,sdpa_ms,sdpa_tflops,flex_ms,flex_tflops"]
    flex_failures_in_a_row = 0
    for c in cases:
        sdpa = guarded("SDPA", sdpa_paired, c)
        if flex_failures_in_a_row >= 2:
            # Two in a row is a broken toolchain (Triton, a C compiler): each retry would spend
            # the step's time on the same failure.
            print(f"FlexAttention skipped on {c['kind']} n={c['n']} d={c['head_dim']} "
                  "after two failures in a row", file=sys.stderr)
            flex = None
        else:
            flex = guarded("FlexAttention", flex_shared, c)
            flex_failures_in_a_row = 0 if flex else flex_failures_in_a_row + 1
        ours = c["ours_ms"]
        s_ms, s_tf = sdpa if sdpa else (None, None)
        f_ms, f_tf = flex if flex else (None, None)
        vs_s = None if s_ms is None else s_ms / ours
        vs_f = None if f_ms is None else f_ms / ours
        lines.append(
            f"| {c['kind']} | {c['n']} | {c['rows']} | {c['q_heads']}/{c['kv_heads']} | {c['head_dim']} "
            f"| {ours:.3f} | {c['ours_tflops']:.1f} | {fmt(s_ms, '.3f')} | {fmt(s_tf, '.1f')} | {fmt(vs_s, '.2f')}{'' if vs_s is None else 'x'} "
            f"| {fmt(f_ms, '.3f')} | {fmt(f_tf, '.1f')} | {fmt(vs_f, '.2f')}{'' if vs_f is None else 'x'} |"
        )
        csv.append(
            ",".join(
                str(x)
                for x in [c["kind"], c["n"], c["rows"], c["q_heads"], c["kv_heads"], c["head_dim"], ours,
                          c["ours_tflops"], fmt(s_ms, ".4f"), fmt(s_tf, ".2f"), fmt(f_ms, ".4f"), fmt(f_tf, ".2f")]
            )
        )
        print(lines[-1], flush=True)
        # After every case: a step killed at its time limit still leaves the rows done so far.
        write_tables(out_dir, lines, csv)
    if FAILURES:
        print(f"peers: {len(FAILURES)} measurement(s) failed:", file=sys.stderr)
        for x in FAILURES:
            print(f"  {x}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
