"""Statistics of regression tracking: is NEW worse than BASE on a binary episode outcome (success)?

Fixed n (`harness.compare`): `difference` gives NEW - BASE with a 95% interval and exact tests, paired when both
ran the same units (the same task, init state and seed: outcomes correlate through the unit) and unpaired
otherwise; `holm` adjusts a family of one-sided p-values. Sequential (`harness.track`): `SequentialTest` decides
"worse" / "not worse" from the paired outcomes so far, with error rates alpha and beta that hold whenever it is
looked at. Differences and margins are fractions of episodes (0.05 = 5 points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from scipy.stats import binomtest, fisher_exact, norm

from harness.stats import mcnemar_exact, wilson_interval

Z95 = float(norm.ppf(0.975))


def newcombe_unpaired(k_new: int, n_new: int, k_base: int, n_base: int, z: float = Z95) -> tuple[float, float]:
    """Interval of p_new - p_base for independent samples: Newcombe's hybrid score interval (Newcombe 1998,
    Stat Med 17:873, method 10), the two Wilson intervals squared and added."""
    p1, p2 = k_new / n_new, k_base / n_base
    l1, u1 = wilson_interval(k_new, n_new, z)
    l2, u2 = wilson_interval(k_base, n_base, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def newcombe_paired(both: int, only_new: int, only_base: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Interval of p_new - p_base for paired outcomes: Newcombe's square-and-add interval with the correlation of
    the two proportions (Newcombe 1998, Stat Med 17:2635, method 10; phi as in Fagerland, Lydersen & Laake 2017,
    Statistical Analysis of Contingency Tables, section 8.5: shrunk by n/2 when positive, 0 with an empty margin)."""
    n = both + only_new + only_base + neither
    p1, p2 = (both + only_new) / n, (both + only_base) / n
    l1, u1 = wilson_interval(both + only_new, n, z)
    l2, u2 = wilson_interval(both + only_base, n, z)
    margins = (both + only_new) * (only_base + neither) * (both + only_base) * (only_new + neither)
    cross = both * neither - only_new * only_base
    phi = 0.0 if margins == 0 else (cross - n / 2 if cross > n / 2 else min(cross, 0)) / math.sqrt(margins)
    d = p1 - p2
    lower = math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    upper = math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return d - lower, d + upper


def tango_p_worse(only_new: int, only_base: int, n: int, margin: float) -> float:
    """One-sided p-value of H0: p_new - p_base >= -margin for paired outcomes: Tango's score test (Tango 1998,
    Stat Med 17:891), with the restricted MLE of the BASE-only cell probability in closed form (the root of the
    score equation's quadratic). At margin 0 it is McNemar's asymptotic test."""
    d0 = -margin
    b, c = only_base, only_new
    linear = b + c - d0 * (2 * n + b - c)  # 2n q^2 - linear q - b d0 (1 - d0) = 0; its discriminant is >= 0
    q_base = (linear + math.sqrt(max(0.0, linear ** 2 + 8 * n * b * d0 * (1 - d0)))) / (4 * n)
    var = n * (2 * q_base + d0 * (1 - d0))
    return float(norm.cdf((c - b - n * d0) / math.sqrt(var))) if var > 0 else float(c - b - n * d0 < 0)


def farrington_manning_p_worse(k_new: int, n_new: int, k_base: int, n_base: int, margin: float) -> float:
    """One-sided p-value of H0: p_new - p_base >= -margin for independent samples: the Farrington-Manning score
    test (Farrington & Manning 1990, Stat Med 9:1447), its variance at the MLE restricted to p_new = p_base - margin
    (found numerically: the restricted log-likelihood is concave in p_base)."""
    def nll(p_base: float) -> float:
        p_new = p_base - margin
        return -(k_new * np.log(p_new) + (n_new - k_new) * np.log1p(-p_new)
                 + k_base * np.log(p_base) + (n_base - k_base) * np.log1p(-p_base))

    eps = 1e-12
    p_base = minimize_scalar(nll, bounds=(margin + eps, 1 - eps), method="bounded", options={"xatol": 1e-10}).x
    p_new = p_base - margin
    var = p_new * (1 - p_new) / n_new + p_base * (1 - p_base) / n_base
    diff = k_new / n_new - k_base / n_base + margin
    return float(norm.cdf(diff / math.sqrt(var))) if var > 0 else float(diff < 0)


