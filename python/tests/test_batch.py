"""Batch.shared / Batch.paired and completion_logps."""

import math

import pytest
import torch

import bounds
import prefix_attn
from prefix_attn import Batch, TokenTree, completion_logps

VOCAB = 64

SAMPLES = [
    ([5, 8, 2, 9], [[4, 4, 1], [7, 3]]),  # DPO: chosen, rejected
    ([6, 1], [[2], [3, 3], [8, 1, 1]]),  # GRPO group of 3
    ([7, 7, 7, 7, 7], [[1, 2, 3, 4]]),  # one completion: [s, 1:] is padding
]


def tree_sample():
    t = TokenTree([11, 12, 13])
    a = t.add_child(0, [20, 21], scored=False)  # a user turn: not scored
    t.add_child(a, [30, 31, 32])
    t.add_child(a, [40])
    t.add_child(0, [50, 51])
    return t


def test_shared_and_paired_rows():
    shared = Batch.shared(SAMPLES + [tree_sample()], max_len=32, round_to=16)
    paired = Batch.paired(SAMPLES + [tree_sample()], max_len=32, round_to=16)
    for b in (shared, paired):
        assert b.input_ids.shape == b.position_ids.shape == b.vis_end.shape == (b.rows, b.n)
        assert b.input_ids.dtype == b.position_ids.dtype == torch.int64
        assert b.vis_end.dtype == torch.int32 and b.n % 16 == 0
        j = torch.arange(b.n)
        assert ((j <= b.vis_end) & (b.vis_end <= b.n)).all()
        assert b.num_samples == 4 and b.max_completions == 3
        assert b.completions == paired.completions
    # The prompt once per sample: fewer real tokens shared than paired.
    assert shared.efficiency * shared.rows * shared.n < paired.efficiency * paired.rows * paired.n
    # A completion token has the position it has in prompt + completion.
    r, t = ((shared.input_ids == 8) & (shared.sample_ids == 1)).nonzero()[0].tolist()  # [8, 1, 1]
    assert shared.position_ids[r, t] == 2
    plan = shared.plan()
    assert torch.equal(plan.vis_end, shared.vis_end) and shared.plan() is plan


def test_bad_samples_name_the_sample():
    with pytest.raises(ValueError, match="sample 1"):
        Batch.shared([([1], [[2]]), ([1, 2], [[3], []])], max_len=16)
    with pytest.raises(ValueError, match="sample 0"):
        Batch.shared([([1] * 20, [[2]])], max_len=16)
    with pytest.raises(ValueError, match="sample 0"):
        Batch.shared([([1, 99], [[2]])], max_len=16, vocab=64)
    with pytest.raises(ValueError, match="round_to"):
        Batch.shared(SAMPLES, max_len=30, round_to=16)
    with pytest.raises(ValueError, match="sample 0"):
        Batch.shared(["not a sample"], max_len=16)
    b = Batch.shared([([1] * 10, [[2] * 8, [3] * 2])], max_len=16, truncate=True)
    assert b.truncations and b.truncations[0][:2] == (0, 0)


def positional_logits(batch, table, pos_table):
    """A model without attention: logits from the token and its position only. Shared and paired
    rows then give the same log-probs exactly when the map reads the right logit rows."""
    return table[batch.input_ids] + pos_table[batch.position_ids]


def test_completion_logps_match_the_crates_gather_and_the_paired_batch():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64) * 3
    pos_table = torch.randn(64, VOCAB, generator=g, dtype=torch.float64)
    samples = SAMPLES + [tree_sample()]
    shared = Batch.shared(samples, max_len=32, round_to=16, vocab=VOCAB)
    paired = Batch.paired(samples, max_len=32, round_to=16, vocab=VOCAB)
    lp_shared = completion_logps(positional_logits(shared, table, pos_table), shared)
    lp_paired = completion_logps(positional_logits(paired, table, pos_table), paired)
    assert lp_shared.shape == (4, 3) and lp_shared.dtype == torch.float64
    torch.testing.assert_close(lp_shared, lp_paired, rtol=0, atol=1e-12)
    # Against the crate's own CPU gather (float64) of the same logits (rounded to float32).
    logits32 = positional_logits(shared, table, pos_table).float()
    want = shared.reference_logps(logits32)
    got = completion_logps(logits32.double(), shared)
    flat = [got[s, c].item() for s, c in shared.completions]
    assert flat == pytest.approx(want, rel=0, abs=1e-12)
    # Padding entries are 0: sample 0 has 2 completions, sample 2 one.
    assert got[0, 2] == 0 and got[2, 1] == 0 and got[2, 2] == 0
    # float32 logits: within the float32 log-softmax's rounding. Per scored token, the shifted
    # logits are exact (Sterbenz does not apply, so one rounding: u |x - m|), exp errs by 2u,
    # the sum of V terms by (V - 1) u, the log by u |log l| + u, the final subtraction by u |lp|:
    # at most u ((V + 3) + 2 max|x - m| + 2 |lp|) per token, summed over the completion's tokens.
    got32 = completion_logps(logits32, shared)
    u = 2.0**-24
    x = logits32.double()
    spread = float((x.amax(-1) - x.amin(-1)).max())
    for (s, c), w in zip(shared.completions, want):
        tokens = int((shared.entry_completion == shared.completions.index((s, c))).sum())
        tol = tokens * u * ((VOCAB + 3) + 2 * spread + 2 * abs(w)) * 1.01
        assert abs(got32[s, c].item() - w) <= tol


def test_completion_logps_is_differentiable():
    shared = Batch.shared(SAMPLES, max_len=32, round_to=16)
    logits = torch.randn(shared.rows, shared.n, VOCAB, dtype=torch.float64, requires_grad=True)
    lp = completion_logps(logits, shared)
    weights = torch.randn(lp.shape, dtype=torch.float64)
    (lp * weights).sum().backward()
    # d lp / d logits: onehot(target) - softmax, for the rows the map reads, 0 elsewhere.
    want = torch.zeros_like(logits).view(-1, VOCAB)
    soft = torch.softmax(logits.detach().view(-1, VOCAB), -1)
    for e, (row, tgt) in enumerate(zip(shared.logit_rows.tolist(), shared.targets.tolist())):
        s, c = shared.completions[int(shared.entry_completion[e])]
        w = weights[s, c]
        want[row] -= w * soft[row]
        want[row, tgt] += w
    torch.testing.assert_close(logits.grad.view(-1, VOCAB), want, rtol=1e-12, atol=1e-12)
    assert not math.isnan(float(logits.grad.sum()))


def test_batch_vis_end_is_the_rule():
    """The batch's mask is the rule the op and SDPA use: a completion sees its prompt and itself,
    never a sibling."""
    b = Batch.shared([([5, 8, 2], [[4, 4], [7, 3]])], max_len=8, round_to=8)
    m = bounds.mask_of(b.vis_end)[0]
    assert b.vis_end[0].tolist() == [7, 7, 7, 5, 5, 7, 7, 7]
    assert m[5, :5].tolist() == [True, True, True, False, False]
    assert not m[7].any()  # padding sees nothing
