"""Samples to rows, and logits back to per-completion log-probs (the crate's ``prefix_attn::batch``)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import _native
from .plan import Plan


def _tensor(raw: bytes, dtype, shape) -> Tensor:
    t = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    return t.view(*shape)


class TokenTree:
    """A sample that branches (multi-turn trees): node 0 is the shared history (never scored);
    every root-to-leaf path is one completion, numbered in DFS preorder of the leaves (children in
    insertion order). ``add_child`` returns the new node's id."""

    def __init__(self, root: Sequence[int]):
        self.nodes: List[Tuple[List[int], int, bool]] = [(list(root), -1, False)]

    def add_child(self, parent: int, tokens: Sequence[int], scored: bool = True) -> int:
        self.nodes.append((list(tokens), int(parent), bool(scored)))
        return len(self.nodes) - 1


class Batch:
    """A batch of rows ready for a model, from samples ``(prompt_ids, [completion_ids, ...])``
    (DPO: ``[chosen, rejected]``; GRPO: a group of k) or :class:`TokenTree`.

    - :meth:`shared`: each prompt once, its completions after it, several samples per row
      (first-fit-decreasing, deterministic), rows of at most ``max_len`` tokens (rounded up to a
      multiple of ``round_to`` when given, e.g. 64 or 128: the kernels' tile).
    - :meth:`paired`: every completion with its own copy of its prompt, causal; completions in
      the same order (baselines, tests).

    Tensors (CPU; :meth:`to` moves them): ``input_ids`` and ``position_ids`` int64 ``[rows, n]``
    (a completion token has the position it would have in prompt + completion; padding 0),
    ``vis_end`` int32 ``[rows, n]``, ``sample_ids`` and ``completion_ids`` int32 (-1 where none).
    ``completions`` lists ``(sample, completion)`` in the order of the log-prob map;
    ``num_samples`` and ``max_completions`` give :func:`completion_logps`'s output shape.
    Bad samples (empty prompt or completion, no completions, longer than ``max_len`` without
    ``truncate``, a token id not below ``vocab``) are a ``ValueError`` naming the sample.
    """

    def __init__(self, native, num_samples: int):
        self._native = native
        rows, n = native.rows, native.n
        self.rows, self.n = rows, n
        self.input_ids = _tensor(native.token_ids(), torch.int64, (rows, n))
        self.position_ids = _tensor(native.positions(), torch.int64, (rows, n))
        self.vis_end = _tensor(native.vis_end(), torch.int32, (rows, n))
        self.sample_ids = _tensor(native.sample_ids(), torch.int32, (rows, n))
        self.completion_ids = _tensor(native.completion_ids(), torch.int32, (rows, n))
        completions, offsets, logit_rows, targets = native.log_prob_map()
        self.completions: List[Tuple[int, int]] = list(completions)
        self.num_samples = num_samples
        self.max_completions = max((c + 1 for _, c in self.completions), default=0)
        offsets = _tensor(offsets, torch.int64, (-1,))
        self.logit_rows = _tensor(logit_rows, torch.int64, (-1,))
        self.targets = _tensor(targets, torch.int64, (-1,))
        lens = offsets[1:] - offsets[:-1]
        # Per entry: its completion's index; per completion: its slot in [samples, max_k].
        self.entry_completion = torch.repeat_interleave(torch.arange(len(self.completions)), lens)
        self.completion_slot = torch.tensor(
            [s * self.max_completions + c for s, c in self.completions], dtype=torch.int64
        )
        self.efficiency: float = native.efficiency
        self.truncations: List[Tuple[int, int, int, int]] = native.truncations()
        self._plan: Optional[Plan] = None

    @staticmethod
    def _build(kind, samples, max_len, round_to, vocab, pad_token, truncate) -> "Batch":
        samples = list(samples)
        native = _native.Batch.build(
            kind, samples, int(max_len), round_to, vocab, int(pad_token), bool(truncate)
        )
        return Batch(native, len(samples))

    @staticmethod
    def shared(samples, max_len: int, round_to: Optional[int] = None, *, vocab: Optional[int] = None,
               pad_token: int = 0, truncate: bool = False) -> "Batch":
        """Each prompt once, its completions after it (trees in DFS preorder)."""
        return Batch._build("shared", samples, max_len, round_to, vocab, pad_token, truncate)

    @staticmethod
    def paired(samples, max_len: int, round_to: Optional[int] = None, *, vocab: Optional[int] = None,
               pad_token: int = 0, truncate: bool = False) -> "Batch":
        """Every completion (root-to-leaf path) as its own causal sequence with its prompt."""
        return Batch._build("paired", samples, max_len, round_to, vocab, pad_token, truncate)

    def plan(self, device=None) -> Plan:
        """The batch's :class:`Plan` (built once, on the host, and cached), with ``vis_end`` on
        ``device`` (uploaded there if it is a CUDA device)."""
        if self._plan is None:
            self._plan = Plan(self.vis_end, _native_plan=self._native.plan())
        if device is not None and torch.device(device) != self._plan.vis_end.device:
            return self._plan.to(device)
        return self._plan

    def to(self, device) -> "Batch":
        """Moves the tensors (ids, positions, vis_end and the log-prob map's indices) to
        ``device``, in place; returns the batch."""
        for name in ("input_ids", "position_ids", "vis_end", "sample_ids", "completion_ids",
                     "logit_rows", "targets", "entry_completion", "completion_slot"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def reference_logps(self, logits: Tensor) -> List[float]:
        """The crate's own CPU gather (float64 log-softmax) of per-completion sums, in the order
        of ``completions``: a reference for :func:`completion_logps` (tests)."""
        x = logits.detach().to(device="cpu", dtype=torch.float32).contiguous()
        return self._native.gather_sums(x.data_ptr(), x.numel(), x.shape[-1])


def completion_logps(logits: Tensor, batch: Batch) -> Tensor:
    """Summed log-probs of each completion's tokens, ``[num_samples, max_completions]``.

    ``logits`` is the model's output on ``batch`` (``[rows, n, vocab]``, any float dtype): the
    logit at position ``t`` predicts the token at ``t + 1`` of the same sequence, and in a shared
    row the last prompt token's logits predict the first token of every completion. Entry
    ``[s, c]`` is completion ``c`` of sample ``s`` (for a tree, leaf ``c`` in DFS preorder); a
    sample with fewer completions than ``max_completions`` has 0 in the rest. Computed in
    float32 (float64 for float64 logits) from only the logit rows that predict a scored token;
    differentiable.
    """
    rows, n, vocab = logits.shape
    if rows != batch.rows or n != batch.n:
        raise ValueError(f"logits {tuple(logits.shape)} are not [rows, n, vocab] of the batch "
                         f"[{batch.rows}, {batch.n}]")
    dev = logits.device
    dtype = torch.promote_types(logits.dtype, torch.float32)
    rows_idx = batch.logit_rows.to(dev)
    targets = batch.targets.to(dev)
    picked = logits.reshape(rows * n, vocab).index_select(0, rows_idx).to(dtype)
    per_token = torch.log_softmax(picked, dim=-1).gather(1, targets[:, None]).squeeze(1)
    sums = torch.zeros(len(batch.completions), dtype=dtype, device=dev).index_add(
        0, batch.entry_completion.to(dev), per_token
    )
    out = torch.zeros(batch.num_samples * batch.max_completions, dtype=dtype, device=dev)
    out = out.index_add(0, batch.completion_slot.to(dev), sums)
    return out.view(batch.num_samples, batch.max_completions)
