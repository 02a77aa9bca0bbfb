"""EE-Net: an exploitation network, an exploration network on its gradient, and a decision-maker.

* ``f1(x)``, the exploitation network, regresses the reward (trained like every neural policy's network).
* ``f2(pool(g1(x)))``, the exploration network, takes the gradient ``g1`` of ``f1`` with respect to its
  parameters, mean-pooled over blocks of ``pool`` consecutive entries, and regresses the residual
  ``r - f1(x)`` observed when the arm was played: the "potential gain" of an arm over the current estimate.
  The gradient is assembled from the per-layer pieces of one backward pass over all arms
  (`banditlib.policies._network.gradient_pieces`); no per-arm backward pass.
* The decision-maker: ``decision="linear"`` scores ``f1 + explore_weight * f2``; ``decision="neural"`` trains a
  small network ``f3([f1, f2])`` (one hidden layer of 20) to predict the reward from the two scores and uses it
  once ``decision_warmup`` observations have been seen (the linear rule before).

Differences from the published reference code, on purpose: it shifts the residual target by ``+1`` and
subtracts 1 again when scoring (the same rule, written without the shift here); it decays the exploration
weight from 0.1 to 0.01 after 1,000 rounds (here a constant ``explore_weight``); and for 0/1 rewards it adds
extra exploration targets of 1.2 for the arms not played when the reward was 0, which only makes sense for
classification bandits and is left out. Training uses minibatch Adam like every neural policy here, where the
reference runs up to 1,000 single-sample SGD steps per round.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from banditlib.policies._network import MLP, gradient_pieces
from banditlib.policies._neural_base import _NeuralPolicy
from banditlib.policies._params import Param, choice, float_in, int_at_least, layer_widths

__all__ = ["EENet"]

STREAM_EXPLORE_NET, STREAM_DECIDE_NET = 5, 6


class EENet(_NeuralPolicy):
    """EE-Net (see `banditlib.policies.eenet`): ``f1(x)`` plus a learned potential gain ``f2(pool(grad f1))``.

    ``mean`` is ``f1``; ``bonus`` is ``explore_weight * f2`` (linear decision-maker) or ``f3 - f1`` (neural).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.EENet(dim=3, hidden=(8,), seed=0)
        >>> policy.select(torch.randn(2, 5, 3), k=2).actions.shape
        torch.Size([2, 2])

    References:
        Ban, Yan, Banerjee, He. EE-Net: Exploitation-Exploration Neural Networks in Contextual Bandits.
        ICLR 2022.
    """

    propensity_rule = "argmax"

    _params: ClassVar[tuple[Param, ...]] = (
        Param("explore_hidden", (100,), "Sequence[int]", "hidden widths of ``f2``.", layer_widths, list),
        Param("pool", None, "int | None", "block size of the gradient's mean-pooling (``None``: about 100 inputs to "
              "``f2``).", int_at_least(1, allow_none=True), None),
        Param("explore_weight", 0.1, "float", "weight of ``f2`` in the linear decision-maker, ``>= 0``.",
              float_in(0.0)),
        Param("decision", "linear", "str", "``'linear'`` or ``'neural'``.", choice(("linear", "neural"))),
        Param("decision_warmup", 500, "int", "observations before the neural decision-maker takes over.",
              int_at_least(0)),
    )  # fmt: skip
    _param_docs: ClassVar[dict[str, str]] = {
        "hidden": "hidden widths of ``f1``.",
        "activation": "hidden activation of ``f1`` and ``f2`` (see [`NeuralUCB`][banditlib.NeuralUCB]).",
        "reg": "``f1``'s regulariser weight (``loss``); ``f2`` and ``f3`` are not regularised.",
        "lr": "Adam's learning rate (all three networks).",
        "train_every": "observations between training rounds (all networks train together).",
        "train_steps": "Adam steps per network per training round.",
        "loss": "``'anchor'`` or ``'weight_decay'`` for ``f1``.",
        "seed": "seeds the initial weights, the minibatches and tie-breaking.",
        "device": "device of the networks and state.",
        "backend": "``'auto'``, ``'torch'`` or ``'triton'`` for top-k.",
    }
    explore_hidden: tuple[int, ...]
    explore_weight: float
    decision: str
    decision_warmup: int

    def _init(self, values: dict[str, Any]) -> None:
        p = self.net.params.numel()
        self.pool: int = self.__dict__["pool"] or max(1, math.ceil(p / 100))
        self._config["pool"] = self.pool
        self.pooled_dim = math.ceil(p / self.pool)
        gen = torch.Generator().manual_seed(self.seed + 1)
        self.explore = MLP(self.pooled_dim, self.explore_hidden, self.activation, gen, self.dtype, self.device)
        self.decide = MLP(2, (20,), "relu", gen, self.dtype, self.device)
        for name, net in (("2", self.explore), ("3", self.decide)):
            self.register_buffer(f"adam{name}_m_", torch.zeros_like(net.params.detach()))
            self.register_buffer(f"adam{name}_v_", torch.zeros_like(net.params.detach()))
            self.register_buffer(f"adam{name}_t_", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer(
            "hist_g_", torch.zeros(self.history, self.pooled_dim, dtype=self.dtype, device=self.device)
        )
        self.register_buffer("hist_res_", torch.zeros(self.history, dtype=self.dtype, device=self.device))
        self.register_buffer("hist_s_", torch.zeros(self.history, 2, dtype=self.dtype, device=self.device))

    hist_g_: torch.Tensor
    hist_res_: torch.Tensor
    hist_s_: torch.Tensor

    def _pooled_gradient(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f1`` ``(N,)`` and the mean-pooled gradient of ``f1`` ``(N, P)`` (zero-padded last block)."""
        f, pieces = gradient_pieces(self.net, enc)
        parts = []
        for h, delta in pieces:
            parts += [(delta.unsqueeze(2) * h.unsqueeze(1)).flatten(1), delta]
        g = torch.cat(parts, dim=1)
        pad = self.pooled_dim * self.pool - g.shape[1]
        if pad:
            g = torch.nn.functional.pad(g, (0, pad))
        return f, g.view(-1, self.pooled_dim, self.pool).mean(-1)

    def _scores(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``f1``, ``f2`` ``(N,)`` and the pooled gradient ``(N, P)``."""
        f1, g = self._pooled_gradient(enc)
        with torch.no_grad():
            f2 = self.explore(g)
        return f1, f2, g

    def _score(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = x.shape[0]
        f1, f2, _ = self._scores(self._inputs(x))
        if self.decision == "neural" and int(self.n_seen_) >= self.decision_warmup:
            with torch.no_grad():
                f3 = self.decide(torch.stack([f1, f2], dim=1))
            return f1.view(B, -1), (f3 - f1).view(B, -1)
        return f1.view(B, -1), (self.explore_weight * f2).view(B, -1)

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def _history_rows(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        f1, f2, g = self._scores(enc)
        return {
            **super()._history_rows(enc, rewards),
            "hist_g_": g,
            "hist_res_": rewards - f1,
            "hist_s_": torch.stack([f1, f2], dim=1),
        }

    def _train(self) -> None:
        n = min(int(self.n_seen_), self.history)
        self._adam(self.explore, "2", self.hist_g_[:n], self.hist_res_[:n], STREAM_EXPLORE_NET)
        if self.decision == "neural":
            self._adam(self.decide, "3", self.hist_s_[:n], self.hist_r_[:n], STREAM_DECIDE_NET)
        super()._train()

    def _networks(self) -> list[MLP]:
        return [self.net, self.explore, self.decide]

    def _training_state(self) -> list[torch.Tensor]:
        extra = [self.explore.params, self.decide.params]
        extra += [getattr(self, f"adam{i}_{k}_") for i in "23" for k in "mvt"]
        return [*super()._training_state(), *extra]
