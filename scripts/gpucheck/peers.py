#!/usr/bin/env python3
"""Times PyTorch's attention on the problems forward_bench ran, each implementation on its own,
forward and forward+backward, and writes the comparison tables.

Usage: peers.py CASES_JSON OUT_DIR [--deadline SECONDS]
  CASES_JSON from forward_bench. Writes OUT_DIR/peers.csv (one row per measurement, ours
  included) and OUT_DIR/table.md (forward next to ours, then forward+backward), rewritten after
  every measurement, so a step stopped at its time limit keeps what it measured.
  --deadline: stop starting measurements after this many seconds (the rest is listed as skipped).

Peers, bf16, same head counts (GQA) and head dim:
- SDPA on the paired format (what a trainer without prefix sharing runs: a causal row stays one
  causal sequence; a prompt + k completions row becomes k causal sequences prompt+completion),
  one backend at a time, never letting SDPA choose (plain SDPA picks cuDNN on Hopper, which is
  not FlashAttention-2):
    FA2       = SDPBackend.FLASH_ATTENTION (FlashAttention-2)
    cuDNN     = SDPBackend.CUDNN_ATTENTION
    efficient = SDPBackend.EFFICIENT_ATTENTION (memory-efficient / xformers-style)
  Each first with enable_gqa; if that backend refuses GQA, with the kv heads repeated (noted). A
  backend that refuses the problem either way is listed as unsupported, not as a failure.
- FlexAttention on the shared format: the very mask forward_bench used (query i sees key j iff
  j <= i < vis_end[j]) as a block mask, compiled once per shape.

Time per call: mean of 20 calls after 3 warm-ups, CUDA events. Forward+backward times the forward
and the backward of a random output gradient together. TFLOP/s counts each method's own visible
pairs: forward 4 * pairs * q_heads * head_dim, forward+backward 3.5 times that (the backward
counted as 2.5 forwards, the FlashAttention convention). 'x' in the forward table = peer time /
ours for the same samples (above 1: ours is faster). Forward measurements of every case come
first, forward+backward after, so a deadline cuts the less important ones. Exit status 1 when a
measurement failed (other than unsupported), else 3 when the deadline skipped some, else 0.
"""
import argparse
import json
import sys
import time
import traceback

import torch
import torch.nn.functional as F

WARMUP, ITERS = 3, 20
SDPA = [("FA2", "FLASH_ATTENTION"), ("cuDNN", "CUDNN_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION")]
PEERS = [name for name, _ in SDPA] + ["Flex"]
PASSES = ("fwd", "fwd+bwd")

START = time.monotonic()
RESULTS = {}  # (case index, peer, pass) -> dict(ms, tflops, note) or dict(status, note)
FAILURES = []


class Unsupported(Exception):
    """The backend refuses the problem (not a failure of the check)."""


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


def paired_shape(c):
    """(batch, length) of the paired format."""
    if c["kind"] == "causal":
        return c["rows"], c["n"]
    lengths = {c["prompt"] + x for x in c["completions"]}
    assert len(lengths) == 1, "the bench uses equal completion lengths"
    return c["rows"] * len(c["completions"]), lengths.pop()


def qkv(batch, length, c, grad):
    kw = dict(device="cuda", dtype=torch.bfloat16, requires_grad=grad)
    d, hq, hkv = c["head_dim"], c["q_heads"], c["kv_heads"]
    return (torch.randn(batch, hq, length, d, **kw), torch.randn(batch, hkv, length, d, **kw),
            torch.randn(batch, hkv, length, d, **kw))


def run_pass(call, tensors, backward):
    """Time per call of `call()` (forward), or of forward + backward of a random gradient."""
    if not backward:
        with torch.no_grad():
            return timed_ms(call)
    grad = torch.randn_like(call())

    def step():
        for t in tensors:
            t.grad = None
        call().backward(grad)

    return timed_ms(step)


