"""Unsupervised thresholds fitted on the scores of unlabeled training windows.

The default, ``gmm``, fits Gaussian mixtures with 1 to ``max_components`` components
to the log of the scores, keeps the one with the lowest BIC, and sorts its components
by mean. Among the gaps between neighbouring components with less than half of the
mixture's weight above them, it takes the widest, measured by Ashman's D = sqrt(2) *
|m1 - m2| / sqrt(s1^2 + s2^2). Two components with D > 2 are cleanly separated
(Ashman, Bird and Zhang, 1994). When that gap's D reaches ``min_separation`` (2 by
default), the components above it are the anomalous clusters, and the threshold is
where the mixture's posterior for them reaches one half, with each of them counted
as at least as wide as the normal component next to the gap. Otherwise the scores
count as one cluster, and the threshold falls back to ``median + mad_k * MAD`` of
the log scores (normal-consistent MAD).

Scores of exactly 0 (windows that nearest neighbours match exactly, such as those
of a machine at rest with held values) count as normal and stay out of the
mixture and out of the median and MAD (its fallback, or the "mad" method). After
the log they form a spike far below the other scores. As the majority, they would
be the mixture's only normal cluster, every other score would fall in a
high-score cluster, and the threshold would sit just above 0.

``margin`` multiplies the cut, as control limits in process monitoring are often set
a safety factor above the largest normal score (for example ``percentile`` 99.9 with
``margin`` 4/3). It needs a cut of at least 0, which reconstruction errors, distances
and isolation-forest scores always give.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from grindwatch.exceptions import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "Threshold", "fit_threshold"]

METHODS = ("gmm", "percentile", "mad")
_MAX_GMM_POINTS = 50_000


@dataclass
class Threshold:
    """A fitted threshold: scores strictly above ``value`` are flagged.

    ``components`` (for gmm) are in the transformed scale (log of score + offset when
    ``log_scale``), each with weight, mean, standard deviation and whether it was
    judged normal.
    """

    value: float
    method: str
    requested_method: str
    log_scale: bool
    offset: float = 0.0
    fallback_reason: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    separation: float | None = None
    n_scores: int = 0
    share_flagged: float = 0.0
    margin: float = 1.0
    # k of median + k * MAD, or the percentile; None for gmm and older models.
    rule_parameter: float | None = None
    # What the scores belong to: training "windows", or "recordings" for the
    # cycle check.
    unit: str = "windows"
    # Scores of exactly 0 left out of the mixture and of the median + MAD rule
    # (on log scores only).
    n_zero: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """Explain in one or two sentences how the threshold was chosen, for reports."""
        scaled = f"{self.margin:.3g} times " if self.margin != 1.0 else ""
        score_kind = "log scores" if self.log_scale else "scores"
        if self.method == "gmm":
            n_normal = sum(c["normal"] for c in self.components)
            n_anomalous = len(self.components) - n_normal
            place = f"is {scaled}the score where" if scaled else "lies where"
            widened = _widened_note(self.components)
            fitted = f"{self.n_scores} training {self.unit}"
            if self.n_zero:
                fitted = (
                    f"{self.n_scores - self.n_zero} training {self.unit} that score "
                    f"above 0 (the {self.n_zero} that score exactly 0 count as "
                    "normal)"
                )
            return (
                f"A {len(self.components)}-component Gaussian mixture on the "
                f"{score_kind} of {fitted} found "
                f"{n_anomalous} high-score cluster{'' if n_anomalous == 1 else 's'} "
                f"separated from {n_normal} normal "
                f"{'one' if n_normal == 1 else 'ones'} by Ashman's D = "
                f"{self.separation:.1f}; the threshold "
                f"{self.value:.4g} {place} the two sides are equally likely"
                f"{widened}, and flags "
                f"{self.share_flagged:.1%} of the training {self.unit}."
            )
        reason = f" because {self.fallback_reason}" if self.fallback_reason else ""
        return (
            f"The threshold {self.value:.4g} is {scaled}{self._rule()}{reason}; it "
            f"flags {self.share_flagged:.1%} of the {self.n_scores} training "
            f"{self.unit}."
        )

    def _rule(self) -> str:
        """Name the percentile or MAD rule, with the log transform it was applied on."""
        k = self.rule_parameter
        if self.method == "percentile":
            # The log is monotonic, so a percentile of the log scores is, transformed
            # back, the same percentile of the scores up to interpolation.
            if k is None:
                return "a percentile of the training scores"
            return f"the {_ordinal(k)} percentile of the training scores"
        cut = f"median + {'k' if k is None else f'{k:g}'} * MAD"
        note = "(MAD times 1.4826, a normal standard deviation)"
        if not self.log_scale:
            prefix = "the cut at " if self.margin != 1.0 else ""
            return f"{prefix}{cut} of the training scores {note}"
        scored = "log training scores"
        if self.n_zero:
            scored += " above 0"
            # A fallback from the mixture gives the count in its reason.
            if self.requested_method == "mad":
                scored += f" (the {self.n_zero} scores of exactly 0 count as normal)"
        # The cut is a log score, so the threshold is the score whose log it is.
        return f"the score whose log is {cut} of the {scored} {note}"


def _ordinal(number: float) -> str:
    """Write a percentile as an English ordinal: 1st, 22nd, 99th, 99.9th."""
    text = f"{number:g}"
    if "." in text or "e" in text or number % 100 in (11, 12, 13):
        return f"{text}th"
    return text + {1: "st", 2: "nd", 3: "rd"}.get(int(number) % 10, "th")


def _transform(
    scores: np.ndarray, log_scores: str | bool
) -> tuple[np.ndarray, bool, float]:
    use_log = (scores.min() >= 0) if log_scores == "auto" else bool(log_scores)
    if not use_log:
        return scores, False, 0.0
    if scores.min() < 0:
        raise ConfigError(
            "log_scores=true needs non-negative scores, but the detector returned "
            f"{scores.min():.4g}; set log_scores to auto or false"
        )
    positive = scores[scores > 0]
    # A tiny offset keeps exact zeros (perfect reconstructions) finite after the log.
    offset = 1e-6 * float(np.median(positive)) if positive.size else 1e-12
    return np.log(scores + offset), True, offset


def _inverse(value: float, log_scale: bool, offset: float) -> float:
    if not log_scale:
        return float(value)
    # Log scores come from scores of at least 0. A cut at exact zeros comes back
    # as about -1e-22 from exp(log(offset)) - offset, which would flag them.
    return max(float(np.exp(value) - offset), 0.0)


def _mad_cut(
    t: np.ndarray, mad_k: float, log_scale: bool = False, offset: float = 0.0
) -> tuple[float | None, str | None]:
    """Return median + k * MAD of ``t``, or None when every score is the same.

    ``t`` are the scores after ``_transform``, and ``log_scale`` and ``offset``
    describe how to undo it.
    """
    median = float(np.median(t))
    mad = float(np.median(np.abs(t - median))) * 1.4826
    # NOTE: the log of scores with few degrees of freedom has a long lower tail
    # that widens the MAD. For chi-square scores with 1 degree of freedom, such
    # as PCA's when it leaves a single dimension out, the cut came out at about
    # 7 times the largest of 5,000 training scores (2.3 times for 2 degrees).
    if mad > 0:
        return median + mad_k * mad, None
    std = float(t.std())
    # Rounding in the log transform leaves a tiny spread in exactly tied scores.
    if not std > 1e-9 * max(1.0, abs(median)):
        return None, "all training scores are equal, so only higher scores flag"
    reason = "MAD is zero (over half the scores are tied), so the standard deviation"
    if not log_scale:
        return median + mad_k * std, f"{reason} was used"
    # Over half the scores tied, often at exactly 0 (identical windows under
    # nearest neighbours), puts the log median about 14 below the other log
    # scores, and the standard deviation of the logs then grows with that
    # distance: scores of 0 and 1 to 2 gave a threshold of about 970. The
    # standard deviation of the scores themselves keeps the cut near them.
    scores = np.exp(t) - offset
    cut = float(np.median(scores)) + mad_k * float(scores.std())
    return float(
        np.log(cut + offset)
    ), f"{reason} of the scores (not their logs) was used"


def _widened_note(components: list[dict[str, Any]]) -> str:
    """Return the description's note on widened clusters, or "" when the cut
    counted every high-score cluster as wide as it was fitted."""
    normal = [c for c in components if c["normal"]]
    if not normal:
        return ""
    min_sd = normal[-1]["sd"]
    if not any(not c["normal"] and c["sd"] < min_sd for c in components):
        return ""
    return (
        " (with the high-score clusters counted as at least as wide as the "
        "normal one next to them)"
    )


def _ashman(a: dict[str, float], b: dict[str, float]) -> float:
    spread = np.sqrt(a["sd"] ** 2 + b["sd"] ** 2)
    return float(np.sqrt(2) * abs(b["mean"] - a["mean"]) / max(spread, 1e-12))


def _fit_mixture(t: np.ndarray, max_components: int, random_state: int):  # noqa: ANN202
    from sklearn.mixture import GaussianMixture

    sample = t
    if t.size > _MAX_GMM_POINTS:
        rng = np.random.default_rng(random_state)
        sample = rng.choice(t, _MAX_GMM_POINTS, replace=False)
    column = sample.reshape(-1, 1)
    best, best_bic = None, np.inf
    for k in range(1, max_components + 1):
        if k > np.unique(sample).size:
            break
        mixture = GaussianMixture(
            n_components=k, n_init=3, random_state=random_state, reg_covar=1e-6
        ).fit(column)
        bic = mixture.bic(column)
        if bic < best_bic:
            best, best_bic = mixture, bic
    return best


def _dips(components: list[dict[str, Any]], gap: int) -> bool:
    """Return whether the mixture's density has a low point between the means of
    the components on either side of ``gap``, below its value at both means."""
    from scipy.stats import norm

    grid = np.linspace(components[gap]["mean"], components[gap + 1]["mean"], 2001)
    density = sum(c["weight"] * norm.pdf(grid, c["mean"], c["sd"]) for c in components)
    lowest = int(np.argmin(density))
    return 0 < lowest < grid.size - 1


def _gmm_cut(
    t: np.ndarray, max_components: int, min_separation: float, random_state: int
):  # noqa: ANN202
    """Return (cut, components, separation, reason); cut is None on fallback."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    if t.size == 0:
        # Every training score is exactly 0, and those stay out of the mixture.
        return None, [], None, "no training score is above 0"
    if t.size < 10:
        noun = "score" if t.size == 1 else "scores"
        reason = f"only {t.size} training {noun}, too few for a mixture (10 or more)"
        return None, [], None, reason
    if np.unique(t).size < 3:
        return (
            None,
            [],
            None,
            (
                f"the {t.size} scores hold only {np.unique(t).size} distinct values "
                "(tied scores), too few for a mixture"
            ),
        )
    mixture = _fit_mixture(t, max_components, random_state)
    order = np.argsort(mixture.means_.ravel())
    components = [
        {
            "weight": float(mixture.weights_[i]),
            "mean": float(mixture.means_.ravel()[i]),
            "sd": float(np.sqrt(mixture.covariances_.ravel()[i])),
            "normal": True,
        }
        for i in order
    ]
    if len(components) == 1:
        return None, components, None, "the mixture found a single cluster"

    gaps = [
        _ashman(components[i], components[i + 1]) for i in range(len(components) - 1)
    ]
    candidates = [
        i
        for i in range(len(gaps))
        if sum(c["weight"] for c in components[i + 1 :]) < 0.5
    ]
    if not candidates:
        return None, components, None, "no high-score cluster holds a minority"
    # NOTE: the widest gap wins. When severe faults form a cluster far above milder
    # ones, the gap between the two can be the widest, and the milder faults then
    # pass. Taking the lowest clean gap instead cut into the upper tail of the
    # normal scores of an isolation forest, which a mixture fits with a component
    # of its own, so it was not adopted.
    widest = max(candidates, key=lambda i: gaps[i])
    if gaps[widest] < min_separation:
        return (
            None,
            components,
            gaps[widest],
            (
                f"its clusters overlap (widest gap D = {gaps[widest]:.4g} < "
                f"{min_separation:g})"
            ),
        )
    # A skewed normal peak is fitted with several components, which can lie D = 2
    # or more apart although the scores have no second peak. Only a gap where the
    # mixture's density dips separates two clusters.
    # NOTE: narrow components along a smooth slope make the density ripple where
    # the scores do not dip, and a cut there flagged 17 % to 48 % of exponential
    # log scores in 13 of 30 generated sets. Also counting the scores near the
    # low point fixed those but sent the CNC mill demo to the MAD fallback.
    dipped = [
        i for i in candidates if gaps[i] >= min_separation and _dips(components, i)
    ]
    if not dipped:
        return (
            None,
            components,
            gaps[widest],
            (
                f"its high-score components (gap D = {gaps[widest]:.4g}) fit the "
                "upper tail of one peak: the score density has no dip between them"
            ),
        )
    gap = max(dipped, key=lambda i: gaps[i])
    for component in components[gap + 1 :]:
        component["normal"] = False

    # Where the posterior of the anomalous components reaches one half. A component
    # fitted to one or a few scores can be far narrower than the normal one, down
    # to the covariance floor. That point then lies just below those scores, and a
    # fault less extreme than the worst training score would pass. Each anomalous
    # component therefore counts as at least as wide as the normal one below it.
    low, high = components[gap]["mean"], components[gap + 1]["mean"]
    grid = np.linspace(low, high, 2001)
    min_sd = components[gap]["sd"]
    log_densities = []
    for component in components:
        sd = component["sd"] if component["normal"] else max(component["sd"], min_sd)
        log_densities.append(
            np.log(component["weight"]) + norm.logpdf(grid, component["mean"], sd)
        )
    log_densities = np.stack(log_densities)
    posterior = np.exp(
        logsumexp(log_densities[gap + 1 :], axis=0) - logsumexp(log_densities, axis=0)
    )
    crossing = np.flatnonzero(posterior >= 0.5)
    cut = float(grid[crossing[0]]) if crossing.size else float((low + high) / 2)
    return cut, components, gaps[gap], None


