"""Metrics against labels, for evaluation only: labels never reach fitting."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grindwatch._nouns import item_noun
from grindwatch.exceptions import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "EvaluationResult",
    "apply_labels",
    "binary_metrics",
    "evaluate_scores",
    "label_skipped",
]


def binary_metrics(labels: np.ndarray, scores: np.ndarray, flags: np.ndarray):
    """AUC-ROC, AUC-PR (average precision), precision, recall and F1.

    The AUCs are NaN when only one class is present; precision is 0 when nothing
    is flagged.
    """
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    labels = np.asarray(labels).astype(int)
    flags = np.asarray(flags).astype(int)
    both = np.unique(labels).size == 2
    return {
        "auc_roc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "auc_pr": float(average_precision_score(labels, scores))
        if both
        else float("nan"),
        "precision": float(precision_score(labels, flags, zero_division=0)),
        "recall": float(recall_score(labels, flags, zero_division=0)),
        "f1": float(f1_score(labels, flags, zero_division=0)),
        "n": int(labels.size),
        "n_anomalous": int(labels.sum()),
        "n_flagged": int(flags.sum()),
    }


@dataclass
class EvaluationResult:
    """Labeled metrics per window and per recording, with the scored tables.

    ``unlabeled`` names the scored recordings that carry no label; the metrics
    leave them out. ``skipped`` lists the files and recordings that were not
    evaluated: path, reason and label (1, 0 or None when unknown), as far as the
    label can be found without reading the data (labels file or folder names).
    ``window_labels`` is ``"recordings"`` when recordings have several windows
    and every window of an anomalous recording carries that recording's label,
    as without per-sample labels. The window metrics then count its windows
    outside the fault as anomalous too. Otherwise it is ``"samples"``.
    """

    windows: dict[str, float]
    recordings: dict[str, float]
    scored: Any  # ScoreResult, with a label column filled in
    unlabeled: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    window_labels: str = "samples"
    # Labeled recordings whose file the model was trained on (same content).
    trained_on: list[str] = field(default_factory=list)

    def skipped_counts(self) -> dict[str, int]:
        """Count the skipped entries by label: normal, anomalous and unlabeled."""
        labels = [item["label"] for item in self.skipped]
        return {
            "normal": labels.count(0),
            "anomalous": labels.count(1),
            "unlabeled": labels.count(None),
        }

    def label_sources(self) -> dict[str, dict[str, int]]:
        """Count the labeled recordings by where their label came from.

        Keys are ``label column``, ``labels file`` or ``folder NAME``; values
        count normal and anomalous recordings.
        """
        table = self.scored.recordings
        if "label_source" not in table:
            return {}
        labeled = table[_labeled(table)]
        counts: dict[str, dict[str, int]] = {}
        for source, label in zip(
            labeled["label_source"], labeled["label"], strict=True
        ):
            entry = counts.setdefault(str(source), {"normal": 0, "anomalous": 0})
            entry["anomalous" if int(label) else "normal"] += 1
        return counts

    def flat(self) -> dict[str, float]:
        out = {f"window_{k}": v for k, v in self.windows.items()}
        out.update({f"recording_{k}": v for k, v in self.recordings.items()})
        return out


def apply_labels(  # noqa: ANN001 - scored is a ScoreResult
    scored, labels: dict[str, int], kind: str = "signals", source: str = "labels"
) -> None:
    """Fill the label columns from a mapping recording name -> 0/1.

    The mapping overrides folder-name labels, for recordings and their windows.
    Windows inherit their recording's label unless a label column gave per-sample
    labels. Recordings the mapping leaves out have no label, whatever their
    folder's name, so the window and recording metrics count the same recordings.
    ``kind`` is the model's data kind; for "table" the warnings say rows.
    ``source`` names the labels in errors, such as the labels file's path.
    """
    from grindwatch.io.labels import label_key_for

    names = scored.recordings["recording"].astype(str)
    keys = names.map(lambda name: label_key_for(name, labels))
    mapped = keys.map(labels)
    unknown = names[keys.isna()].tolist()
    if len(unknown) == len(names):
        raise InputError(
            source,
            f"name none of the scored recordings (labels such as "
            f"{next(iter(labels))!r}, recordings such as {names.iloc[0]!r}, and "
            "letter case counts)",
            "use recording names as printed by 'grindwatch score'",
        )
    if unknown:
        logger.warning(
            "no label for %d %s, e.g. %s",
            len(unknown),
            item_noun(kind, len(unknown)),
            unknown[:3],
        )
    unused = sorted(set(labels) - set(keys.dropna()))
    if unused:
        logger.warning(
            "%d of the %d labels name no scored recording, e.g. %s; they are not "
            "used. Check their spelling if those recordings were meant to be scored.",
            len(unused),
            len(labels),
            unused[:3],
        )
    # Recordings of one stem in several folders are named FOLDER/STEM, so a
    # label given for the bare stem labels every one of them.
    shared = names[keys.notna()].groupby(keys[keys.notna()]).agg(list)
    for key, matched in shared[shared.map(len) > 1].items():
        logger.warning(
            "the label for %r applies to %d recordings of that name in different "
            "folders (%s); write FOLDER/NAME in the labels file to label one of them",
            key,
            len(matched),
            ", ".join(matched),
        )
    recordings = scored.recordings
    from_column = (
        recordings["label_source"].eq("label column")
        if "label_source" in recordings
        else pd.Series(False, index=recordings.index)
    ) & mapped.notna()
    recordings["label"] = mapped.astype("Int64")
    # The file gives the recording's label; a label column still gives its
    # windows theirs (see below).
    recordings["label_source"] = np.where(
        from_column,
        "labels file (windows: label column)",
        np.where(mapped.notna(), "labels file", ""),
    )
    window_labels = scored.windows["recording"].map(
        dict(zip(names, mapped, strict=False))
    )
    if "label" in scored.windows:
        # Per-sample labels of a label column stay, where the file labels the
        # recording too; folder labels give way to the file's.
        keep = scored.windows["recording"].isin(names[from_column]) & (
            scored.windows["label"].fillna(-1) >= 0
        )
        window_labels = scored.windows["label"].where(keep, window_labels)
    scored.windows["label"] = window_labels.astype("Int64")


def _describe_sources(recordings) -> str:  # noqa: ANN001 - DataFrame
    """Name the scored files for a message: the first one and how many more."""
    if "source" not in recordings or recordings.empty:
        return "the data"
    first = recordings["source"].iloc[0]
    if not first:
        # A Recording built in Python has no file, so the message names it.
        first = recordings["recording"].iloc[0]
    more = len(recordings) - 1
    return f"{first} and {more} more" if more else str(first)


def evaluate_scores(scored) -> EvaluationResult:  # noqa: ANN001 - ScoreResult
    """Compute metrics from a ScoreResult whose tables carry a ``label`` column."""
    results = {}
    for level, table in (
        ("windows", scored.windows),
        ("recordings", scored.recordings),
    ):
        if "label" not in table:
            raise InputError(
                _describe_sources(scored.recordings),
                "carries no labels",
                "pass --labels FILE, a label column, or folders named OK/NOK, "
                "good/bad or healthy/broken",
            )
        known = table[_labeled(table)]
        results[level] = binary_metrics(
            known["label"].to_numpy(int),
            known["score"].to_numpy(),
            known["flag"].to_numpy(),
        )
    recordings = scored.recordings
    unlabeled = recordings.loc[~_labeled(recordings), "recording"].astype(str)
    return EvaluationResult(
        results["windows"],
        results["recordings"],
        scored,
        unlabeled.tolist(),
        window_labels=_window_label_source(scored),
    )


def _window_label_source(scored) -> str:  # noqa: ANN001 - ScoreResult
    """Return ``"recordings"`` when each anomalous recording labels all its windows.

    Recordings of one window each, such as feature-table rows, return
    ``"samples"``, because each window then is the whole recording.
    """
    recordings = scored.recordings[_labeled(scored.recordings)]
    anomalous = recordings.loc[recordings["label"] == 1, "recording"]
    if anomalous.empty or (recordings["n_windows"] == 1).all():
        return "samples"
    windows = scored.windows[scored.windows["recording"].isin(anomalous)]
    inherited = bool((windows["label"] == 1).all())
    return "recordings" if inherited else "samples"


def _labeled(table: pd.DataFrame) -> pd.Series:
    """Rows with a label: missing labels read as NaN or <NA>, unknown ones as -1."""
    labeled = pd.to_numeric(table["label"], errors="coerce") >= 0
    # A nullable Int64 column compares <NA> to <NA>, which masks would drop.
    return labeled.fillna(False).astype(bool)


def label_skipped(
    skipped: list[dict[str, str]],
    labels: dict[str, int] | None = None,
    roots: dict[Path, Path] | None = None,
) -> list[dict[str, Any]]:
    """Add each skipped entry's label, from ``labels`` or else its folder names.

    ``labels`` maps recording names (file stems) to 0 or 1, as a labels file
    does, and as in ``apply_labels`` a name it leaves out has no label. A label
    column inside a skipped file is not read, so such a file's label is None.
    ``roots`` maps files to the highest folder whose name may label them
    (``grindwatch.io.dataset.label_roots``).
    """
    from grindwatch.io import label_from_path
    from grindwatch.io.labels import label_key_for

    roots = roots or {}
    labeled = []
    for item in skipped:
        path = Path(item["path"])
        if labels is None:
            label = label_from_path(path, roots.get(path))
        else:
            # The folders are known, so a key with folders must name these.
            key = label_key_for((path.parent / path.stem).as_posix(), labels)
            label = None if key is None else int(labels[key])
        labeled.append({**item, "label": label})
    return labeled


def evaluate(
    model,  # noqa: ANN001 - Model, or a location load_model accepts
    data,  # noqa: ANN001 - files, folders, globs or a RecordingSet
    *,
    labels: str | Path | Mapping[str, Any] | pd.Series | None = None,
    track: bool = True,
    progress=None,  # noqa: ANN001
) -> EvaluationResult:
    """Score labeled recordings and report metrics at the model's own threshold.

    Labels come from ``labels`` (a CSV with ``recording,label``, or a dict or
    pandas Series from recording name to 1/0 or a word such as NOK/OK) when
    given, else from label columns or class-named folders in the data.
    """
    from grindwatch.pipeline import Model, load_model, score

    if not isinstance(model, Model):
        model = load_model(model)
    # Read before scoring, so a bad labels file fails at once.
    mapping = _labels_mapping(labels)
    scored = score(model, data, progress=progress)
    if mapping is not None:
        in_memory = isinstance(labels, (Mapping, pd.Series))
        source = "labels" if in_memory else str(labels)
        apply_labels(scored, mapping, model.kind_, source)
    result = evaluate_scores(scored)
    result.skipped = label_skipped(scored.skipped, mapping, _label_roots(data, model))
    # Only the labeled recordings count in the metrics, so only they are checked.
    measured = scored.recordings[_labeled(scored.recordings)]
    result.trained_on = training_recordings(model, measured)
    if result.trained_on:
        n_trained_on = len(result.trained_on)
        items = item_noun(model.kind_)
        seen = "file" if model.kind_ == "signals" else "row"
        logger.warning(
            "%d of the %d labeled %s %s the model was trained on (first: %s), so "
            "the metrics are optimistic; evaluate on %s left out of training",
            n_trained_on,
            len(measured),
            items,
            f"is a {seen}" if n_trained_on == 1 else f"are {seen}s",
            result.trained_on[0],
            items,
        )
    counts = result.skipped_counts()
    if counts["normal"] or counts["anomalous"]:
        logger.warning(
            "%d labeled recordings were not evaluated (%d normal, %d anomalous); "
            "the metrics leave them out",
            counts["normal"] + counts["anomalous"],
            counts["normal"],
            counts["anomalous"],
        )
    if track and model.config.tracking.enabled:
        from grindwatch.tracking import log_evaluation

        result.run_id = log_evaluation(
            model.config,
            result.flat(),
            model.run_id_,
            {"evaluation_recordings.csv": scored.recordings.to_csv(index=False)},
        )
    return result


def _labels_mapping(
    labels: str | Path | Mapping[str, Any] | pd.Series | None,
) -> dict[str, int] | None:
    """Read the ``labels`` argument of ``evaluate`` into recording name -> 0/1."""
    from grindwatch.io import read_labels_csv

    if labels is None:
        return None
    if isinstance(labels, (Mapping, pd.Series)):
        mapping, source = _checked_labels(dict(labels.items())), "labels"
    elif isinstance(labels, (str, PathLike)):
        mapping, source = read_labels_csv(Path(labels)), str(labels)
    else:
        raise TypeError(
            "labels must be the path of a labels CSV, a dict or a pandas "
            f"Series from recording name to 1/0, not {type(labels).__name__}; "
            "for a table of names and labels pass "
            "dict(zip(table['recording'], table['label']))"
        )
    if not mapping:
        raise InputError(
            source,
            "contains no labels",
            "give each recording name with 1 (anomalous) or 0 (normal)",
        )
    return mapping


def _checked_labels(labels: dict[str, Any]) -> dict[str, int]:
    """Return ``labels`` with each value as 1 or 0, read as a labels CSV reads it.

    Raises
    ------
    InputError
        If a value is neither 1/0, True/False nor a label word such as NOK/OK.
    """
    from grindwatch.io.labels import label_value

    checked = {}
    for name, value in labels.items():
        label = label_value(value)
        if label is None:
            raise InputError(
                "labels",
                f"label {value!r} for {name!r} is neither 1/0 nor a known word",
                "use 1 for anomalous and 0 for normal",
            )
        checked[str(name)] = label
    return checked


def _label_roots(data, model) -> dict[Path, Path]:  # noqa: ANN001
    """Map each file in ``data`` to its label root; empty for recordings in memory."""
    from grindwatch.io import RecordingSet
    from grindwatch.io.dataset import label_roots

    if data is None or (isinstance(data, (list, tuple)) and not data):
        data = model.config.data.paths
    if not data or isinstance(data, RecordingSet):
        return {}
    try:
        return label_roots(data, model.config.data.kind)
    except InputError:  # scoring has reported it already
        return {}


def training_recordings(model, recordings: pd.DataFrame) -> list[str]:  # noqa: ANN001
    """Name the recordings whose source file has the content of a training file.

    Files are compared by size first, and by SHA-256 only where a training file
    has the same size, so evaluating files of other sizes reads nothing twice.
    Models without a list of training files (older bundles) find none.
    """
    from grindwatch.fingerprint import describe_file

    trained = getattr(model, "fingerprint_", {}).get("files", [])
    hashes: dict[int, set[str]] = {}
    for item in trained:
        hashes.setdefault(int(item["bytes"]), set()).add(item["sha256"])
    if not hashes or "source" not in recordings:
        return []
    found: dict[str, bool] = {}
    names = []
    for name, source in zip(recordings["recording"], recordings["source"], strict=True):
        if not source:
            continue
        if source not in found:
            path = Path(source)
            try:
                size = _size(path)
                found[source] = size in hashes and (
                    describe_file(path)["sha256"] in hashes[size]
                )
            except OSError:
                found[source] = False
        if found[source]:
            names.append(str(name))
    return names


def _size(path: Path) -> int:
    """Return the size of a file, or the total of a cycle folder's files."""
    if not path.is_dir():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