@dataclass(frozen=True)
class Difference:
    """NEW - BASE on one binary metric over a set of units."""

    paired: bool
    base_k: int
    base_n: int
    new_k: int
    new_n: int
    only_base: int | None
    """Paired only: units BASE solved and NEW did not (discordant pairs against NEW)."""
    only_new: int | None
    diff: float
    """p_new - p_base, a fraction."""
    lo: float
    hi: float
    """95% interval of `diff` (Newcombe paired / unpaired)."""
    p: float
    """Two-sided exact p-value of no difference: McNemar's (paired) or Fisher's (unpaired)."""
    p_worse: float
    """One-sided p-value of H0: diff >= -margin (the gate's): exact at margin 0, a score test above it."""
    test: str


def difference(base, new, paired: bool, margin: float = 0.0) -> Difference:
    """`base`, `new`: outcomes (bool arrays); aligned unit by unit when `paired`. margin in [0, 1): the drop
    NEW may show before it counts as worse. McNemar's exact test is the binomial test on the discordant pairs
    (McNemar 1947; `harness.stats.mcnemar_exact`); Fisher's exact test conditions on both margins (Fisher 1935).
    With margin > 0 no conditioning removes the nuisance parameter, so the score tests of Tango (paired) and
    Farrington-Manning (unpaired) give p_worse."""
    base, new = np.asarray(base, bool), np.asarray(new, bool)
    bk, bn, nk, nn = int(base.sum()), len(base), int(new.sum()), len(new)
    if paired:
        only_base, only_new, p = mcnemar_exact(base.tolist(), new.tolist())
        both = int((base & new).sum())
        lo, hi = newcombe_paired(both, only_new, only_base, bn - both - only_base - only_new)
        if margin == 0:
            discordant = only_base + only_new
            p_worse = binomtest(only_new, discordant, 0.5, alternative="less").pvalue if discordant else 1.0
            test = "McNemar exact"
        else:
            p_worse, test = tango_p_worse(only_new, only_base, bn, margin), "McNemar exact; Tango score (margin)"
    else:
        only_base = only_new = None
        table = [[nk, nn - nk], [bk, bn - bk]]
        p = float(fisher_exact(table).pvalue)
        lo, hi = newcombe_unpaired(nk, nn, bk, bn)
        if margin == 0:
            p_worse, test = float(fisher_exact(table, alternative="less").pvalue), "Fisher exact"
        else:
            p_worse = farrington_manning_p_worse(nk, nn, bk, bn, margin)
            test = "Fisher exact; Farrington-Manning score (margin)"
    return Difference(paired, bk, bn, nk, nn, only_base, only_new, nk / nn - bk / bn, lo, hi, float(p),
                      float(p_worse), test)