def fit_threshold(
    scores: np.ndarray,
    method: str = "gmm",
    *,
    max_components: int = 4,
    min_separation: float = 2.0,
    percentile: float = 99.0,
    mad_k: float = 3.0,
    log_scores: str | bool = "auto",
    random_state: int = 0,
    margin: float = 1.0,
    unit: str = "windows",
) -> Threshold:
    """Fit a threshold to unlabeled training scores.

    Parameters
    ----------
    scores : array-like of shape (n_windows,)
        Anomaly scores of the training windows, higher is more anomalous.
    method : {"gmm", "percentile", "mad"}
    max_components : int
        Largest mixture tried (gmm).
    min_separation : float
        Ashman's D a gap needs to count as a cluster boundary (gmm).
    percentile : float
        In [0, 100] (percentile).
    mad_k : float
        Multiples of the MAD above the median (mad, and the gmm fallback).
    log_scores : {"auto", True, False}
        Work on log scores; auto does so when no score is negative.
    margin : float
        Factor applied to the cut, greater than 0.
    unit : str
        What the scores belong to, for descriptions and log lines: "windows",
        "rows" for feature tables, or "recordings" for the cycle check.

    Raises
    ------
    ConfigError
        For an unknown method, non-finite scores, a percentile outside [0, 100], a
        margin of 0 or less, or a margin other than 1 on a negative cut.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if method not in METHODS:
        raise ConfigError(
            f"threshold method={method!r} is invalid; use one of {METHODS}"
        )
    if scores.size == 0:
        raise ConfigError("cannot fit a threshold to no scores; pass at least one")
    if not np.isfinite(scores).all():
        raise ConfigError(
            f"cannot fit a threshold to {scores.size} scores containing NaN or inf"
        )
    if not 0 <= percentile <= 100:
        raise ConfigError(f"percentile={percentile} must be in [0, 100]")
    if not margin > 0:
        raise ConfigError(f"threshold margin={margin} must be greater than 0")

    t, log_scale, offset = _transform(scores, log_scores)
    components: list[dict[str, Any]] = []
    separation = None
    reason = None
    used = method
    n_zero = 0
    if method == "percentile":
        cut = float(np.percentile(t, percentile))
    elif method == "mad":
        # Exact zeros count as normal, as in the mixture and its fallback below.
        n_zero = int((scores == 0).sum()) if log_scale else 0
        if n_zero == scores.size:
            n_zero = 0
        cut, reason = _mad_cut(t[scores > 0] if n_zero else t, mad_k, log_scale, offset)
        if reason and n_zero:
            reason = reason.replace("scores are", "scores above 0 are")
    else:
        # Exact zeros sit about 14 below the median log score, a spike of no
        # width, so the mixture is fitted to the scores above 0 only.
        n_zero = int((scores == 0).sum()) if log_scale else 0
        cut, components, separation, reason = _gmm_cut(
            t[scores > 0] if n_zero else t, max_components, min_separation, random_state
        )
        if cut is None:
            used = "mad"
            if n_zero:
                reason = f"{reason}, with the {n_zero} scores of exactly 0 left out"
            # The zeros count as normal here too. In the median and MAD, 30 % of
            # zeros doubled the threshold and 45 % raised it tenfold, and over
            # half put the cut below most scores above 0.
            if n_zero == scores.size:
                n_zero = 0
            cut, tie_note = _mad_cut(
                t[scores > 0] if n_zero else t, mad_k, log_scale, offset
            )
            if tie_note and n_zero:
                tie_note = tie_note.replace("scores are", "scores above 0 are")
            if tie_note:
                reason = f"{reason}; {tie_note}"
            # Info, not a warning: scores of clean training data form one
            # cluster, the expected case, and the threshold's description (which
            # train and tune print) names the rule it used and why.
            logger.info(
                "threshold on %s: fell back from gmm to median + %g * MAD because %s",
                unit,
                mad_k,
                reason,
            )

    # With all scores tied the threshold is their exact value, so rounding in the
    # log transform cannot flag them.
    value = float(scores.max()) if cut is None else _inverse(cut, log_scale, offset)
    if used == "percentile":
        # The percentile lies between the same two training scores on both scales,
        # but the round trip through log and exp can put it a rounding step outside
        # them. Percentile 100 then flagged the top training score.
        lower = float(np.percentile(scores, percentile, method="lower"))
        higher = float(np.percentile(scores, percentile, method="higher"))
        value = min(max(value, lower), higher)
    if margin != 1.0:
        if value < 0:
            raise ConfigError(
                f"threshold margin={margin} needs a cut of at least 0, but the "
                f"{used} cut is {value:.4g}; these scores can be negative, so leave "
                "threshold.margin at 1"
            )
        value *= margin
    threshold = Threshold(
        value=value,
        method=used,
        requested_method=method,
        log_scale=log_scale,
        offset=offset,
        fallback_reason=reason,
        components=components,
        separation=separation,
        n_scores=int(scores.size),
        share_flagged=float((scores > value).mean()),
        margin=float(margin),
        rule_parameter={"percentile": float(percentile), "mad": float(mad_k)}.get(used),
        unit=unit,
        n_zero=n_zero,
    )
    logger.info("threshold %.6g by %s", value, used)
    return threshold
