"""A batch's plan: its ``vis_end`` and the block lists the kernels walk, built once per batch.

How a plan reaches the custom ops
---------------------------------
A ``Plan`` is not a tensor, and ``torch.library`` ops take tensors, scalars and lists only. So the
ops receive two tensors that stand for it:

- ``vis_end`` (int32 ``[rows, n]``): the mask itself, everything a plan is built from;
- ``key`` (int64 ``[2]``, on the CPU): ``(process salt, plan id)``. The salt is random per process
  and the id never reused in a process, so a key names at most one plan.

At run time the op looks the key up in a registry of live plans (weak references: an entry lives
as long as its ``Plan`` does). A key it does not find (a plan already dropped before a
checkpointed recompute or a late backward, a key from another process) is not an error: the op
rebuilds the plan from ``vis_end`` on the host (one device-to-host copy and a block-list build)
and keeps the last few rebuilt plans. So the op is always correct, and fast whenever the
``Plan`` the caller built is alive.

Why tensors and not an integer argument: under ``torch.compile`` Dynamo specialises on Python
ints and on attributes of Python objects, so a per-batch integer would recompile the graph for
every batch; tensors are graph inputs, guarded on their shape, dtype and device only. Fake
tensors (``register_fake``, ``opcheck``, AOTAutograd, FSDP's meta passes) never read either
tensor's values.
"""

from __future__ import annotations

import collections
import itertools
import secrets
import threading
import weakref

import torch

from . import _native

_SALT = secrets.randbits(62)
_ids = itertools.count(1)
_live: "weakref.WeakValueDictionary[int, _native.Plan]" = weakref.WeakValueDictionary()
_rebuilt: "collections.OrderedDict[tuple, _native.Plan]" = collections.OrderedDict()
_REBUILT_KEEP = 4
_lock = threading.Lock()


def _host_vis_end(vis_end: torch.Tensor) -> torch.Tensor:
    if not isinstance(vis_end, torch.Tensor):
        vis_end = torch.as_tensor(vis_end, dtype=torch.int32)
    if vis_end.dim() != 2:
        raise ValueError(f"vis_end must be [rows, n], got shape {tuple(vis_end.shape)}")
    if vis_end.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"vis_end must hold integers (int32), got {vis_end.dtype}")
    if vis_end.dtype == torch.int64:
        bad = (vis_end < 0) | (vis_end > 2**31 - 1)
        if bool(bad.any()):
            raise ValueError("vis_end holds values outside int32")
    return vis_end.detach().to(device="cpu", dtype=torch.int32).contiguous()


def _build_native(host: torch.Tensor) -> "_native.Plan":
    rows, n = host.shape
    return _native.Plan.from_host(host.data_ptr(), rows, n)


class Plan:
    """``vis_end`` of a batch and its block lists: build once per batch, pass to every layer.

    ``vis_end`` is an int32 tensor ``[rows, n]`` (other integer dtypes are converted), on the CPU
    or a CUDA device: query ``i`` of a row sees key ``j`` iff ``j <= i < vis_end[j]``. The block
    lists are built on the host from it (no mask is materialised, nothing is compiled); for a CUDA
    ``vis_end`` they are uploaded to that device once, here. A row that breaks
    ``j <= vis_end[j] <= n`` is a ``ValueError`` naming the row and index.

    Attributes: ``vis_end`` (the tensor, int32, on the device given), ``key`` (int64 ``[2]`` on
    the CPU: what the ops use to find this plan), ``rows``, ``n``.
    """

    def __init__(self, vis_end, *, _native_plan=None):
        if _native_plan is None:
            host = _host_vis_end(vis_end)
            native = _build_native(host)
        else:
            native = _native_plan
        device = vis_end.device if isinstance(vis_end, torch.Tensor) else torch.device("cpu")
        if not isinstance(vis_end, torch.Tensor) or vis_end.dtype != torch.int32:
            vis_end = torch.as_tensor(vis_end).to(dtype=torch.int32)
        self.vis_end = vis_end.to(device).contiguous()
        self._native = native
        self._id = next(_ids)
        self.key = torch.tensor([_SALT, self._id], dtype=torch.int64)
        with _lock:
            _live[self._id] = native
        if device.type == "cuda":
            self.upload(device)

    @property
    def rows(self) -> int:
        return self._native.rows

    @property
    def n(self) -> int:
        return self._native.n

    def upload(self, device) -> "Plan":
        """Uploads the block lists to a CUDA device now (once per device; a call on a device the
        plan is not on yet uploads it itself, synchronising once: do it ahead of a CUDA graph
        capture). Returns the plan."""
        device = torch.device(device)
        if device.type != "cuda":
            raise ValueError(f"upload needs a CUDA device, got {device}")
        index = device.index if device.index is not None else torch.cuda.current_device()
        self._native.upload(index)
        return self

    def to(self, device) -> "Plan":
        """The same plan (same block lists, same key) with ``vis_end`` on ``device``, uploaded
        there if it is a CUDA device."""
        device = torch.device(device)
        p = Plan.__new__(Plan)
        p.vis_end = self.vis_end.to(device)
        p._native = self._native
        p._id = self._id
        p.key = self.key
        if device.type == "cuda":
            p.upload(device)
        return p

    def tiles(self):
        """The tile shapes ``(block_q, block_k)`` the plan has block lists for."""
        return self._native.tiles()

    def q_list_lengths(self):
        """Per tile shape ``(block_q, block_k, counts)``: counts int32 ``[rows, q_tiles]``, the
        number of k tiles in each q tile's list (what the kernels walk)."""
        out = []
        for bq, bk, raw in self._native.q_list_lengths():
            q_tiles = -(-self.n // bq)
            t = torch.frombuffer(bytearray(raw), dtype=torch.int32).view(self.rows, q_tiles)
            out.append((bq, bk, t))
        return out

    def __repr__(self) -> str:
        return f"prefix_attn.Plan(rows={self.rows}, n={self.n}, tiles={self.tiles()}, vis_end on {self.vis_end.device})"


def native_plan(key: torch.Tensor, vis_end: torch.Tensor) -> "_native.Plan":
    """The native plan a custom op's ``(key, vis_end)`` stands for: the live one, or one rebuilt
    from ``vis_end`` (see the module's docstring)."""
    salt, pid = (int(x) for x in key.tolist())
    rows, n = vis_end.shape
    if salt == _SALT:
        with _lock:
            p = _live.get(pid)
        if p is not None and p.rows == rows and p.n == n:
            return p
    k = (salt, pid, rows, n)
    with _lock:
        p = _rebuilt.get(k)
        if p is not None:
            _rebuilt.move_to_end(k)
            return p
    p = _build_native(_host_vis_end(vis_end))
    with _lock:
        _rebuilt[k] = p
        while len(_rebuilt) > _REBUILT_KEEP:
            _rebuilt.popitem(last=False)
    return p
