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
        label = "log anomaly score"
    else:
        cut = threshold.value
        label = "anomaly score"

    figure, axis = plt.subplots(figsize=(7, 3.8), dpi=110)
    counts, edges, _ = axis.hist(
        values, bins=60, color="#9ab", label="training windows"
    )
    width = edges[1] - edges[0]
    grid = np.linspace(min(edges[0], cut), max(edges[-1], cut), 400)
    for component in threshold.components:
        density = (
            component["weight"]
            * np.exp(-0.5 * ((grid - component["mean"]) / component["sd"]) ** 2)
            / (component["sd"] * np.sqrt(2 * np.pi))
        )
        style = "-" if component["normal"] else "--"
        colour = "#2a6" if component["normal"] else "#c33"
        axis.plot(grid, density * len(values) * width, style, color=colour, lw=1.4)
    axis.axvline(cut, color="black", lw=1.5, label=f"threshold ({threshold.method})")
    axis.set_xlabel(label)
    axis.set_ylabel("windows")
    axis.set_title(
        title or "Training scores, mixture components and threshold", fontsize=10
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
