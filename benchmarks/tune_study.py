"""Label-free tuning on the shared gearbox and grinding data, with labeled checks.

    python -m benchmarks.tune_study gearbox  [--trials 30] [--jobs 2] [--seed 0]
    python -m benchmarks.tune_study grinding [--trials 30] [--jobs 2] [--seed 0]

Runs the same study as ``grindwatch tune`` (default search space and objective,
``recurring_f1``) and prints, as JSON, the wall time, the chosen trial and how its
labeled metrics compare with the best labeled trial. Labels never drive the search:
they are only read to report.

- gearbox: tune on ``gearbox_spectraquest/healthy``; labeled window AUC-ROC of every
  trial on the whole folder (healthy and broken tooth).
- grinding: tune on both feature tables together, unlabeled; recording F1 of the
  retrained model on the NOK cycles at its own threshold.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _study(
    name: str, data: Path, trials: int, jobs: int, seed: int, workdir: Path
) -> dict[str, Any]:
    from grindwatch.config import Config
    from grindwatch.tuning import tune

    settings: dict[str, Any] = {
        "seed": seed,
        "tune.n_trials": trials,
        "tune.jobs": jobs,
        "tune.storage": str(workdir / "optuna.db"),
        "tune.study_name": name,
        "tune.registered_model": f"{name}-tuned",
        "tracking.uri": f"sqlite:///{workdir / 'mlflow.db'}",
    }
    if name == "gearbox":
        training, labeled = data / "healthy", data
    else:
        settings["data.kind"] = "table"
        training, labeled = data, None

    started = time.perf_counter()
    result = tune(training, Config(), labeled_data=labeled, overrides=settings)
    seconds = time.perf_counter() - started

    trials_table = result.trials
    complete = trials_table[trials_table["state"] == "COMPLETE"]
    chosen = complete[complete["number"] == result.best_trial].iloc[0]
    summary: dict[str, Any] = {
        "study": name,
        "wall_s": round(seconds, 1),
        "trials": trials_table["state"].value_counts().to_dict(),
        "best_trial": result.best_trial,
        "objective": result.best_config.tune.objective,
        "best_objective": result.best_value,
        "best_params": result.best_params,
        "final_metrics": result.final_metrics,
        "registered": f"models:/{result.registered_model}@{result.alias}",
    }
    for metric in ("labeled_window_auc_roc", "labeled_recording_f1"):
        if metric in complete:
            summary[f"chosen_{metric}"] = float(chosen[metric])
            summary[f"max_{metric}"] = float(complete[metric].max())
    summary["trial_table"] = trials_table[
        [
            c
            for c in (
                "number",
                "state",
                "value",
                "family",
                "frontend",
                "window_length",
                "labeled_window_auc_roc",
                "labeled_recording_f1",
                "duration_s",
            )
            if c in trials_table
        ]
    ].to_dict(orient="records")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dataset", choices=["gearbox", "grinding"], help="data set to tune on"
    )
    parser.add_argument(
        "--trials", type=int, default=30, help="finished trials (default: 30)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="trials run in parallel, tune.jobs (default: 2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="study seed (default: 0)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("tune-benchmark"),
        help="folder for the Optuna study and the MLflow store, kept after the run "
        "(default: ./tune-benchmark)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED,
        help="folder with the shared data sets (default: ../shared/data)",
    )
    arguments = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    folder = {
        "gearbox": "gearbox_spectraquest",
        "grinding": "grinding_kellenberger_features",
    }[arguments.dataset]
    data = arguments.data / folder
    if not data.exists():
        raise SystemExit(f"{data} is missing; pass --data with the shared data folder")
    workdir = arguments.workdir.resolve() / f"{arguments.dataset}-seed{arguments.seed}"
    workdir.mkdir(parents=True, exist_ok=True)

    summary = _study(
        arguments.dataset,
        data,
        arguments.trials,
        arguments.jobs,
        arguments.seed,
        workdir,
    )
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0],
    }
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
