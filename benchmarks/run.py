"""Run the benchmarks and write their figures into benchmarks/BENCHMARKS.md.

    python -m benchmarks [PART ...] [--data PATH] [--repeats N] [--threads N]

PART is ``quality``, ``skab``, ``speed``, ``reading``, ``profile`` or ``all`` (the
default). Each part replaces its own section of the generated block in the page and
writes its raw figures to ``results/PART.json`` next to the page. Data sets are read
from ``--data`` (default: ``../shared/data`` next to the repository) and skipped,
with a message, when absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.page import PARTS, render_part, replace_part

logger = logging.getLogger("benchmarks")

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_PAGE = ROOT / "benchmarks" / "BENCHMARKS.md"
PACKAGES = (
    "torch",
    "numpy",
    "scikit-learn",
    "pandas",
    "pyod",
    "optuna",
    "pyarrow",
    "h5py",
)
# Names of the quality data sets, as in ``benchmarks.datasets.LOADERS``. Kept here,
# not imported, so that parsing the command line loads no numerical library before
# ``main`` sets the thread count.
DATASETS = ("gearbox", "grinding", "cnc_mill", "skab", "nab_temperature")
PART_HELP = """\
parts:
  quality   grindwatch (defaults and tuned) against PyOD's detectors on the
            labelled data sets under --data: AUC-ROC, AUC-PR and F1
  skab      the SKAB outlier-detection protocol (F1, FAR, MAR) on --data/skab
  speed     training and scoring rates, FLOP rates against the matmul rate,
            and peak memory, on generated recordings
  reading   read throughput of CSV, Parquet and HDF5 files, generated
  profile   cProfile of one fit and one score of the default model

Each part replaces only its own section of the page and its results/PART.json.
A data set missing under --data is skipped with a message, and its part's
section then says so.
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark grindwatch against PyOD and the SKAB leaderboard and "
        "write the figures into benchmarks/BENCHMARKS.md.",
        epilog=PART_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "parts",
        nargs="*",
        # A string, not a list: Python 3.11's argparse checks a list default of a
        # positional against the choices as one value and rejects it.
        default="all",
        choices=[*PARTS, "all"],
        help="parts to run (default: all)",
    )

    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with the data sets (default: ../shared/data)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per figure; the page shows medians (default: 3)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (default: 2)"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        choices=DATASETS,
        metavar="DATASET",
        help="quality part only: these data sets, from "
        f"{', '.join(DATASETS)} (default: every one present)",
    )
    parser.add_argument(
        "--no-tune",
        action="store_true",
        help="leave out the tuned grindwatch column (faster)",
    )

    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the page from the saved results/PART.json files without "
        "running anything; the page keeps each part's recorded command and date",
    )

    parser.add_argument(
        "--page",
        type=Path,
        default=DEFAULT_PAGE,
        help="page to update (default: benchmarks/BENCHMARKS.md)",
    )

    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def _machine() -> str:
    model = platform.processor() or platform.machine()
    memory = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory = f", {kib / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}){memory}, {platform.system()}"


def _versions() -> dict[str, str]:
    found = {"Python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _commit(outputs: list[Path]) -> str:
    """Name the checked-out commit, noting uncommitted code.

    ``outputs`` (the page and the results folder) are left out of the check,
    because every run rewrites them.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    excluded = [f":(exclude){path.resolve()}" for path in outputs]
    if git("status", "--porcelain", "--", "src", "benchmarks", *excluded):
        commit += " (with uncommitted changes under src/ or benchmarks/)"
    return commit


def _run_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    if part == "quality":
        from benchmarks.datasets import load_tasks
        from benchmarks.quality import run_quality
        from benchmarks.tuned import TUNING_TRIALS, find_tuner
        from grindwatch.config import Config

        tasks, skipped = load_tasks(args.data, args.datasets)
        tuner, reason = find_tuner()
        configs = [task.config for task in tasks] or [Config()]
        return {
            "datasets": run_quality(tasks, args.repeats, tune=not args.no_tune),
            "skipped": skipped,
            "tuning_trials": TUNING_TRIALS,
            "tuning_objectives": sorted({config.tune.objective for config in configs}),
            "tuned_missing": "not asked for (--no-tune)" if args.no_tune else reason,
        }
    if part == "skab":
        from benchmarks.skab import run_skab

        root = args.data / "skab"
        if not root.is_dir():
            logger.warning(
                "skipped skab: %s not found; pass --data with the folder of the "
                "shared data sets",
                root,
            )
            return {"missing": f"{root} not found"}
        return run_skab(root, args.repeats, tune=not args.no_tune)
    if part == "speed":
        from benchmarks.speed import run_speed

        return run_speed(args.repeats)
    if part == "reading":
        from benchmarks.reading import run_reading

        return run_reading(args.repeats)
    from benchmarks.profiling import run_profile

    return run_profile()


def _render_saved(parts: list[str], page_path: Path, folder: Path) -> None:
    """Rewrite the page's sections from saved results, for layout changes."""
    page = page_path.read_text() if page_path.is_file() else "# Benchmarks\n"
    for part in parts:
        saved = folder / f"{part}.json"
        if not saved.is_file():
            logger.warning("no saved results for %s at %s; run it first", part, saved)
            continue
        run = json.loads(saved.read_text())
        page = replace_part(page, part, render_part(part, run["results"], run["meta"]))
    page_path.write_text(page)


def main(argv: list[str] | None = None) -> None:
    """Run the requested parts and update the page after each one."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # Threshold fallbacks and per-trial logs would bury the progress lines.
    logging.getLogger("grindwatch").setLevel(logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if isinstance(args.parts, str) or "all" in args.parts:
        parts = list(PARTS)
    else:
        parts = list(dict.fromkeys(args.parts))
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    results_folder = args.page.parent / "results"
    results_folder.mkdir(exist_ok=True)

    if args.render_only:
        _render_saved(parts, args.page, results_folder)
        return

    # Read before any part writes, so the code state is the one every part ran.
    commit = _commit([args.page, results_folder])
    for part in parts:
        logger.info("running %s", part)
        load_before, start = os.getloadavg()[0], time.perf_counter()
        results = _run_part(part, args)
        meta = {
            "command": command.strip(),
            "seconds": time.perf_counter() - start,
            "repeats": args.repeats if part != "profile" else 1,
            "machine": _machine(),
            "threads": torch.get_num_threads(),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "versions": _versions(),
            "grindwatch": version("grindwatch"),
            "commit": commit,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        (results_folder / f"{part}.json").write_text(
            json.dumps({"meta": meta, "results": results}, indent=1, default=str)
        )
        page = args.page.read_text() if args.page.is_file() else "# Benchmarks\n"
        args.page.write_text(replace_part(page, part, render_part(part, results, meta)))
        logger.info("%s done in %.1f min", part, meta["seconds"] / 60)
