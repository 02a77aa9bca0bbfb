"""LM-head gradient sketches for [`banditlib.adapters.trl.BanditGRPOTrainer`][banditlib.adapters.trl.BanditGRPOTrainer]
(``grad_sketch=k``), from the hidden states of a forward pass alone, free of TRL and transformers: `sketching`
hooks the backbone of a model for the duration of a pass, `lm_head_sketch` is the arithmetic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from banditlib.errors import InvalidInputError

__all__ = ["SKETCH_TILE_ELEMENTS", "head_and_backbone", "lm_head_sketch", "logit_transform", "sketching"]

# Logits are computed per tile of at most this many (token, vocabulary) entries (16 MiB float32).
SKETCH_TILE_ELEMENTS = 1 << 22


def lm_head_sketch(
    hidden: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    left: torch.Tensor,
    right: torch.Tensor,
    *,
    temperature: float = 1.0,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    tile_elements: int = SKETCH_TILE_ELEMENTS,
) -> torch.Tensor:
    """Sketches ``L^T G_i R`` of each rollout's LM-head weight gradient ``G_i``, from hidden states alone.

    ``G_i`` is the gradient of rollout ``i``'s mean token log-prob ``(1 / T_i) sum_t log pi(y_t)`` with
    respect to the head's weight ``W`` ``(V, H)``, for the head TRL's fused kernel computes: logits
    ``z = f(s (W h + b)) / tau`` with ``f`` the identity or ``c tanh(. / c)`` (final-logit softcapping), so
    ``G_i = (1 / T_i) sum_t ((e_{y_t} - p_t) * f'(.) s / tau) h_t^T``. Without softcapping and with ``s = 1``
    this is [`banditlib.adapters.rlvr.influence.head_sketch`][banditlib.adapters.rlvr.influence.head_sketch] on
    ``softmax(z)``, computed without materialising ``(N, T, V)`` probabilities: the real tokens are processed in tiles
    of at most ``tile_elements / V`` tokens, each costing one head projection (``V H`` multiply-adds per token), the
    thin products ``delta L`` and ``h R`` (``V k1 + H k2``) and an outer product (``k1 k2``).

    Args:
        hidden: ``(n, T, H)`` the head's inputs at the positions that predict each completion token.
        tokens: ``(n, T)`` int64 completion tokens.
        mask: ``(n, T)`` the tokens that count (the loss's completion mask); a row without any gets zeros.
        weight: ``(V, H)`` the head's weight.
        bias: ``(V,)`` the head's bias, or None.
        left: ``(V, k1)``, the fixed left projection
            ([`sketch_matrices`][banditlib.adapters.rlvr.influence.sketch_matrices]).
        right: ``(H, k2)``, the fixed right projection.
        temperature: ``tau``, the sampling temperature (TRL's ``temperature``).
        logit_scale: ``s``, the model's logit multiplier (1 for most models).
        softcap: ``c``, the model's final-logit softcapping, or None.
        tile_elements: at most this many logits per tile (memory: about three float32 tiles).

    Returns:
        ``(n, k1 k2)`` float32 on ``hidden``'s device.
    """
    n = hidden.shape[0]
    vocab, k1, k2 = weight.shape[0], left.shape[1], right.shape[1]
    device = hidden.device
    out = torch.zeros(n, k1, k2, dtype=torch.float32, device=device)
    keep = mask.to(device).bool()
    where = torch.nonzero(keep)  # (M, 2) (row, position) of the real tokens
    if where.shape[0] == 0:
        return out.flatten(1)
    row_scale = 1.0 / keep.sum(1).clamp_min(1).to(torch.float32)
    L, R = left.to(device, torch.float32), right.to(device, torch.float32)
    W = weight.to(device)
    b = None if bias is None else bias.to(device)
    h_all, y_all = hidden[keep], tokens.to(device)[keep].long()
    step = max(1, tile_elements // max(vocab, 1))
    with torch.autocast(device.type, enabled=False):  # float32 (logits in the head's dtype), whatever the caller's
        for s in range(0, where.shape[0], step):
            _sketch_tile(out, h_all[s : s + step], y_all[s : s + step], where[s : s + step, 0], row_scale, W, b, L, R,
                         temperature, logit_scale, softcap)  # fmt: skip
    return out.flatten(1)


def _sketch_tile(
    out: torch.Tensor, h: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, row_scale: torch.Tensor,
    W: torch.Tensor, b: torch.Tensor | None, L: torch.Tensor, R: torch.Tensor, temperature: float,
    logit_scale: float, softcap: float | None,
) -> None:  # fmt: skip
    """Add one tile of ``m`` tokens (hidden ``h`` ``(m, H)``, tokens ``y``, their ``rows``) to ``out``."""
    u = F.linear(h.to(W.dtype), W, None if b is None else b.to(W.dtype)).float() * logit_scale
    if softcap:
        th = torch.tanh(u / softcap)
        z = th * (softcap / temperature)
        slope: torch.Tensor | float = (1.0 - th * th) * (logit_scale / temperature)
    else:
        z, slope = u / temperature, logit_scale / temperature
    delta = torch.softmax(z, dim=-1).neg_()
    delta[torch.arange(y.shape[0], device=y.device), y] += 1.0
    dl = (delta.mul_(slope) @ L) * row_scale[rows, None]  # (m, k1)
    hr = h.float() @ R  # (m, k2)
    out.index_add_(0, rows, dl[:, :, None] * hr[:, None, :])


def unwrap_peft(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (TRL patches that one's forward), else ``model``."""
    return model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model


def head_and_backbone(model: Any) -> tuple[Any, Any]:
    """The LM head (``get_output_embeddings()``) and the backbone whose output TRL's fused head projects."""
    core = unwrap_peft(model)
    head = core.get_output_embeddings() if callable(getattr(core, "get_output_embeddings", None)) else None
    backbone = getattr(core, "base_model", None)
    if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor) or head.weight.dim() != 2:
        raise InvalidInputError(
            "BanditGRPOTrainer(): `grad_sketch` needs a causal LM whose `get_output_embeddings()` is a linear head; "
            f"{type(core).__name__} has none."
        )
    if not isinstance(backbone, torch.nn.Module) or backbone is core:
        raise InvalidInputError(
            f"BanditGRPOTrainer(): `grad_sketch` needs the backbone of {type(core).__name__} (`base_model`) to "
            "capture its hidden states; the model has none."
        )
    return head, backbone


def logit_transform(model: Any) -> tuple[float, float | None]:
    """``(logit_scale, final_logit_softcapping)`` of the head, read from the config as TRL's fused head reads it."""
    cfg = unwrap_peft(model).config.get_text_config()
    scale = None
    for key in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        scale = getattr(cfg, key, None) if scale is None else scale
    if scale is None and getattr(cfg, "logits_scaling", None) is not None:
        scale = cfg.logits_scaling if cfg.model_type == "hyperclovax" else 1 / cfg.logits_scaling
    softcap = getattr(cfg, "final_logit_softcapping", None)
    return (1.0 if scale is None else float(scale)), (None if softcap is None else float(softcap))


@contextlib.contextmanager
def sketching(
    model: Any, left: torch.Tensor, right: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor,
    *, temperature: float,
) -> Iterator[list[torch.Tensor]]:  # fmt: skip
    """Within the block, each forward of ``model``'s backbone appends its micro-batch's ``(b, k)`` sketches.

    The pass must run over ``completion_ids`` ``(n, C)`` (after their prompts) in micro-batches, in row order,
    as TRL's ``_get_per_token_logps_and_entropies`` does; ``left`` ``(V, k1)`` and ``right`` ``(H, k2)`` are the
    sketch matrices. Position ``j - 1`` of the hidden states predicts completion token ``j``.
    """
    head, backbone = head_and_backbone(model)
    scale, softcap = logit_transform(model)
    weight = head.weight.detach()
    bias = None if head.bias is None else head.bias.detach()
    width, done = completion_ids.shape[1], [0]  # rows sketched so far
    sketches: list[torch.Tensor] = []

    def sketch(module: Any, inputs: Any, output: Any) -> None:
        states = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        rows = slice(done[0], done[0] + states.shape[0])
        done[0] += states.shape[0]
        sketches.append(lm_head_sketch(
            states[:, -width - 1 : -1].detach().to(weight.device), completion_ids[rows].to(weight.device),
            completion_mask[rows].to(weight.device), weight, bias, left, right, temperature=temperature,
            logit_scale=scale, softcap=softcap,
        ))  # fmt: skip

    hook = backbone.register_forward_hook(sketch)
    try:
        yield sketches
    finally:
        hook.remove()
