"""What every neural policy shares: the network, its input encoding, the history, and training.

* **Inputs.** Shared-parameter model: the network scores each arm's feature vector ``x`` ``(d,)``. Disjoint
  arms (``arms=K``): the network scores the block encoding of the context (``x`` in block ``k`` of a
  ``K d`` vector, zeros elsewhere), as in the NeuralUCB experiments; one network serves all arms.
* **History.** A ring buffer of the last ``history`` observed ``(input, reward)`` pairs, so memory never grows
  without bound; training samples minibatches from it.
* **Training.** Every ``train_every`` observations, ``train_steps`` Adam steps on minibatches of
  ``batch_size`` drawn (with replacement) from the history by the policy's counter-based generator, on

      loss = 1/2 mean_batch (f(x) - r)^2 + R(theta),

  with ``R = reg / (2 n) ||theta - theta_0||^2`` for ``loss="anchor"`` (the NeuralUCB paper's regulariser
  toward the initial parameters, divided by the ``n`` observations in the history so that the minibatch
  loss estimates the paper's objective over ``n``) or Adam's weight decay ``reg`` for ``loss="weight_decay"``
  (the reference code's choice). Adam's moments are buffers, so ``save`` / ``load`` restores them.
  A step that makes the parameters non-finite is rolled back, with the rest of the call, and raises
  [`NumericalError`][banditlib.NumericalError].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from banditlib import _random
from banditlib import _validation as V
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.policies._network import ACTIVATIONS, MLP, block_encode
from banditlib.policies.base import Policy

__all__: list[str] = []

STREAM_TRAIN = 4
_BETAS, _EPS = (0.9, 0.999), 1e-8


def check_hidden(value: Any, where: str, name: str = "hidden") -> tuple[int, ...]:
    """A sequence of positive layer widths (possibly empty)."""
    if isinstance(value, (int, str)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{where}: `{name}` must be a sequence of layer widths such as (100,); got {value!r}.")
    return tuple(V.check_int(w, where, f"{name}[i]") for w in value)  # type: ignore[misc]


class _NeuralPolicy(Policy):
    """Network, encoding, history ring buffer and training schedule of the neural policies.

    Buffers: ``hist_x_`` ``(H, D)``, ``hist_r_`` ``(H,)``, ``n_seen_`` (observations ever; the ring position
    is ``n_seen_ % H``), ``theta0_`` ``(p,)`` the initial parameters, ``adam_m_`` / ``adam_v_`` ``(p,)`` and
    ``adam_t_`` Adam's state, and the counters ``since_train`` and ``train_rounds``.
    """

    _row_path = False
    _batch_update_equals_rows = False
    _bookkeeping = Policy._bookkeeping | {"since_train", "train_rounds"}

    def __init__(
        self,
        *,
        dim: int,
        arms: int | None,
        hidden: Sequence[int],
        activation: str,
        reg: float,
        lr: float,
        train_every: int,
        train_steps: int,
        batch_size: int,
        history: int,
        loss: str,
        seed: int | None,
        dtype: torch.dtype | str,
        device: torch.device | str,
        backend: str,
    ) -> None:
        super().__init__(dim=dim, arms=arms, seed=seed, dtype=dtype, device=device, backend=backend)
        where = f"{type(self).__name__}()"
        self.hidden = check_hidden(hidden, where)
        if activation not in ACTIVATIONS:
            raise InvalidInputError(f"{where}: `activation` must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
        if loss not in ("anchor", "weight_decay"):
            raise InvalidInputError(f"{where}: `loss` must be 'anchor' or 'weight_decay'; got {loss!r}.")
        self.activation, self.loss = activation, loss
        self.reg = V.check_float(reg, where, "reg", low=0.0, low_open=True)
        self.lr = V.check_float(lr, where, "lr", low=0.0, low_open=True)
        self.train_every: int = V.check_int(train_every, where, "train_every")  # type: ignore[assignment]
        self.train_steps: int = V.check_int(train_steps, where, "train_steps", low=0)  # type: ignore[assignment]
        self.batch_size: int = V.check_int(batch_size, where, "batch_size")  # type: ignore[assignment]
        self.history: int = V.check_int(history, where, "history")  # type: ignore[assignment]
        self._config.update(
            hidden=list(self.hidden), activation=activation, reg=self.reg, lr=self.lr, train_every=self.train_every,
            train_steps=self.train_steps, batch_size=self.batch_size, history=self.history, loss=loss,
        )  # fmt: skip
        self.input_dim = self.dim * (self.arms or 1)
        gen = torch.Generator().manual_seed(self.seed)
        self.net = MLP(self.input_dim, self.hidden, activation, gen, self.dtype, self.device)
        flat = self.net.params.detach().clone()
        self.register_buffer("theta0_", flat)
        self.register_buffer("adam_m_", torch.zeros_like(flat))
        self.register_buffer("adam_v_", torch.zeros_like(flat))
        self.register_buffer("adam_t_", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("hist_x_", torch.zeros(self.history, self.input_dim, dtype=self.dtype, device=self.device))
        self.register_buffer("hist_r_", torch.zeros(self.history, dtype=self.dtype, device=self.device))
        self.register_buffer("n_seen_", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("since_train", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("train_rounds", torch.zeros((), dtype=torch.long, device=self.device))

    theta0_: torch.Tensor
    adam_m_: torch.Tensor
    adam_v_: torch.Tensor
    adam_t_: torch.Tensor
    hist_x_: torch.Tensor
    hist_r_: torch.Tensor
    n_seen_: torch.Tensor
    since_train: torch.Tensor
    train_rounds: torch.Tensor

    # ------------------------------------------------------------------------------------------ inputs

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Validated contexts -> network inputs ``(B * K, D)`` (block encoding for disjoint arms)."""
        if self.arms is None:
            return x.reshape(-1, self.dim)
        return block_encode(x, self.arms).reshape(-1, self.input_dim)

    def _encode_observed(self, x: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """Observed ``(N, d)`` rows of arms ``model`` -> network inputs ``(N, D)``."""
        if self.arms is None:
            return x
        out = x.new_zeros(x.shape[0], self.arms, self.dim)
        out[torch.arange(x.shape[0], device=x.device), model] = x
        return out.reshape(x.shape[0], self.input_dim)

    # ------------------------------------------------------------------------------------------ learning

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exploration statistics after observing ``enc`` (``(N, D)``), computed aside (no commit)."""
        raise NotImplementedError

    def _learn(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, steps: torch.Tensor, num_steps: int
    ) -> None:
        enc = self._encode_observed(x, model)
        new_stats = self._fold(enc, rewards)  # computed aside: nothing is committed yet
        self._check_usable(new_stats)
        due = self.train_steps > 0 and int(self.since_train) + enc.shape[0] >= self.train_every
        snapshot = [t.detach().clone() for t in self._training_state()] if due else []
        undo = self._append_history(enc, rewards)
        try:
            if due:
                self._train()
                new_stats = self._refit(new_stats)
            if due:
                self._check_usable(new_stats, trained=True)
        except BaseException:
            with torch.no_grad():
                undo()
                for t, old in zip(self._training_state(), snapshot, strict=True):
                    t.copy_(old)
            self._invalidate_caches()
            raise
        with torch.no_grad():
            for name, value in new_stats.items():
                getattr(self, name).copy_(value)
            if due:
                self.since_train.zero_()
            else:
                self.since_train += enc.shape[0]
        self._invalidate_caches()

    def _check_usable(self, stats: dict[str, torch.Tensor], trained: bool = False) -> None:
        """Raise [`InvalidInputError`][banditlib.InvalidInputError] if what an update would commit is not finite: finite
        inputs can still overflow (a context of 1e20 is squared into ``Z`` in float32; rewards near 1e20 square into
        Adam's second moment), and a policy holding such a state could never select again."""
        bad = [name for name, value in stats.items() if not V.all_finite(value)]
        if trained:
            names = ("network parameters", "adam_m_", "adam_v_")
            bad += [n for n, t in zip(names, self._training_state(), strict=False) if not V.all_finite(t)]
        if bad:
            raise InvalidInputError(
                f"{type(self).__name__}.update(): the inputs are too large for the policy's statistics: the update "
                f"would make {', '.join(bad)} non-finite; rescale the contexts and rewards (unit scale is best). The "
                "state is unchanged."
            )

    def _refit(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Statistics to commit after a training round changed the network (default: ``stats`` as folded)."""
        return stats

    def _history(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The observations in the ring buffer: inputs ``(n, D)`` and rewards ``(n,)``."""
        n = min(int(self.n_seen_), self.history)
        return self.hist_x_[:n], self.hist_r_[:n]

    def _training_state(self) -> list[torch.Tensor]:
        """Everything ``_train`` changes."""
        return [self.net.params, self.adam_m_, self.adam_v_, self.adam_t_, self.train_rounds]

    def _history_rows(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """What one observation adds to each history buffer (a row per observation, by buffer name)."""
        return {"hist_x_": enc, "hist_r_": rewards}

    def _append_history(self, enc: torch.Tensor, rewards: torch.Tensor) -> Any:
        """Write the observations into the ring buffers; returns a function that undoes it."""
        rows = self._history_rows(enc, rewards)
        N, H = enc.shape[0], self.history
        start = int(self.n_seen_)
        if N > H:
            rows, start = {k: v[-H:] for k, v in rows.items()}, start + N - H
        pos = (start + torch.arange(min(N, H), device=enc.device)) % H
        old = {k: getattr(self, k)[pos].clone() for k in rows}
        with torch.no_grad():
            for k, v in rows.items():
                getattr(self, k)[pos] = v
            self.n_seen_ += N

        def undo() -> None:
            for k, v in old.items():
                getattr(self, k)[pos] = v
            self.n_seen_ -= N

        return undo

    def _train(self) -> None:
        """One training round of the network (see the module docstring)."""
        x, r = self._history()
        anchor = self.theta0_ if self.loss == "anchor" else None
        wd = self.reg if self.loss == "weight_decay" else 0.0
        self._adam(self.net, "", x, r, STREAM_TRAIN, anchor=anchor, weight_decay=wd)
        self.train_rounds += 1

    def _adam(
        self,
        net: MLP,
        prefix: str,
        X: torch.Tensor,
        y: torch.Tensor,
        stream: int,
        *,
        anchor: torch.Tensor | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        """``train_steps`` Adam steps of ``net`` on ``1/2 mean (net(X_b) - y_b)^2`` over minibatches of the
        ``n`` rows of ``(X, y)`` (plus ``reg / (2 n) ||params - anchor||^2`` when ``anchor`` is given), with the
        moments in the buffers ``adam{prefix}_m_``, ``adam{prefix}_v_``, ``adam{prefix}_t_``."""
        n = X.shape[0]
        params = net.params
        m, v, t_buf = (getattr(self, f"adam{prefix}_{k}_") for k in "mvt")
        first = int(self.train_rounds) * self.train_steps
        rows = torch.arange(first, first + self.train_steps, device=self.device)
        picks = (_random.uniform(self.seed, stream, rows, self.batch_size) * n).long().clamp_max(n - 1)
        b1, b2 = _BETAS
        for step in range(self.train_steps):
            idx = picks[step]
            loss = 0.5 * torch.mean((net(X[idx]) - y[idx]) ** 2)
            if anchor is not None:
                loss = loss + (0.5 * self.reg / n) * torch.sum((params - anchor) ** 2)
            (g,) = torch.autograd.grad(loss, [params])
            with torch.no_grad():
                if weight_decay:
                    g = g.add(params, alpha=weight_decay)
                t_buf += 1
                t = int(t_buf)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                params.addcdiv_(m, v.sqrt().add_(_EPS), value=-step_size)
        if not (bool(torch.isfinite(params).all()) and bool(torch.isfinite(v).all())):
            raise NumericalError(
                f"{type(self).__name__}.update(): training made the network's parameters or Adam's moments non-finite "
                "(rewards or contexts too large, or `lr` too large); the update was rolled back."
            )
