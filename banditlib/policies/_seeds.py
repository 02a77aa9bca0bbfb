"""Several seeds of one neural policy as one computation, with the bits of separate runs.

A regret study runs one policy configuration under ``S`` seeds. Separately, each seed's neural round is a few
hundred small tensor operations, each paying microseconds of dispatch for little arithmetic, so ``S`` seeds
cost ``S`` times one. [`SeedBatch`][banditlib.policies._seeds.SeedBatch] keeps the gradient estimator's state
(``NeuralUCB``, ``NeuralTS``, ``NeuralEpsilonGreedy`` with ``z="diag"``, in `banditlib.policies._seeds_gradient`;
``NeuralLinUCB`` and ``NeuralLinTS`` in `banditlib.policies._seeds_linear`) with a leading seed dimension,
``(S, p)`` parameters, ``(S, H, D)`` history and so on, and runs one round of every seed with one operation
where the separate runs would run ``S``.

**Exactly the separate runs.** The point of a seed study is that each seed is the run one would have made
alone, so a batch must give every seed the decisions, and the final state, of that seed's own policy, bit for
bit (the tests hold it to that). What makes this possible:

* elementwise operations (``+``, ``*``, ``relu``, ``sqrt``, casts) round each element on its own, so their
  batched form is exact; the transcendental ones (Thompson sampling's Box-Muller draws) are computed per seed
  by the policy's own code, since a vectorised and a scalar ``log`` may differ in the last bit;
* random numbers are counter-based (`banditlib._random`): a seed's draws depend on its seed and its decision
  counter only, so they are drawn per seed exactly as the policy draws them;
* Adam's step is ``torch._fused_adam_`` over a list holding every seed's parameter vector: one call, and each
  vector is processed exactly as a list of one;
* matrix products and reductions are where a batched form may round differently (a batched GEMM may block a
  small product differently from a single one; a matrix-vector product may take a different kernel). Each one
  goes through `Exact` (`banditlib.policies._exact`), which compares, once per operation, shapes and memory
  alignment, the batched form with the policy's own single-seed operation on random inputs; when they differ
  it loops over the seeds with the single operation.

Anything a separate run would report (a non-finite update, scores that are not finite) stops the batch with
`SeedBatchFallback`, so that the caller runs the seeds separately and each raises its own error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from banditlib import _random
from banditlib.policies._exact import (
    Exact,
    addmm_batched,
    addmv_batched,
    colsum,
    colsum_batched,
    pad,
    tmm,
    tmm_batched,
)
from banditlib.policies._network import block_encode
from banditlib.policies._neural_base import _BETAS, _EPS, STREAM_TRAIN
from banditlib.policies.neural import NeuralEpsilonGreedy, NeuralTS, NeuralUCB
from banditlib.policies.neural_linear import NeuralLinTS, NeuralLinUCB
from banditlib.policies.selection import top_k

__all__ = ["SeedBatch", "SeedBatchFallback", "seed_batch", "unsupported"]

BATCHED_CLASSES: tuple[type, ...] = (NeuralUCB, NeuralTS, NeuralEpsilonGreedy, NeuralLinUCB, NeuralLinTS)
_COUNTERS = ("rng_counter", "n_seen_", "since_train", "train_rounds", "adam_t_")


class SeedBatchFallback(RuntimeError):
    """The batch cannot go on exactly as separate runs would (a run would raise, or an operation has no exact
    form); the caller runs the seeds separately."""


def unsupported(policies: Sequence[Any]) -> str | None:
    """Why ``policies`` cannot run as one `SeedBatch` (``None``: they can).

    They must be of one class among ``NeuralUCB``, ``NeuralTS``, ``NeuralEpsilonGreedy`` (with ``z="diag"``),
    ``NeuralLinUCB`` and ``NeuralLinTS`` (exactly, not a subclass), with one configuration, the ``relu``
    activation with hidden widths of at least 2, on the CPU with the torch backend, and with the same counters
    (decisions, observations, training rounds).
    """
    if not policies:
        return "no policies"
    first = policies[0]
    cls = type(first)
    if cls not in BATCHED_CLASSES:
        return f"{cls.__name__} has no seed-batched form (only {', '.join(c.__name__ for c in BATCHED_CLASSES)})"
    for p in policies:
        if type(p) is not cls or p.config != first.config or p.dtype != first.dtype:
            return "the policies differ in class, configuration or dtype"
        if p.device.type != "cpu" or p.backend == "triton":
            return "only CPU policies on the torch backend batch"
        for name in _COUNTERS:
            if int(getattr(p, name)) != int(getattr(first, name)):
                return f"the policies' `{name}` differ"
    if getattr(first, "z", "diag") != "diag":
        return "only z='diag' batches"
    if first.activation != "relu" or not first.net._manual_backward:
        return "only the relu activation batches"
    if any(w < 2 for w in first.hidden):
        return "hidden widths of 1 do not batch"
    return None


def _layers(flat: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(W (S, out, in), c (S, out))`` views into ``flat`` ``(S, p)``, laid out as `MLP.params`."""
    out, offset = [], 0
    S = flat.shape[0]
    for o, i in shapes:
        out.append((flat[:, offset : offset + o * i].view(S, o, i), flat[:, offset + o * i : offset + o * i + o]))
        offset += o * i + o
    return out


