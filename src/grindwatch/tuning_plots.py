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

    ``trials`` needs the columns ``number``, ``state`` and ``value``. Pruned trials
    are drawn at the last value they reported; failed trials are left out.
    """
    import matplotlib.pyplot as plt

    figure, axis = _figure(7, 3.8)
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])].sort_values("number")
    for state, style in (("COMPLETE", "o"), ("PRUNED", "x")):
        chosen = done[done["state"] == state]
        axis.plot(
            chosen["number"],
            chosen["value"],
            style,
            ms=5,
            label=state.lower(),
            color="#2a6" if state == "COMPLETE" else "#c93",
        )
    complete = done[done["state"] == "COMPLETE"]
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
    axis.set_title("Optimisation history", fontsize=10)
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
