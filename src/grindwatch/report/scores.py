"""Score distribution plots: training histogram, mixture components, threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grindwatch.thresholds import Threshold

__all__ = ["plot_score_histogram"]


def plot_score_histogram(
    scores: np.ndarray, threshold: Threshold, path: str | Path, title: str = ""
) -> Path:
    """Draw the training score histogram with mixture components and threshold.

    The x axis is the scale the threshold was fitted on (log score when
    ``threshold.log_scale``), so the clusters appear as the mixture saw them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(scores, dtype=np.float64)
    if threshold.log_scale:
        values = np.log(values + threshold.offset)
        cut = np.log(threshold.value + threshold.offset)
        label = "anomaly score (log scale)"
    else:
        cut = threshold.value
        label = "anomaly score"

    figure, axis = plt.subplots(figsize=(7, 3.8), dpi=110)
    counts, edges, _ = axis.hist(
        values, bins=60, color="#9ab", label="training windows"
    )
    width = edges[1] - edges[0]
    grid = np.linspace(min(edges[0], cut), max(edges[-1], cut), 400)
    share = _mixture_share(threshold)
    for component in threshold.components:
        density = (
            share
            * component["weight"]
            * np.exp(-0.5 * ((grid - component["mean"]) / component["sd"]) ** 2)
            / (component["sd"] * np.sqrt(2 * np.pi))
        )
        style = "-" if component["normal"] else "--"
        colour = "#2a6" if component["normal"] else "#c33"
        axis.plot(grid, density * len(values) * width, style, color=colour, lw=1.4)
    axis.axvline(
        cut,
        color="black",
        lw=1.5,
        label=f"threshold {threshold.value:.4g} ({threshold.method})",
    )
    _score_ticks(axis, threshold)
    axis.set_xlabel(label)
    axis.set_ylabel("windows")
    axis.set_title(
        title or "Training scores, mixture components and threshold", fontsize=10
    )
    # A fixed place: loc="best" searches the plotted data for room, and matplotlib
    # warns when that search takes over a second, as it can on a busy machine.
    axis.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_score_distribution(
    training_scores: np.ndarray,
    threshold: Threshold,
    window_scores: np.ndarray,
    recording_scores: np.ndarray,
    kind: str = "signals",
    recording_flags: np.ndarray | None = None,
):  # noqa: ANN201 - returns a matplotlib Figure
    """Draw training and scored window scores with the clusters and the threshold.

    Both histograms are densities, so data sets of different sizes compare. The
    fitted mixture components are drawn as the threshold saw them (on the log scale
    when ``threshold.log_scale``), and a rug under the axis marks each scored
    recording's aggregate score, darker when flagged.

    Parameters
    ----------
    training_scores : array of shape (n_training_windows,)
    threshold : Threshold
    window_scores : array of shape (n_windows,)
        Window scores of the data being reported.
    recording_scores : array of shape (n_recordings,)
    kind : {"signals", "table"}
        The model's data kind. A feature table's rows are its windows, so the
        labels say rows.
    recording_flags : bool array of shape (n_recordings,), optional
        Each recording's flag. The cycle check can flag a recording whose score
        is below the threshold, so the rug takes the flags when given, and
        compares the scores with the threshold otherwise.
    """
    from grindwatch.report.figures import pyplot

    plt = pyplot()
    unit = "rows" if kind == "table" else "windows"
    transform = _threshold_scale(threshold)
    training = transform(np.asarray(training_scores, dtype=np.float64))
    scored = transform(np.asarray(window_scores, dtype=np.float64))
    recordings = transform(np.asarray(recording_scores, dtype=np.float64))
    cut = float(transform(np.array([threshold.value]))[0])

    figure, axis = plt.subplots(figsize=(6.4, 3.4))
    low = min(training.min(), scored.min(), cut)
    high = max(training.max(), scored.max(), cut)
    edges = np.linspace(low, high + 1e-9 * max(1.0, abs(high)), 61)
    axis.hist(
        training,
        bins=edges,
        density=True,
        color="#c8d3de",
        label=f"training {unit} ({training.size})",
    )
    axis.hist(
        scored,
        bins=edges,
        density=True,
        histtype="step",
        color="#222",
        lw=1.2,
        label=f"scored {unit} ({scored.size})",
    )
    grid = np.linspace(low, high, 400)
    share = _mixture_share(threshold)
    for component in threshold.components:
        density = (
            share
            * component["weight"]
            * np.exp(-0.5 * ((grid - component["mean"]) / component["sd"]) ** 2)
            / (component["sd"] * np.sqrt(2 * np.pi))
        )
        normal = component["normal"]
        axis.plot(
            grid,
            density,
            "-" if normal else "--",
            color="#1b7837" if normal else "#b2182b",
            lw=1.3,
            label="normal cluster" if normal else "high-score cluster",
        )
    axis.axvline(
        cut,
        color="black",
        lw=1.6,
        label=f"threshold {threshold.value:.4g} ({threshold.method})",
    )

    # Recording scores as a rug just below the x axis.
    if recording_flags is None:
        flagged = recordings > cut
    else:
        flagged = np.asarray(recording_flags, dtype=bool)
    for values, colour in (
        (recordings[~flagged], "#888"),
        (recordings[flagged], "#b2182b"),
    ):
        axis.plot(
            values,
            np.zeros_like(values),
            "|",
            color=colour,
            ms=9,
            mew=1,
            transform=axis.get_xaxis_transform(),
            clip_on=False,
        )

    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axis.legend(unique.values(), unique.keys(), loc="upper right")
    _score_ticks(axis, threshold)
    axis.set_xlabel(
        "anomaly score (log scale)" if threshold.log_scale else "anomaly score"
    )
    axis.set_ylabel("density")
    if kind == "table":
        title = "Row scores, clusters and threshold; ticks: scored rows"
    else:
        title = "Window scores, clusters and threshold; ticks: recordings"
    axis.set_title(title)
    figure.tight_layout()
    return figure


def _mixture_share(threshold: Threshold) -> float:
    """Share of the training scores the mixture was fitted to: those above 0
    when scores of exactly 0 were left out (see ``grindwatch.thresholds``)."""
    n_zero = getattr(threshold, "n_zero", 0)
    if not n_zero or not threshold.n_scores:
        return 1.0
    return (threshold.n_scores - n_zero) / threshold.n_scores


def _threshold_scale(threshold: Threshold):  # noqa: ANN202
    """Map scores to the scale the threshold was fitted on."""
    if not threshold.log_scale:
        return lambda values: values
    # Scores of new data can fall below the training minimum. Clip them onto the
    # scale instead of taking the log of zero or a negative number.
    floor = max(threshold.offset, 1e-300)
    return lambda values: np.log(np.maximum(values + threshold.offset, floor))


def _score_ticks(axis, threshold: Threshold) -> None:  # noqa: ANN001
    """Label a log-scale axis with scores, so its ticks read like the threshold
    in the text (1.93, not its log 0.66)."""
    if not threshold.log_scale:
        return
    from matplotlib.ticker import FuncFormatter

    offset = threshold.offset
    axis.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{np.exp(value) - offset:.3g}")
    )