def sdpa(c, backend_name, backward):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not hasattr(SDPBackend, backend_name):
        raise Unsupported(f"this torch has no SDPBackend.{backend_name}")
    backend = getattr(SDPBackend, backend_name)
    batch, length = paired_shape(c)
    q, k, v = qkv(batch, length, c, backward)
    hq, hkv = c["q_heads"], c["kv_heads"]

    def gqa():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    note = ""
    try:
        with torch.no_grad():
            gqa()
        call = gqa
    except RuntimeError:
        # This backend refuses enable_gqa: time it on kv heads repeated to hq (what enable_gqa
        # means), and say so. Repeating is part of each call, as a trainer would do it.
        note = "kv repeated"

        def call():
            kx, vx = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, kx, vx, is_causal=True)

        try:
            with torch.no_grad():
                call()
        except RuntimeError as e:
            raise Unsupported(str(e).splitlines()[0] if str(e) else "refused") from e
    ms = run_pass(call, (q, k, v), backward)
    pairs = batch * length * (length + 1) // 2
    return ms, pairs, note


_flex = None


def flex(c, backward):
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
    rows, n = c["rows"], c["n"]
    vis = torch.tensor([vis_end_row(c)] * rows, device="cuda", dtype=torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx < vis[b, kv_idx])

    block_mask = create_block_mask(mask_mod, rows, None, n, n, device="cuda")
    q, k, v = qkv(rows, n, c, backward)
    call = lambda: _flex(q, k, v, block_mask=block_mask, enable_gqa=True)
    return run_pass(call, (q, k, v), backward), c["visible_pairs"], ""


def label(c):
    return f"{c['kind']} n={c['n']} d={c['head_dim']}"


