"""Front ends on the labelled signal data: what labels favour and what tuning picks.

    python -m benchmarks.front_ends [--data ../shared/data] [--seed 0] [--trials 20]
        [--tasks gearbox cnc_mill skab nab_temperature]

For each signal task of the quality part (the same training and scored windows),
the script prints two Markdown tables:

1. Fixed variants: the task's configuration with the raw and the spectrum front
   end, each with the autoencoder and with PCA, and their window AUC-ROC, F1 and
   share of scored windows flagged at their own clustered threshold.
2. A label-free tune of the task, as the quality part runs it (default
   objective, labels removed), summarised per front end. Each row gives the
   trials, the best objective, and the medians of the objective's three
   factors: injected-anomaly AUC, recurring-fault AUC, and the F1 that the
   trial's own threshold reaches at a 1 % fault rate.

Labels are read only to score the fixed variants. Feature tables (the grinding
data) have no front end and are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import Task, load_tasks
from benchmarks.quality import fit_grindwatch
from benchmarks.tuned import TUNING_TRIALS, tune_unlabeled
from grindwatch.evaluate import binary_metrics

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGNAL_TASKS = ["gearbox", "cnc_mill", "skab", "nab_temperature"]
FACTORS = ("injected_auc", "recurring_auc", "recurring_f1")


def _variant(task: Task, frontend: str, family: str) -> dict[str, Any]:
    """Fit one fixed variant and score the task's windows with it."""
    length = task.config.windows.length
    settings: dict[str, Any] = {"frontend.kind": frontend, "detector.family": family}
    if frontend == "spectrum":
        # Short windows (32 samples on the CNC mill) hold fewer FFT bins than the
        # default number of bands.
        settings["frontend.n_bands"] = min(task.config.frontend.n_bands, length // 2)
    config = task.config.with_overrides(settings)
    started = time.perf_counter()
    _, scored = fit_grindwatch(dataclasses.replace(task, config=config), config)
    seconds = time.perf_counter() - started
    labels = scored.windows.labels
    known = labels >= 0
    flags = scored.scores > scored.threshold
    metrics = binary_metrics(labels[known], scored.scores[known], flags[known])
    return {
        "front end": frontend,
        "detector": family,
        "window AUC-ROC": metrics["auc_roc"],
        "window F1": metrics["f1"],
        "flagged": float(flags[known].mean()),
        "anomalous": float((labels[known] > 0).mean()),
        "seconds": seconds,
    }


def _tune_by_front_end(task: Task, seed: int, trials: int) -> list[dict[str, Any]]:
    """Run the quality part's label-free tune and summarise its trials per front end."""
    config = task.config
    if task.tune_overrides:
        config = config.with_overrides(task.tune_overrides)
    result = tune_unlabeled(
        task.train, config, seed, f"front-ends-{task.name}", trials=trials
    )
    table = result.trials
    table = table[table["state"] == "COMPLETE"]
    rows = []
    for frontend, group in table.groupby("param.frontend"):
        row: dict[str, Any] = {
            "front end": frontend,
            "trials": len(group),
            "best objective": float(group["value"].max()),
            "chosen": bool((group["number"] == result.best_trial).any()),
        }
        for factor in FACTORS:
            values = group[factor].dropna() if factor in group else []
            row[f"median {factor}"] = float(np.median(values)) if len(values) else None
        rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = []
        for key in header:
            value = row[key]
            if isinstance(value, float):
                cells.append(
                    f"{value:.1%}"
                    if key in ("flagged", "anomalous")
                    else f"{value:.3f}"
                )
            else:
                cells.append("n/a" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=SHARED, help="folder of the data sets"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of models and tune")
    parser.add_argument(
        "--trials", type=int, default=TUNING_TRIALS, help="finished trials per tune"
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=SIGNAL_TASKS,
        choices=SIGNAL_TASKS,
        help="signal tasks to run",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tasks, skipped = load_tasks(args.data, args.tasks)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    for task in tasks:
        task = dataclasses.replace(
            task, config=task.config.with_overrides({"seed": args.seed})
        )
        print(f"\n#### {task.name}\n")
        variants = [
            _variant(task, frontend, family)
            for frontend in ("spectrum", "raw")
            for family in ("autoencoder", "pca")
        ]
        print(_markdown(variants))
        print()
        print(_markdown(_tune_by_front_end(task, args.seed, args.trials)))


if __name__ == "__main__":
    main()
