"""Plots of scores and thresholds, and the self-contained HTML report.

Plots use matplotlib without a display. The report embeds every figure as a PNG
data URI and its styles inline, so the single HTML file opens without a network.
"""

from grindwatch.report.scores import plot_score_histogram

__all__ = ["plot_score_histogram"]