def holm(p, weights=None) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979, Scand J Stat 6:65), weighted as in that paper: hypotheses
    ordered by p/w, step j multiplies p_(j) by (total weight of the hypotheses not yet passed) / w_(j), then a running
    maximum, capped at 1. Rejecting where adjusted <= alpha controls the family-wise error at alpha. Equal weights
    give the classic (m - j + 1) p_(j)."""
    p = np.asarray(p, float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, float)
    order = np.argsort(p / w, kind="stable")
    remaining = w[order][::-1].cumsum()[::-1]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * remaining / w[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


@dataclass(frozen=True)
class SequentialTest:
    """Sequential test of NEW worse than BASE on paired outcomes, looked at after any number of pairs.

    The setting of STEP (Snyder et al. 2025, arXiv 2503.10966: sequential policy comparison with stated error
    rates and a finite budget), built from two test supermartingales on the paired differences
    X = new - base in {-1, 0, +1} (testing by betting: Shafer 2021, JRSS A 184:407; Waudby-Smith & Ramdas 2024,
    JRSS B 86:1), each a uniform mixture over `bets` fixed bets, so both depend only on the counts:
    - harm, H0: E[X] >= -margin: E_worse = mean over l in (0, 1/(1+margin)) of prod (1 - l (X + margin)).
      At margin 0 only discordant pairs move it: a mixture of Wald's SPRTs (Wald 1945) of "NEW wins a
      discordant pair with probability 1/2" against (1 - l)/2, i.e. a mixture SPRT on the discordant-pair binomial.
    - futility, H1: E[X] <= -delta: E_ok = mean over l in (0, 1/(1-delta)) of prod (1 + l (X + delta)).
      Concordant pairs count here: they bound how far apart the two success rates can be.
    Verdict "worse" once E_worse >= 1/alpha, "not worse" once E_ok >= 1/beta (harm checked first). By Ville's
    inequality (Ville 1939) P(worse | E[X] >= -margin) <= alpha and P(not worse | E[X] <= -delta) <= beta at any
    stopping rule, for any correlation between the two policies' outcomes, when pairs are independent draws of
    units, or looked at after rounds of one draw per task (as `harness.track` does): tasks may then differ, since
    by the AM-GM inequality a round's expected factor is at most that of the task-averaged E[X].
    Neither verdict by the last unit: the caller falls back to the fixed-n test.
    """

    alpha: float = 0.05
    beta: float = 0.20
    delta: float = 0.10
    """Smallest drop (fraction of episodes) that must not pass as "not worse" with probability above beta."""
    margin: float = 0.0
    bets: int = 20

    def __post_init__(self):
        if not (0 < self.alpha < 1 and 0 < self.beta < 1 and 0 <= self.margin < self.delta < 1 and self.bets >= 1):
            raise ValueError(f"need 0 < alpha, beta < 1 and 0 <= margin < delta < 1, got alpha={self.alpha}, "
                             f"beta={self.beta}, margin={self.margin}, delta={self.delta}")

    def describe(self) -> str:
        return (f"sequential test: P(worse | NEW >= BASE - {100 * self.margin:g} pts) <= {self.alpha:g}, "
                f"P(not worse | NEW <= BASE - {100 * self.delta:g} pts) <= {self.beta:g}")

    def log_evidence(self, only_base, only_new, n) -> tuple[np.ndarray, np.ndarray]:
        """(log E_worse, log E_ok) after `n` pairs of which `only_base` / `only_new` were won by one policy alone;
        numpy broadcasting over the three counts."""
        b, c, n = (np.asarray(x, float)[..., None] for x in (only_base, only_new, n))
        frac = np.arange(1, self.bets + 1) / (self.bets + 1)
        m, d = self.margin, self.delta
        lam = frac / (1 + m)
        worse = b * np.log1p(lam * (1 - m)) + c * np.log1p(-lam * (1 + m)) + (n - b - c) * np.log1p(-lam * m)
        lam = frac / (1 - d)
        ok = c * np.log1p(lam * (1 + d)) + b * np.log1p(-lam * (1 - d)) + (n - b - c) * np.log1p(lam * d)
        log_k = math.log(self.bets)
        return logsumexp(worse, axis=-1) - log_k, logsumexp(ok, axis=-1) - log_k

    def verdict(self, only_base: int, only_new: int, n: int) -> str | None:
        """"worse", "not worse", or None (undecided) after `n` pairs."""
        worse, ok = self.log_evidence(only_base, only_new, n)
        if worse >= -math.log(self.alpha):
            return "worse"
        return "not worse" if ok >= -math.log(self.beta) else None