def seed_batch(policies: Sequence[Any]) -> SeedBatch:
    """The `SeedBatch` for ``policies``' estimator: `banditlib.policies._seeds_gradient.GradientSeedBatch`
    (NeuralUCB, NeuralTS, NeuralEpsilonGreedy) or `banditlib.policies._seeds_linear.NeuralLinearSeedBatch`
    (NeuralLinUCB, NeuralLinTS).

    Raises:
        SeedBatchFallback: the policies cannot batch (the reason from `unsupported`).
    """
    if policies and isinstance(policies[0], (NeuralLinUCB, NeuralLinTS)):  # the constructor checks the rest
        from banditlib.policies._seeds_linear import NeuralLinearSeedBatch

        return NeuralLinearSeedBatch(policies)
    from banditlib.policies._seeds_gradient import GradientSeedBatch

    return GradientSeedBatch(policies)


class SeedBatch:
    """``S`` policies of one configuration (see `unsupported`) run as one computation, one decision per seed per
    round; `write_back` puts each seed's state back into its policy, equal bit for bit to the state of that
    policy run alone on the same rounds.

    This class holds what every neural estimator shares (the network, its history and its training, the
    selection of the top arm); a subclass adds the estimator's statistics (``_stat_names``, stacked with the
    seed first in ``stats``) and how they score (`_score`), fold an observation in (`_fold`) and follow a
    training round (`_refit`). Build one with `seed_batch`.

    Args:
        policies: the ``S`` policies (each built with its own seed); their state is defined again only after
            `write_back` (a subclass may run a seed's own policy code on them in between).

    Raises:
        SeedBatchFallback: the policies cannot batch (the reason from `unsupported`).
    """

    _stat_names: tuple[str, ...] = ()

    def __init__(self, policies: Sequence[Any]) -> None:
        reason = unsupported(policies)
        if reason is not None:
            raise SeedBatchFallback(reason)
        self.policies = list(policies)
        p0 = self.policies[0]
        self.S, self.p0 = len(self.policies), p0
        self.seeds = [int(p.seed) for p in self.policies]
        self.dtype, self.K_disjoint = p0.dtype, p0.arms
        self.shapes = list(p0.net.shapes)
        with torch.no_grad():
            # each seed's vectors at a 64-byte boundary, as a separate policy's are
            def stack(name: str) -> torch.Tensor:
                return pad(torch.stack([p.get_buffer(name) if name != "params" else p.net.params.detach()
                                         for p in self.policies]))  # fmt: skip

            self.P, self.theta0 = stack("params"), stack("theta0_")
            self.m, self.v = stack("adam_m_"), stack("adam_v_")
            self.hist_x, self.hist_r = stack("hist_x_"), stack("hist_r_")
            self.stats = {name: stack(name) for name in self._stat_names}
        self.rng_counter, self.n_seen, self.since_train, self.train_rounds, self.adam_t = (
            int(getattr(p0, name)) for name in _COUNTERS
        )
        self.exact = Exact(self.S)
        self.layers = [(W, W.transpose(1, 2), c) for W, c in _layers(self.P, self.shapes)]
        self.G = pad(torch.empty_like(self.P))
        self.grads = [(gW, gc) for gW, gc in _layers(self.G, self.shapes)]
        self._sites: list[Callable[..., torch.Tensor]] | None = None  # see _op and _phase
        self._phases: dict[tuple[Any, ...], list[Callable[..., torch.Tensor]]] = {}
        self._recording, self._site = False, 0
        self.two = torch.full((), 2.0, dtype=self.dtype)
        self.lists = [list(t.unbind(0)) for t in (self.P, self.G, self.m, self.v)]
        if isinstance(p0, (NeuralUCB, NeuralLinUCB)):
            self.rule = "ucb"
        elif isinstance(p0, (NeuralTS, NeuralLinTS)):
            self.rule = "ts"
        else:
            self.rule = "epsilon"
        self.width = float(p0._width()) if self.rule != "epsilon" else 0.0

    # ------------------------------------------------------------------------------------------ estimator hooks

    def _score(self, enc: torch.Tensor, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rule's ``mean`` and ``bonus`` ``(S, K)`` at network inputs ``enc`` ``(S, K, D)``, decision ``row``."""
        raise NotImplementedError

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """The statistics after observing ``enc`` ``(S, 1, D)`` with ``rewards`` ``(S,)``, computed aside.

        Raises:
            SeedBatchFallback: some seed's own update would raise.
        """
        raise NotImplementedError

    def _refit(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The statistics to commit after a training round (default: ``stats`` as folded)."""
        return stats

    def _changed(self) -> None:
        """The statistics changed: drop what is cached from them."""

    # ------------------------------------------------------------------------------------------ network

    def _op(self, name: str, single: Callable[..., torch.Tensor], batched: Callable[..., torch.Tensor],
            *args: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """``self.exact(name, ...)``, remembered per phase (`_phase`): every call of a phase with inputs laid out
        alike lays out its intermediate tensors alike, so the choices of its first call are replayed, in call
        order, without the layout check."""
        sites = self._sites
        if sites is None:
            return self.exact(name, single, batched, *args)
        if self._recording:
            fn = self.exact.pick(name, single, batched, *args)
            sites.append(fn)
        else:
            fn = sites[self._site]
            self._site += 1
        return fn(*args)

    @contextlib.contextmanager
    def _phase(self, name: str, x: torch.Tensor) -> Iterator[None]:
        """A phase (``select``, ``fold``, a training round) on input ``x``: its first run records the choices of
        `_op`, later runs with ``x`` laid out alike replay them; a run that raises records nothing."""
        key = (name, tuple(x.shape), x.stride(), self.exact._align(x))
        sites = self._phases.get(key)
        recording = self._recording = sites is None
        new: list[Callable[..., torch.Tensor]] = []
        self._sites, self._site = new if sites is None else sites, 0
        try:
            yield
            if recording:
                self._phases[key] = new
        finally:
            self._sites, self._recording = None, False

    def _linear(self, c: torch.Tensor, h: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
        """``addmm(c, h, W^T)`` per seed: ``(S, out)``, ``(S, N, in)``, ``(S, in, out)`` -> ``(S, N, out)``."""
        batched = addmv_batched if WT.shape[2] == 1 else addmm_batched
        return self._op("linear", torch.addmm, batched, c, h, WT)

    def _forward(self, x: torch.Tensor, out_layer: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """`banditlib.policies._network._forward` per seed (without the output layer's product unless
        ``out_layer``: an update's gradient pieces do not need the output)."""
        hs, ys = [], []
        h, last = x, len(self.layers) - 1
        for i, (_, WT, c) in enumerate(self.layers):
            hs.append(h)
            if i == last and not out_layer:
                break
            y = self._linear(c, h, WT)
            ys.append(y)
            if i < last:
                h = torch.relu(y)
        return hs, ys

    def _backward(self, hs: list[torch.Tensor], delta: torch.Tensor | None) -> list[torch.Tensor]:
        """`banditlib.policies._network._backward` per seed (row-major layer inputs, as `unsupported` ensures)
        from the output layer's ``delta`` ``(S, N, 1)``; ``None`` for ``d(sum f)/df``, all ones (then the first
        product is the output layer's weights, exactly, on every row)."""
        last = len(self.layers) - 1
        S, N = hs[0].shape[:2]
        deltas = [torch.ones((), dtype=self.dtype).expand(S, N, 1) if delta is None else delta]
        for i in range(last, 0, -1):
            W = self.layers[i][0]
            if delta is None and i == last:
                g = W.expand(S, N, W.shape[2])
            else:
                g = self._op("backward", torch.mm, torch.bmm, deltas[-1], W)
            deltas.append(torch.ops.aten.threshold_backward.default(g, hs[i], 0))
        deltas.reverse()
        return deltas

    # ------------------------------------------------------------------------------------------ rounds

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Contexts ``(S, K, d)`` or ``(S, d)`` -> network inputs ``(S, K, D)``."""
        if self.K_disjoint is None:
            return pad(x)
        return pad(block_encode(x, self.K_disjoint))

    def select(self, x: torch.Tensor) -> np.ndarray:
        """One decision per seed: ``x`` ``(S, K, d)`` (shared model) or ``(S, d)`` (disjoint arms) in the
        policies' dtype -> ``(S,)`` int64 arms, as each policy's ``select(x[s:s+1])`` would choose.

        Raises:
            SeedBatchFallback: a seed's scores are not finite (its own ``select`` would raise).
        """
        row = self.rng_counter
        mean, bonus = self._score(self._inputs(x), row)
        scores = mean + bonus
        if not bool(torch.isfinite(scores).all()):
            raise SeedBatchFallback("a seed's scores are not finite")
        top_vals, idx = scores.max(dim=1, keepdim=True)
        tied = ((scores == top_vals).sum(dim=1) > 1).nonzero().flatten().tolist()
        if tied:
            rows = torch.tensor([row])
            for s in tied:
                idx[s] = top_k(scores[s : s + 1], 1, rows, self.seeds[s], "torch")[0]
        self.rng_counter += 1
        return idx.squeeze(1).numpy().copy()

    def _bonus(self, mean: torch.Tensor, var: torch.Tensor, row: int) -> torch.Tensor:
        """The UCB, Thompson (independent arms) or epsilon-greedy bonus ``(S, K)`` over ``mean`` and the clamped
        variance factor ``var``, as each policy's rule computes it."""
        if self.rule == "ucb":
            return self.width * var.clamp_min(0.0).sqrt()
        if self.rule == "ts":
            rows = torch.tensor([row])
            z = torch.cat([p._normal(rows, mean.shape[1]) for p in self.policies]).to(mean.dtype)
            return (self.width * var.clamp_min(0.0).sqrt()) * z
        bonus = torch.zeros_like(mean)
        eps = self.p0.epsilon
        if eps != 0.0:
            K = mean.shape[1]
            for s, seed in enumerate(self.seeds):
                draws = _random.uniform_np(seed, _random.STREAM_EXPLORE, row, K + 1)
                if draws[0] < eps:
                    bonus[s] = torch.from_numpy(draws[1:]).to(mean.dtype) - mean[s]
        return bonus

    def update(self, x: torch.Tensor, actions: np.ndarray, rewards: torch.Tensor) -> None:
        """One observation per seed, as each policy's ``update(x[s:s+1], [[a_s]], [[r_s]])`` would learn it.

        Args:
            x: the contexts given to `select`.
            actions: ``(S,)`` the arms played.
            rewards: ``(S,)`` their rewards, in the policies' dtype.

        Raises:
            SeedBatchFallback: an update of some seed would not be finite (its own ``update`` would raise).
        """
        S = self.S
        a = torch.from_numpy(np.asarray(actions, dtype=np.int64))
        seeds = torch.arange(S)
        if self.K_disjoint is None:
            enc = pad(x[seeds, a].unsqueeze(1))  # (S, 1, d)
        else:
            K, d = self.K_disjoint, x.shape[1]
            enc = x.new_zeros(S, K, d)
            enc[seeds, a] = x
            enc = pad(enc.reshape(S, 1, K * d))
        with self._phase("fold", enc):
            new = self._fold(enc, rewards)
        p0 = self.p0
        due = p0.train_steps > 0 and self.since_train + 1 >= p0.train_every
        pos = self.n_seen % p0.history
        self.hist_x[:, pos] = enc[:, 0]
        self.hist_r[:, pos] = rewards
        self.n_seen += 1
        if due:
            self._train()
            if not (bool(torch.isfinite(self.P).all()) and bool(torch.isfinite(self.m).all())
                    and bool(torch.isfinite(self.v).all())):  # fmt: skip
                raise SeedBatchFallback("training made a seed's network non-finite")
            new = self._refit(new)
            self.since_train = 0
        else:
            self.since_train += 1
        for name, value in new.items():
            self.stats[name].copy_(value)
        self._changed()

    def _train(self) -> None:
        """`_NeuralPolicy._train` / `_adam` per seed: ``train_steps`` Adam steps on every seed's history."""
        p0 = self.p0
        steps, B = p0.train_steps, p0.batch_size
        n = min(self.n_seen, p0.history)
        first = self.train_rounds * steps
        rows = torch.arange(first, first + steps)
        picks = torch.stack(
            [(_random.uniform(seed, STREAM_TRAIN, rows, B) * n).long().clamp_max(n - 1) for seed in self.seeds]
        )  # (S, steps, B)
        S, D = self.S, self.hist_x.shape[2]
        # every minibatch of every seed at a 64-byte boundary, as the policy's pre-gathered ones are
        per = -(-B * D * self.hist_x.element_size() // 64) * 64 // self.hist_x.element_size()
        xs = torch.empty(steps, S, per, dtype=self.dtype)
        xb = xs[:, :, : B * D].view(steps, S, B, D)
        xb.copy_(self.hist_x[torch.arange(S)[:, None, None], picks].transpose(0, 1))
        yb = self.hist_r[torch.arange(S)[:, None, None], picks].transpose(0, 1).unsqueeze(-1).contiguous()
        anchor = p0.loss == "anchor"
        wd = p0.reg if p0.loss == "weight_decay" else 0.0
        half = torch.full((), 0.5, dtype=self.dtype)
        scale = (half.expand(B) / B).unsqueeze(-1)
        anchor_scale = torch.ones((), dtype=self.dtype) * (0.5 * p0.reg / n)
        diff = pad(torch.empty_like(self.P))
        P_l, G_l, m_l, v_l = self.lists
        # the step counts Adam reads, one 0-d tensor per step (the kernel only reads it), and the minibatches,
        # each unbound once rather than indexed per step
        counts = torch.arange(self.adam_t + 1, self.adam_t + steps + 1, dtype=torch.float32).unbind(0)
        b1, b2 = _BETAS
        with self._phase("train", xb[0]):  # every step's minibatch is laid out alike: one phase, replayed per step
            for i, (x_i, y_i, t_i) in enumerate(zip(xb.unbind(0), yb.unbind(0), counts, strict=True)):
                if i:
                    self._recording, self._site = False, 0
                hs, ys = self._forward(x_i)
                gy = ys[-1].sub_(y_i).mul_(self.two).mul_(scale)
                deltas = self._backward(hs, gy)
                for (gW, gc), h, delta in zip(self.grads, hs, deltas, strict=True):
                    gW.copy_(self._op("tmm", tmm, tmm_batched, delta, h))
                    gc.copy_(self._op("colsum", colsum, colsum_batched, delta))
                if anchor:
                    self.G.add_(torch.sub(self.P, self.theta0, out=diff).mul_(self.two).mul_(anchor_scale))
                torch._fused_adam_(
                    P_l, G_l, m_l, v_l, [], [t_i] * S, lr=p0.lr, beta1=b1, beta2=b2, weight_decay=wd, eps=_EPS,
                    amsgrad=False, maximize=False,
                )  # fmt: skip
        self.adam_t += steps
        self.train_rounds += 1

    # ------------------------------------------------------------------------------------------ state

    def write_back(self) -> None:
        """Copy each seed's state into its policy (in place: the policies' buffers keep their storage)."""
        with torch.no_grad():
            for s, p in enumerate(self.policies):
                p.net.params.copy_(self.P[s])
                p.adam_m_.copy_(self.m[s])
                p.adam_v_.copy_(self.v[s])
                for name, value in self.stats.items():
                    p.get_buffer(name).copy_(value[s])
                p.hist_x_.copy_(self.hist_x[s])
                p.hist_r_.copy_(self.hist_r[s])
                for name, count in zip(
                    _COUNTERS,
                    (self.rng_counter, self.n_seen, self.since_train, self.train_rounds, self.adam_t),
                    strict=True,
                ):
                    getattr(p, name).fill_(count)
                p._invalidate_caches()
