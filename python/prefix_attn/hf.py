"""Hugging Face transformers: ``prefix_attn`` as an attention implementation.

::

    import prefix_attn, prefix_attn.hf
    prefix_attn.hf.register()
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="prefix_attn")
    batch = prefix_attn.Batch.shared(samples, max_len=4096, round_to=128)
    out = model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                prefix_attn_plan=batch.plan(device))

The plan travels with the batch as the keyword argument ``prefix_attn_plan``: Llama-family models
forward their extra keyword arguments (``**kwargs``) from ``forward`` down to the attention
function. Positions come from ``position_ids`` (rotary embeddings), which the model computes
before attention; the attention mask comes from the plan alone (transformers builds none for an
attention implementation it has no mask function for, so ``attention_mask`` is ``None`` here).

Dtypes: the kernels take bfloat16 or float16. A model in either runs the op in its own dtype; a
model in float32 or float64 has q, k and v rounded to ``compute_dtype`` (``register``'s argument,
bfloat16 by default) for the op, and the output cast back to the model's dtype.
"""

from __future__ import annotations

from typing import Optional

import torch

from .ops import attention
from .plan import Plan

NAME = "prefix_attn"
_compute_dtype = torch.bfloat16


def prefix_attn_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    scaling: Optional[float] = None,
    prefix_attn_plan: Optional[Plan] = None,
    **kwargs,
):
    """transformers' attention-function signature: query ``[b, h, s, d]``, key and value
    ``[b, kv_h, s, d]``; returns ``([b, s, h, d], None)``."""
    if prefix_attn_plan is None:
        raise ValueError(
            "attn_implementation='prefix_attn' needs the batch's plan: call the model with "
            "prefix_attn_plan=batch.plan(device) (and position_ids=batch.position_ids)"
        )
    if dropout:
        raise NotImplementedError("prefix_attn has no attention dropout (got dropout > 0)")
    if attention_mask is not None:
        raise ValueError(
            "prefix_attn takes its mask from the plan; got an attention_mask as well "
            "(padding belongs in vis_end: vis_end[j] = j)"
        )
    dtype = query.dtype
    run = dtype if dtype in (torch.bfloat16, torch.float16) else _compute_dtype
    q = query.transpose(1, 2).to(run)
    k = key.transpose(1, 2).to(run)
    v = value.transpose(1, 2).to(run)
    o = attention(q, k, v, prefix_attn_plan, scale=scaling)
    return o.to(dtype), None


def register(compute_dtype: torch.dtype = torch.bfloat16) -> None:
    """Registers the op with transformers' ``AttentionInterface`` as ``"prefix_attn"``.
    ``compute_dtype`` (bfloat16 or float16) is what a float32/float64 model's q, k and v are
    rounded to for the kernels."""
    global _compute_dtype
    if compute_dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"compute_dtype must be bfloat16 or float16, got {compute_dtype}")
    _compute_dtype = compute_dtype
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, prefix_attn_forward)
