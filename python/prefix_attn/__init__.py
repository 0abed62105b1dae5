"""prefix_attn: prefix-shared attention for PyTorch (DPO pairs, GRPO groups, trees, packed
documents), on the prefix-attn crate's hand-written CUDA kernels, with a deterministic backward.

One mask rule: per row one int32 per key, ``vis_end[j]``; query ``i`` sees key ``j`` iff
``j <= i < vis_end[j]``.

- :class:`Plan` (``vis_end`` and its block lists, once per batch) and :func:`attention`
  (differentiable; CUDA tensors run the kernels on the current stream, CPU tensors run them
  under the crate's emulator);
- :class:`Batch` (``shared`` / ``paired`` rows from samples) and :func:`completion_logps`;
- :mod:`prefix_attn.hf`: ``register()`` adds ``attn_implementation="prefix_attn"`` to
  transformers.
"""

from . import _native
from .batch import Batch, TokenTree, completion_logps
from .ops import attention
from .plan import Plan

#: Whether this build embeds the CUDA kernels (built with nvcc). Without them CUDA tensors raise
#: a RuntimeError saying how to build them; the CPU emulator works either way.
KERNELS_BUILT: bool = _native.KERNELS_BUILT

__all__ = ["Plan", "attention", "Batch", "TokenTree", "completion_logps", "KERNELS_BUILT"]
__version__ = "0.1.0"
