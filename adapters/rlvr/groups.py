"""Per-group operations over a round's rollouts: the group layout, sums and moments, reward ranges, GRPO's
advantage and per-group top-k, written once for the batch, the features, the rules, the baselines and the
simulator.

Every function takes ``(N,)`` per-row tensors and a group index per row; nothing loops over groups in Python.
(The simulator's oracle keeps its own ``top_per_group`` over float keys with ties in row order: it ranks
candidate selections, not scheduler scores.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["GroupLayout", "group_moments", "group_range", "group_sum", "grpo_advantage", "keep_counts",
           "top_per_group"]  # fmt: skip


@dataclass(frozen=True)
class GroupLayout:
    """Where each row sits in its group, for vectorised per-group work without Python loops.

    Attributes:
        inverse: ``(N,)`` int64 group index of each row in ``[0, G)`` (groups in ascending id order).
        counts: ``(G,)`` int64 rows per group.
        position: ``(N,)`` int64 position of each row within its group (row order).
        padded: ``(G, G_max)`` int64 row index at each (group, position), ``-1`` in the padding.
        mask: ``(G, G_max)`` bool, ``True`` where ``padded`` holds a row.
        cache: per-batch results computed from this layout (the answer statistics), so that the features
            and the label of one ``schedule`` call compute them once.

    Examples:
        >>> lay = GroupLayout.of(torch.tensor([7, 7, 3]))
        >>> lay.inverse.tolist(), lay.counts.tolist(), lay.position.tolist(), lay.padded.tolist()
        ([1, 1, 0], [1, 2], [0, 1, 0], [[2, -1], [0, 1]])
    """

    inverse: torch.Tensor
    counts: torch.Tensor
    position: torch.Tensor
    padded: torch.Tensor
    mask: torch.Tensor
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, group: torch.Tensor) -> GroupLayout:
        """The layout of ``(N,)`` group ids (``N >= 1``)."""
        n = group.shape[0]
        rows = torch.arange(n, device=group.device)
        if n < 2 or bool((group[1:] > group[:-1]).logical_or_(group[1:] == group[:-1]).all()):
            # The usual layout, groups contiguous and ascending: no sort needed.
            _, inv, counts = torch.unique_consecutive(group, return_inverse=True, return_counts=True)
            offsets = torch.cumsum(counts, 0) - counts
            position = rows - offsets[inv]
        else:
            _, inv, counts = torch.unique(group, return_inverse=True, return_counts=True)
            order = torch.argsort(inv, stable=True)
            offsets = torch.cumsum(counts, 0) - counts
            position = torch.empty_like(rows)
            position[order] = rows - offsets[inv[order]]
        padded = torch.full((counts.shape[0], int(counts.max())), -1, dtype=torch.long, device=group.device)
        padded[inv, position] = rows
        return cls(inv, counts, position, padded, padded >= 0)


def group_sum(values: torch.Tensor, inverse: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-group sums of ``values``, in ``values``' dtype.

    Args:
        values: ``(N,)`` floats.
        inverse: ``(N,)`` int64 group index of each row in ``[0, n_groups)`` (``GroupLayout.inverse``).
        n_groups: ``G``.

    Returns:
        ``(G,)`` sums (0 for a group without rows).

    Examples:
        >>> group_sum(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, 1, 1]), 2).tolist()
        [1.0, 6.0]
    """
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, values)


