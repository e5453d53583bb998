"""Plots of scores and thresholds, and the self-contained HTML report.

Plots use matplotlib without a display. The report embeds every figure as a PNG
data URI and its styles inline, so the single HTML file opens without a network.
"""

from grindwatch.report.build import (
    DEFAULT_MAX_DETAILS,
    ReportResult,
    build_report,
    create_report,
    read_scores,
    write_report,
)
from grindwatch.report.scores import plot_score_distribution, plot_score_histogram

__all__ = [
    "DEFAULT_MAX_DETAILS",
    "ReportResult",
    "build_report",
    "create_report",
    "plot_score_distribution",
    "plot_score_histogram",
    "read_scores",
    "write_report",
]
