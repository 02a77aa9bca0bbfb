"""Linear bandits: LinUCB and linear Thompson sampling, the UCB and Thompson rules over the ridge estimator."""

from __future__ import annotations

import torch

from banditlib.policies.ridge import RidgeEstimator
from banditlib.policies.rules import ThompsonRule, UCBRule

__all__ = ["LinTS", "LinUCB"]


class LinUCB(UCBRule, RidgeEstimator):
    """LinUCB: ridge regression plus an upper-confidence bonus.

    ``score(x) = x^T theta + alpha * sqrt(x^T A^-1 x)``, with ``A = reg I + sum x x^T`` and
    ``theta = A^-1 sum r x`` per model (see `banditlib.policies.ridge` for forgetting).

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.LinUCB(dim=3, arms=2, alpha=1.0, seed=0)
        >>> x = torch.tensor([[1.0, 0.0, 0.0]])
        >>> policy.update(x, torch.tensor([[0]]), torch.tensor([[0.1]]))
        >>> policy.select(x).actions.tolist()  # arm 1 is unexplored: its bonus wins
        [[1]]

    References:
        Li, Chu, Langford, Schapire. A contextual-bandit approach to personalized news article
        recommendation. WWW 2010. Abbasi-Yadkori, Pal, Szepesvari. Improved algorithms for linear
        stochastic bandits. NeurIPS 2011.
    """

    alpha: float


class LinTS(ThompsonRule, RidgeEstimator):
    """Linear Thompson sampling: rank arms by ``x^T theta~`` with ``theta~ ~ N(theta, scale^2 A^-1)``.

    Shared-parameter model: one ``theta~ = theta + scale * L z`` per row (``A^-1 = L L^T``, the Cholesky
    factor, ``z ~ N(0, I_d)``), so the arms of a row are scored by the same sample. Disjoint model: one
    sample per row and arm; its score ``x^T theta~_a`` is exactly ``N(x^T theta_a, scale^2 x^T A_a^-1 x)``,
    drawn as ``x^T theta_a + scale * sqrt(x^T A_a^-1 x) z`` (the one-dimensional Cholesky factor), which
    costs ``K`` normals per row instead of ``K d``. Draws come from the counter-based generator, so a
    batch of rows gets the same samples as the same rows one at a time.

    Examples:
        >>> import torch, banditlib
        >>> policy = banditlib.LinTS(dim=2, scale=0.5, seed=3)
        >>> sel = policy.select(torch.ones(4, 5, 2))
        >>> sel.actions.shape, torch.allclose(sel.scores, sel.mean + sel.bonus)
        (torch.Size([4, 1]), True)

    References:
        Agrawal, Goyal. Thompson sampling for contextual bandits with linear payoffs. ICML 2013.
    """

    scale: float

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampling distribution: mean ``theta`` ``(M, d)`` and covariance ``scale^2 A^-1`` ``(M, d, d)``."""
        theta, A_inv = super().posterior()
        return theta, A_inv * self.scale**2
