"""Plots of a tuning study: optimisation history and parameter importances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_importances", "plot_optimization_history"]


def _figure(width: float, height: float):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=110)


def plot_optimization_history(
    trials: pd.DataFrame, path: str | Path, objective: str = "objective"
) -> Path:
    """Draw each trial's value and the best value so far against the trial number.

    ``trials`` needs the columns ``number``, ``state`` and ``value``. Only complete
    trials have an objective value; the title counts the pruned ones, and failed
    trials are left out.
    """
    import matplotlib.pyplot as plt

    figure, axis = _figure(7, 3.8)
    complete = trials[trials["state"] == "COMPLETE"].sort_values("number")
    n_pruned = int((trials["state"] == "PRUNED").sum())
    axis.plot(
        complete["number"], complete["value"], "o", ms=5, label="complete", color="#2a6"
    )
    if not complete.empty:
        best = complete["value"].cummax()
        axis.step(
            complete["number"],
            best,
            where="post",
            color="black",
            lw=1.4,
            label="best so far",
        )
    axis.set_xlabel("trial")
    axis.set_ylabel(objective)
    title = "Optimisation history"
    if n_pruned:
        title += f" ({n_pruned} pruned trials, no objective value)"
    axis.set_title(title, fontsize=10)
    # A fixed place: loc="best" searches the plotted data for room, and matplotlib
    # warns when that search takes over a second, as it can on a busy machine.
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_importances(
    importances: dict[str, float], path: str | Path, note: str
) -> Path:
    """Draw parameter importances as horizontal bars, largest on top.

    ``note`` names the method, or explains why there are no importances when the
    dict is empty.
    """
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    values = np.array([importances[name] for name in names])
    figure, axis = _figure(7, max(2.5, 0.35 * len(names) + 1.2))
    if names:
        axis.barh(names, values, color="#59c")
        axis.set_xlabel("importance (sums to 1)")
    else:
        axis.set_axis_off()
    axis.set_title(f"Parameter importances\n{note}", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
