"""Build the HTML report of a scored data set, and record it in MLflow.

The report has four parts. First, the score distribution beside the recordings
sorted by score. Second, one section per flagged recording: signals with flagged
windows shaded, heat maps of the departure from normal, a spectrogram of the top
channel, and the nearest normal recording. Third, the study the model came from,
when there is one. Last, notes on how the attributions were computed. Detail
sections are capped, and the page states how many flagged recordings it leaves
out.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grindwatch._nouns import item_noun
from grindwatch.exceptions import ConfigError, InputError
from grindwatch.report import html as markup
from grindwatch.report import neighbours, sections
from grindwatch.report.references import (
    ReferenceSet,
    prepare_references,
    read_references,
)

if TYPE_CHECKING:
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model, ScoreResult
    from grindwatch.report.study import StudySummary

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_DETAILS",
    "ReportResult",
    "build_report",
    "create_report",
    "read_scores",
    "write_report",
]

DEFAULT_MAX_DETAILS = 20
# Called with (stage, done, total), as in grindwatch.pipeline.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ReportResult:
    """The outcome of ``create_report``: the file written and the run recorded.

    Attributes
    ----------
    path : Path
    n_recordings, n_flagged : int
        Scored and flagged recordings. For a feature table they count rows, and
        so do the other counts of recordings here.
    n_details : int
        Flagged recordings that got a detail section.
    n_flagged_not_read : int
        Flagged recordings of a saved score table that are not among the data
        read, so they get no detail section.
    n_reference, n_reference_flagged, n_reference_skipped : int
        Reference recordings usable as the nearest normal recording, those the
        model flags (not used), and files or recordings that could not be used.
    has_comparison : bool
        Whether the detail sections have a normal recording to compare with:
        a scored recording that is not flagged, or a usable reference one.
    size_bytes : int
    seconds : float
        Wall time to score and build the report.
    run_id : str or None
        The MLflow scoring run that contains the report as an artifact.
    tracking_uri : str or None
        The MLflow tracking store of that run.
    scored : ScoreResult
    """

    path: Path
    n_recordings: int
    n_flagged: int
    n_details: int
    size_bytes: int
    seconds: float
    n_flagged_not_read: int = 0
    n_reference: int = 0
    n_reference_flagged: int = 0
    n_reference_skipped: int = 0
    has_comparison: bool = True
    run_id: str | None = None
    tracking_uri: str | None = None
    scored: Any = field(default=None, repr=False)


def build_report(
    model: Model,
    recordings: RecordingSet | list[Recording],
    scored: ScoreResult | None = None,
    *,
    study: StudySummary | None = None,
    max_details: int = DEFAULT_MAX_DETAILS,
    title: str | None = None,
    progress: ProgressCallback | None = None,
    reference: ReferenceSet | RecordingSet | list[Recording] | None = None,
) -> str:
    """Return the report of ``recordings`` as one self-contained HTML document.

    Parameters
    ----------
    model : Model
    recordings : RecordingSet or list of Recording
        The recordings that were scored; detail sections draw their signals.
    scored : ScoreResult, optional
        Their scores; computed with ``model.score`` when None.
    study : StudySummary, optional
        The study the model came from (see ``grindwatch.report.study``).
    max_details : int
        Flagged recordings with a detail section, highest scores first. The page
        states how many flagged recordings it leaves out.
    title : str, optional
    progress : callable, optional
        Called with (stage, done, total).
    reference : ReferenceSet, RecordingSet or list of Recording, optional
        Known-good recordings that may serve as the nearest normal recording
        besides the scored ones that are not flagged. They are not rows of the
        table. Those the model flags are left out (see
        ``grindwatch.report.references``).
    """
    from grindwatch.explain import explain_recording

    if max_details < 0:
        raise ValueError(f"max_details={max_details} must be 0 or more")
    recordings = list(recordings)
    if scored is None:
        scored = model.score(recordings, progress=progress)
    # The order of the recordings table, so that ranks and links agree with it.
    table = sections.ranked(scored.recordings)
    # Window positions count samples as the model reads them (its channels, at
    # its rate), so every figure draws the recordings that way. Recordings that
    # scoring skipped, such as one that lacks a channel, cannot be matched and
    # have no row in the table.
    in_table = set(table["recording"])
    recordings = [model.matched(r) for r in recordings if r.name in in_table]
    by_name = {recording.name: recording for recording in recordings}
    flagged = [n for n in table.loc[table["flag"], "recording"] if n in by_name]
    chosen = flagged[:max_details]
    normal = [
        by_name[n] for n in table.loc[~table["flag"], "recording"] if n in by_name
    ]
    if reference is not None and not isinstance(reference, ReferenceSet):
        reference = prepare_references(model, reference, recordings, progress)
    candidates = normal + (reference.normal if reference is not None else [])
    ranks = {name: rank for rank, name in enumerate(table["recording"], start=1)}
    anchors = {name: f"rec-{ranks[name]}" for name in chosen}
    items = item_noun(model.kind_)
    title = (
        title or f"grindwatch report: {len(table)} {item_noun(model.kind_, len(table))}"
    )

    targets = [by_name[n] for n in chosen]
    nearest = neighbours.nearest_normal(model, targets, candidates)
    from_reference = {id(r) for r in reference.normal} if reference else set()
    missing = _no_comparison_reason(table, normal, reference, items) if chosen else ""
    details = []
    # One recording at a time, so only one explanation is held in memory.
    for done, name in enumerate(chosen, start=1):
        explanation = explain_recording(model, by_name[name])
        neighbour = nearest[name]
        details.append(
            sections.detail(
                model,
                anchors[name],
                ranks[name],
                explanation,
                neighbour,
                from_reference=neighbour is not None
                and id(neighbour[0]) in from_reference,
                missing=missing,
            )
        )
        if progress is not None:
            progress("details", done, len(chosen))

    n_flagged = int(table["flag"].sum())
    over_limit = len(flagged) - len(chosen)
    # Rows of a saved score table whose recording is not among the data read.
    not_read = n_flagged - len(flagged)
    if n_flagged:
        heading = (
            f"<h2>Flagged {items}</h2><p>{len(chosen)} of {n_flagged} "
            f"flagged {items} have a detail section, highest scores first."
        )
    else:
        heading = (
            f"<h2>Flagged {items}</h2><p>No {item_noun(model.kind_, 1)} is flagged, "
            "so there are no detail sections."
        )
    if over_limit:
        heading += (
            f" {over_limit} more flagged {items} are listed in the table only; "
            "raise the detail limit to include them."
        )
    if not_read:
        heading += (
            f" {not_read} flagged {items} of the score table are not in the "
            "data given, so they have no detail section; pass their files too."
        )
    if reference is not None:
        heading += " " + _reference_sentence(len(normal), reference, items)
    heading += "</p>"
    body = [
        sections.header(model, scored, title),
        '<section class="overview">',
        sections.distribution(model, scored),
        sections.recordings_table(model, scored, anchors),
        "</section>",
        '<section id="details">',
        heading,
        *details,
        "</section>",
    ]
    if study is not None:
        body.append(sections.study_section(study, model.kind_))
    body.append(sections.notes(model, scored, reference))
    return markup.page(title, "".join(body))


def _reference_sentence(
    n_normal: int, reference: ReferenceSet, items: str = "recordings"
) -> str:
    """Say where the nearest normal recordings (or rows, as ``items`` names them)
    come from when references are given."""
    text = (
        f"Nearest normal {items} are chosen among {n_normal} scored {items} "
        f"that are not flagged and {len(reference.normal)} reference {items}."
    )
    if reference.flagged:
        text += (
            f" {len(reference.flagged)} reference {items} are flagged by this "
            "model, so they are not used; the notes list them."
        )
    if reference.skipped:
        text += (
            f" {len(reference.skipped)} reference files or {items} could not be "
            "used; the notes list them with the reason."
        )
    return text


def _no_comparison_reason(
    table: pd.DataFrame,
    normal: list[Recording],
    reference: ReferenceSet | None,
    items: str = "recordings",
) -> str:
    """Explain why there is no normal recording to compare with, and name the fix.

    ``items`` is the plural noun for what was scored ("recordings" or "rows").
    Returns "" when there are candidates, so that no detail section needs it.
    """
    item = items[:-1]
    if normal or (reference is not None and reference.normal):
        return ""
    n_normal_scored = int((~table["flag"].astype(bool)).sum())
    if n_normal_scored:
        scored_clause = (
            f"The {n_normal_scored} {items} scored as normal are not among the "
            "data given"
        )
        fix = f"pass their files too, or known-good {items} with --reference"
    else:
        scored_clause = f"Every scored {item} is flagged"
        fix = (
            f"pass known-good {items}, such as the training data, with "
            "--reference (the reference argument of create_report)"
        )
    if reference is None or reference.n_given + reference.n_scored_too == 0:
        reference_clause = f"and no reference {items} were given"
    elif reference.flagged:
        reference_clause = (
            f"and all {len(reference.flagged)} usable reference {items} are "
            "flagged by this model too"
        )
        fix = (
            f"pass other known-good {items} with --reference, or check the "
            f"model's threshold, since it flags {items} given as known-good"
        )
    else:
        reference_clause = f"and every reference {item} is also among the scored data"
    return (
        f"{scored_clause}, {reference_clause}, so there is no normal {item} to "
        f"compare with. To draw the nearest normal {item} here, {fix}."
    )


def write_report(text: str, path: str | Path) -> Path:
    """Write the report via a temporary file and a rename, so a reader never sees
    half a file and an interrupted write keeps any earlier report."""
    from grindwatch.results import atomic_write_bytes

    return atomic_write_bytes(path, text.encode("utf-8"))


def read_scores(
    path: str | Path, threshold: float, cycle_threshold: float | None = None
) -> ScoreResult:
    """Read recording scores written by ``grindwatch score --output`` and the window
    scores beside them (NAME.windows.csv or .parquet).

    ``threshold`` and ``cycle_threshold`` are the model's; a table written with
    others is rejected.
    """
    from grindwatch.pipeline import ScoreResult
    from grindwatch.results import window_table_path

    path = Path(path)
    # spark-score writes Parquet folders, named as score names its files.
    folder = path.is_dir()
    if folder:
        # Resolved as spark-score resolves its --output, and so that "." or ".."
        # has a name to extend.
        path = path.resolve()
    windows_path = window_table_path(path)
    for needed in (path, windows_path):
        if not (needed.is_dir() if folder else needed.is_file()):
            raise InputError(
                needed,
                "score table not found",
                "pass the --output file of 'grindwatch score' or the --output "
                "folder of 'grindwatch spark-score'; its window table must lie "
                "beside it",
            )
    recordings = _read_score_table(path, folder)
    windows = _read_score_table(windows_path, folder)
    for name, frame in (("recording", recordings), ("window", windows)):
        source = path if name == "recording" else windows_path
        missing = {"recording", "score", "flag"} - set(frame.columns)
        if missing:
            raise InputError(
                source,
                f"is not a {name} score table: columns {sorted(missing)} are missing",
                "pass the --output file of 'grindwatch score'",
            )
        _check_score_columns(source, frame)
    recordings["recording"] = recordings["recording"].astype(str)
    _check_same_threshold(path, recordings, threshold, cycle_threshold)
    return ScoreResult(
        windows=windows,
        recordings=recordings,
        threshold=threshold,
        cycle_threshold=cycle_threshold,
    )


def _read_score_table(path: Path, folder: bool) -> pd.DataFrame:
    import pyarrow

    try:
        if folder or path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        # Recording names as text, so that 0007 keeps its zeros and still
        # matches the recording of that name in the data.
        return pd.read_csv(path, dtype={"recording": str})
    except (
        OSError,
        UnicodeDecodeError,
        ValueError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pyarrow.ArrowException,
    ) as error:
        reason = " ".join(str(error).split())[:200]
        raise InputError(
            path,
            f"cannot be read as a score table ({type(error).__name__}: {reason})",
            "pass the --output file of 'grindwatch score'",
        ) from None


def _check_score_columns(path: Path, frame: pd.DataFrame) -> None:
    """Raise when a score table's numbers or flags are not what ``score`` writes.

    A table edited by hand would otherwise feed its text into the report's sums.
    """
    numeric = [
        name
        for name in ("score", "margin", "cycle_score", "n_windows", "flagged_windows")
        if name in frame
    ]
    for name in numeric:
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() & frame[name].notna()
        _raise_at_first(path, frame, name, bad, "a number")
        frame[name] = values
    for name in ("flag", "cycle_flag"):
        if name not in frame:
            continue
        text = frame[name].astype(str).str.strip().str.lower()
        bad = ~text.isin(["true", "false", "1", "0", "1.0", "0.0"])
        _raise_at_first(path, frame, name, bad, "True or False")
        frame[name] = text.isin(["true", "1", "1.0"])


def _raise_at_first(
    path: Path, frame: pd.DataFrame, name: str, bad: pd.Series, expected: str
) -> None:
    """Raise naming the first cell of column ``name`` that ``bad`` marks."""
    if not bad.any():
        return
    row = int(np.flatnonzero(bad.to_numpy())[0])
    raise InputError(
        path,
        f"column {name!r} contains {frame[name].iloc[row]!r} at data row {row}, "
        f"which is not {expected}",
        "pass the table as 'grindwatch score --output' wrote it, or score the data "
        "again",
    )


def _check_same_threshold(
    path: Path,
    recordings: pd.DataFrame,
    threshold: float,
    cycle_threshold: float | None = None,
):
    """Reject a score table whose flags or margins imply another threshold.

    A table written by another model (or by this model before its threshold
    margin changed) would make the report contradict itself: verdicts from
    one threshold, margins and detail sections from another. The same applies
    to the cycle check's columns and threshold.
    """
    has_cycle = "cycle_flag" in recordings
    if has_cycle and cycle_threshold is None:
        raise InputError(
            path,
            "was written by a model with a cycle check, and this model has none; "
            "the table comes from another model",
            "score the data again with this model (grindwatch score DATA --model "
            "MODEL --output FILE), or pass the model that wrote the table",
        )
    if not has_cycle and cycle_threshold is not None:
        # Chunked scoring leaves the check out, so the same model can write it.
        raise InputError(
            path,
            "has no cycle check columns, and this model has a cycle check: the "
            "table was scored in chunks (data.chunk_samples) or by another model",
            "score the data whole with this model (grindwatch score DATA --model "
            "MODEL --output FILE), or pass the model that wrote the table",
        )
    tolerance = 1e-6 * max(1.0, abs(threshold))
    scores = recordings["score"].to_numpy(float)
    implied = None
    if "margin" in recordings:
        used = scores - recordings["margin"].to_numpy(float)
        differs = np.abs(used - threshold) > tolerance
        if differs.any():
            implied = float(used[differs][0])
    flags = recordings["flag"].astype(bool).to_numpy()
    expected = scores > threshold
    if has_cycle:
        cycle_flags = recordings["cycle_flag"].astype(bool).to_numpy()
        cycle_scores = recordings["cycle_score"].to_numpy(float)
        if (cycle_flags != (cycle_scores > cycle_threshold)).any():
            raise InputError(
                path,
                "was written with another cycle threshold than this model's "
                f"{cycle_threshold:.6g}; the table comes from another model",
                "score the data again with this model (grindwatch score DATA "
                "--model MODEL --output FILE), or pass the model that wrote the "
                "table",
            )
        expected |= cycle_flags
    if implied is None and (flags != expected).any():
        implied = float("nan")
    if implied is None:
        return
    written = "another threshold" if np.isnan(implied) else f"threshold {implied:.6g}"
    raise InputError(
        path,
        f"was written with {written}, but this model's threshold is {threshold:.6g}; "
        "the table comes from another model",
        "score the data again with this model (grindwatch score DATA --model MODEL "
        "--output FILE), or pass the model that wrote the table",
    )


def _check_same_files(
    path: str | Path, table: pd.DataFrame, recordings: RecordingSet
) -> None:
    """Raise when a row of a saved score table and a recording of the data share
    a name but not a file.

    Names are not a key: another folder can hold a file of the same name. Such a
    row would head a detail section that explains the other file, with a score
    and verdict that contradict the table's.
    """
    from grindwatch.io.dataset import source_path

    if "source" not in table:
        return
    scored_from = {
        name: str(source)
        for name, source in zip(table["recording"], table["source"], strict=True)
        if isinstance(source, str) and source
    }
    for recording in recordings:
        table_source = scored_from.get(recording.name)
        data_source = source_path(recording.source)
        if not table_source or not data_source or table_source == data_source:
            continue
        with contextlib.suppress(OSError):
            if Path(table_source).exists() and Path(table_source).samefile(data_source):
                continue
        raise InputError(
            path,
            f"its row {recording.name!r} was scored from {table_source}, but the data "
            f"given has {data_source} under that name",
            "pass the files that were scored, or score this data again (grindwatch "
            "score DATA --model MODEL --output FILE)",
        )


def _study_for(model: Model) -> StudySummary | None:
    from grindwatch.report.study import summarize_study
    from grindwatch.tracking import read_study

    record = read_study(model.run_id_, model.config)
    if record is None or record["trials"].empty:
        return None
    return summarize_study(record, model.run_id_)


def create_report(
    model: Model | str | Path,
    data: Any,
    output: str | Path,
    *,
    scores: str | Path | None = None,
    max_details: int = DEFAULT_MAX_DETAILS,
    title: str | None = None,
    track: bool = True,
    study: bool = True,
    progress: ProgressCallback | None = None,
    reference: Any = None,
) -> ReportResult:
    """Score ``data`` (or read saved scores), write the report, log it to MLflow.

    Parameters
    ----------
    model : Model, model folder or MLflow model URI
    data : files, folders, glob patterns or a RecordingSet
        Read with the model's own reading options.
    output : path
        The HTML file to write.
    scores : path, optional
        A recording score table written by ``grindwatch score --output``; the
        data is then only read for the detail sections, not scored again.
    max_details : int
        Flagged recordings with a detail section.
    track : bool
        Record the report as an artifact of a new scoring run nested under the
        model's run.
    study : bool
        Read the study the model came from, if any, from MLflow (read only; a
        missing SQLite store is not created).
    reference : files, folders, glob patterns or a RecordingSet, optional
        Known-good recordings, read like ``data``, that may serve as the nearest
        normal recording of a flagged one. They are not scored rows of the
        report. Recordings the model flags are left out, with a warning and a
        note on the page. Needed when every scored recording is flagged.

    ``track`` and ``study`` are off as well when the model's config disables
    tracking.

    Raises
    ------
    InputError
        If a reference path does not exist, no reference file can be read, or
        no reference recording matches the model's channels and sample rate.
    ConfigError
        If ``output`` is a folder or does not end in ``.html`` or ``.htm``.
    """
    from grindwatch.pipeline import (
        Model,
        _warn_most_scored_flagged,
        load_model,
        read_data,
    )

    started = time.perf_counter()
    # Checked before scoring, so a wrong name fails without a wait.
    if Path(output).is_dir():
        raise ConfigError(f"{output}: output is a folder; name an .html file")
    if Path(output).suffix.lower() not in (".html", ".htm"):
        # A name such as report.pdf would get HTML that its viewer cannot open.
        raise ConfigError(
            f"{output}: output must end in .html or .htm, because the report is "
            "an HTML page; name the file, for example, report.html"
        )
    if not isinstance(model, Model):
        model = load_model(model)
    recordings = read_data(data, model.config, model)
    # Read before scoring, so a wrong reference path fails without a wait.
    references = None
    if reference is not None and not _is_empty(reference):
        references = read_references(reference, model)
    if scores is not None:
        cycle_threshold = (
            None if model.cycle_check is None else model.cycle_check.threshold_.value
        )
        scored = read_scores(scores, model.threshold_.value, cycle_threshold)
        _check_same_files(scores, scored.recordings, recordings)
        scored.skipped = [
            {"path": str(s.path), "reason": s.reason} for s in recordings.skipped
        ]
    else:
        scored = model.score(recordings, progress=progress)
    # The same warning as grindwatch score, so that a batch after a change of
    # operating point is not read as a list of faults.
    _warn_most_scored_flagged(model, scored)
    if references is not None:
        references = prepare_references(model, references, list(recordings), progress)
    enabled = model.config.tracking.enabled
    text = build_report(
        model,
        recordings,
        scored,
        study=_study_for(model) if study and enabled else None,
        max_details=max_details,
        title=title,
        progress=progress,
        reference=references,
    )
    path = write_report(text, output)
    n_flagged = int(scored.recordings["flag"].sum())
    # Detail sections go to flagged recordings whose signals are in the data.
    in_data = scored.recordings["recording"].isin([r.name for r in recordings])
    n_detailed = int((scored.recordings["flag"] & in_data).sum())
    result = ReportResult(
        path=path,
        n_recordings=len(scored.recordings),
        n_flagged=n_flagged,
        n_details=min(n_detailed, max_details),
        n_flagged_not_read=n_flagged - n_detailed,
        has_comparison=_has_comparison(scored, recordings, references),
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
        scored=scored,
    )
    if references is not None:
        result.n_reference = len(references.normal)
        result.n_reference_flagged = len(references.flagged)
        result.n_reference_skipped = len(references.skipped)
    if track and enabled:
        from grindwatch.tracking import resolve_tracking_uri

        result.run_id = _log(model, scored, path)
        # log_scoring resolves the store from the same config.
        result.tracking_uri = resolve_tracking_uri(model.config)
    logger.info(
        "wrote %s (%d bytes) in %.1f s", path, result.size_bytes, result.seconds
    )
    return result


def _is_empty(source: Any) -> bool:
    """Tell whether a reference argument names nothing, such as an empty list.

    ``read_data`` would read the config's ``data.paths`` for an empty source,
    which is not what an empty reference means.
    """
    if isinstance(source, (list, tuple)):
        return not source
    return False


def _has_comparison(
    scored: ScoreResult, recordings: RecordingSet, references: ReferenceSet | None
) -> bool:
    table = scored.recordings
    normal = table.loc[~table["flag"].astype(bool), "recording"]
    if normal.isin([r.name for r in recordings]).any():
        return True
    return references is not None and bool(references.normal)


def _log(model: Model, scored: ScoreResult, path: Path) -> str:
    import tempfile

    from grindwatch.tracking import log_scoring

    summary = scored.summary()
    metrics = {
        key: float(summary[key])
        for key in (
            "n_recordings",
            "n_flagged_recordings",
            "n_windows",
            "n_flagged_windows",
            "threshold",
        )
    }
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "recordings.csv"
        scored.recordings.to_csv(table, index=False)
        return log_scoring(
            model.config,
            metrics,
            model.run_id_,
            {"report.html": path, "recordings.csv": table},
        )