def measure(i, c, peer, pas, deadline):
    key = (i, peer, pas)
    if deadline is not None and time.monotonic() - START > deadline:
        RESULTS[key] = dict(status="skipped", note="time")
        return
    t0 = time.monotonic()
    backward = pas == "fwd+bwd"
    try:
        if peer == "Flex":
            ms, pairs, note = flex(c, backward)
        else:
            ms, pairs, note = sdpa(c, dict(SDPA)[peer], backward)
        flops = 4.0 * pairs * c["q_heads"] * c["head_dim"] * (3.5 if backward else 1.0)
        RESULTS[key] = dict(ms=ms, tflops=flops / (ms * 1e-3) / 1e12, note=note)
        print(f"{peer} {pas} {label(c)}: {ms:.3f} ms{' (' + note + ')' if note else ''} "
              f"({time.monotonic() - t0:.1f} s incl. setup/compile)", file=sys.stderr, flush=True)
    except Unsupported as e:
        RESULTS[key] = dict(status="unsupported", note=str(e))
        print(f"{peer} {pas} {label(c)}: unsupported: {e}", file=sys.stderr, flush=True)
    except Exception as e:  # noqa: BLE001 - one failed peer must not lose the table
        RESULTS[key] = dict(status="failed", note=f"{type(e).__name__}")
        print(f"FAILED {peer} {pas} {label(c)}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        traceback.print_exc()
        FAILURES.append(f"{peer} {pas} {label(c)}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}")
    finally:
        # Free what the attempt left (e.g. after an out-of-memory) before the next one.
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - a sticky CUDA error: later peers will say so
            pass
        torch.cuda.empty_cache()


def cell(i, peer, pas):
    """'ms | TF/s' of one measurement, or its status."""
    r = RESULTS.get((i, peer, pas))
    if r is None:
        return "- | -"
    if "ms" not in r:
        return f"{r['status']} | -"
    mark = "*" if r["note"] else ""
    return f"{r['ms']:.3f}{mark} | {r['tflops']:.1f}"


def ratio(i, peer, ours_ms):
    r = RESULTS.get((i, peer, "fwd"))
    return "-" if r is None or "ms" not in r else f"{r['ms'] / ours_ms:.2f}x"


def write_tables(out_dir, cases):
    csv = ["kind,n,rows,q_heads,kv_heads,head_dim,peer,format,pass,ms,tflops,note"]
    for i, c in enumerate(cases):
        head = f"{c['kind']},{c['n']},{c['rows']},{c['q_heads']},{c['kv_heads']},{c['head_dim']}"
        fmt_ours = "shared" if c["kind"] != "causal" else "causal"
        csv.append(f"{head},ours,{fmt_ours},fwd,{c['ours_ms']:.4f},{c['ours_tflops']:.2f},")
        for pas in PASSES:
            for peer in PEERS:
                r = RESULTS.get((i, peer, pas))
                if r is None:
                    continue
                form = "shared" if peer == "Flex" else "paired"
                if "ms" in r:
                    csv.append(f"{head},{peer},{form},{pas},{r['ms']:.4f},{r['tflops']:.2f},{r['note']}")
                else:
                    csv.append(f"{head},{peer},{form},{pas},,,{r['status']}: {r['note']}")
    with open(f"{out_dir}/peers.csv", "w") as f:
        f.write("\n".join(csv) + "\n")

    lines = [
        "Forward, bf16, ms per call and TFLOP/s; SDPA backends on the paired format, ours and Flex "
        "on the shared one; 'x' = peer time / ours (above 1: ours is faster); * = kv heads "
        "repeated (the backend refuses GQA)",
        "",
        "| mask | n | rows | heads q/kv | d | ours ms | ours TF/s | "
        + " | ".join(f"{p} ms | {p} TF/s | x" for p in PEERS) + " |",
        "|" + "---|" * (7 + 3 * len(PEERS)),
    ]
    for i, c in enumerate(cases):
        peers = " | ".join(f"{cell(i, p, 'fwd')} | {ratio(i, p, c['ours_ms'])}" for p in PEERS)
        lines.append(f"| {c['kind']} | {c['n']} | {c['rows']} | {c['q_heads']}/{c['kv_heads']} "
                     f"| {c['head_dim']} | {c['ours_ms']:.3f} | {c['ours_tflops']:.1f} | {peers} |")
    lines += [
        "",
        "Forward + backward (peers only), ms per step and TFLOP/s (3.5x the forward's count)",
        "",
        "| mask | n | rows | heads q/kv | d | " + " | ".join(f"{p} ms | {p} TF/s" for p in PEERS) + " |",
        "|" + "---|" * (5 + 2 * len(PEERS)),
    ]
    for i, c in enumerate(cases):
        peers = " | ".join(cell(i, p, "fwd+bwd") for p in PEERS)
        lines.append(f"| {c['kind']} | {c['n']} | {c['rows']} | {c['q_heads']}/{c['kv_heads']} "
                     f"| {c['head_dim']} | {peers} |")
    notes = [f"- {label(cases[i])} {peer} {pas}: {r['status']}: {r['note']}"
             for (i, peer, pas), r in sorted(RESULTS.items()) if "ms" not in r]
    if notes:
        lines += ["", "Not measured:", ""] + notes
    with open(f"{out_dir}/table.md", "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases")
    ap.add_argument("out_dir")
    ap.add_argument("--deadline", type=float, default=None)
    a = ap.parse_args()
    with open(a.cases) as f:
        cases = json.load(f)
    if not torch.cuda.is_available():
        print(f"peers: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    for pas in PASSES:
        for i, c in enumerate(cases):
            # Flex on every case; the SDPA backends on the paired format.
            for peer in PEERS:
                measure(i, c, peer, pas, a.deadline)
                write_tables(a.out_dir, cases)
    print(open(f"{a.out_dir}/table.md").read(), flush=True)
    if FAILURES:
        print(f"peers: {len(FAILURES)} measurement(s) failed:", file=sys.stderr)
        for x in FAILURES:
            print(f"  {x}", file=sys.stderr)
        return 1
    skipped = sum(1 for r in RESULTS.values() if r.get("status") == "skipped")
    if skipped:
        print(f"peers: {skipped} measurement(s) skipped at the deadline", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