def group_moments(
    values: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor, *, ddof: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean and variance of ``values``, in ``values``' dtype (two passes: the deviations from the
    group mean are summed, not the squares).

    Args:
        values: ``(N,)`` floats (pass float64 for float64 statistics).
        inverse: ``(N,)`` int64 group index of each row in ``[0, G)``.
        counts: ``(G,)`` int64 rows per group (every group non-empty).
        ddof: ``0`` for the population variance, ``1`` for the sample variance (``n - 1``, at least 1: a
            group of one has variance 0).

    Returns:
        ``(mean, var)``, each ``(G,)``.

    Examples:
        >>> mean, var = group_moments(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 1]), torch.tensor([2, 1]))
        >>> mean.tolist(), var.tolist()
        ([2.0, 5.0], [1.0, 0.0])
    """
    G = counts.shape[0]
    mean = group_sum(values, inverse, G) / counts
    dev = values - mean[inverse]
    return mean, group_sum(dev * dev, inverse, G) / (counts - ddof).clamp_min(1)


def group_range(values: torch.Tensor, inverse: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group smallest and largest value, in ``values``' dtype.

    Args:
        values: ``(N,)`` floats.
        inverse: ``(N,)`` int64 group index of each row in ``[0, n_groups)``, every group non-empty.
        n_groups: ``G``.

    Returns:
        ``(lo, hi)``, each ``(G,)``.

    Examples:
        >>> lo, hi = group_range(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1]), 2)
        >>> lo.tolist(), hi.tolist()
        ([0.0, 1.0], [1.0, 1.0])
    """
    empty = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    lo = empty.scatter_reduce(0, inverse, values, "amin", include_self=False)
    hi = empty.scatter_reduce(0, inverse, values, "amax", include_self=False)
    return lo, hi


def grpo_advantage(group: torch.Tensor, reward: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantage ``(r - mean_g) / (std_g + eps)`` per group, in ``reward``'s dtype: the sample standard
    deviation (``n - 1``, as TRL), so a group whose rewards are all equal, or a group of one, gets 0.

    Args:
        group: ``(N,)`` integer group ids (any values; a group's rows need not be contiguous).
        reward: ``(N,)`` float rewards (pass float64 for float64 arithmetic).
        eps: added to the standard deviation.

    Returns:
        ``(N,)`` advantages.

    Examples:
        >>> grpo_advantage(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.0, 1.0, 1.0])).round(decimals=3)
        tensor([ 0.7070, -0.7070,  0.0000,  0.0000])
    """
    _, inv, counts = torch.unique(group, return_inverse=True, return_counts=True)
    mean, var = group_moments(reward, inv, counts, ddof=1)
    return (reward - mean[inv]) / (var.sqrt()[inv] + eps)


def top_per_group(keys: torch.Tensor, padded: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows with the ``keep[g]`` largest ``keys`` in each group, ascending row indices.

    Args:
        keys: ``(N,)`` int64 ranking keys of the rows, distinct within a group (the schedulers' keys combine
            the score with a random tie-break).
        padded: ``(G, G_max)`` row index per slot, ``-1`` in the padding (``GroupLayout.padded``).
        mask: ``(G, G_max)`` bool real slots (``GroupLayout.mask``).
        keep: ``(G,)`` int64 rows to keep per group (``<=`` its size).

    Returns:
        ``(sum(keep),)`` int64 row indices, ascending.

    Examples:
        >>> lay = GroupLayout.of(torch.tensor([0, 0, 0, 1, 1]))
        >>> top_per_group(torch.tensor([5, 9, 7, 1, 2]), lay.padded, lay.mask, torch.tensor([2, 1])).tolist()
        [1, 2, 4]
    """
    k_max = int(keep.max())
    if k_max == 0:
        return torch.zeros(0, dtype=torch.long, device=keys.device)
    slot_keys = torch.where(mask, keys[padded.clamp_min(0)], torch.iinfo(torch.long).min)
    _, best = torch.topk(slot_keys, k_max, dim=1)
    take = torch.arange(k_max, device=keys.device)[None, :] < keep[:, None]
    rows = padded.gather(1, best)[take]
    return rows.sort().values


def keep_counts(counts: torch.Tensor, fraction: float) -> torch.Tensor:
    """``ceil(fraction * n)`` rows per group of ``n`` rows, at least 1 (a group of one is kept) and at most ``n``.

    Args:
        counts: ``(G,)`` int64 rows per group.
        fraction: share of each group to keep, in ``(0, 1]``.

    Returns:
        ``(G,)`` int64.

    Examples:
        >>> keep_counts(torch.tensor([16, 3, 1]), 0.5).tolist()
        [8, 2, 1]
    """
    eps = 1e-9  # 0.5 * 16 must give 8, not 9, despite rounding
    return torch.ceil(counts.to(torch.float64) * fraction - eps).long().clamp(1, None).minimum(counts)
