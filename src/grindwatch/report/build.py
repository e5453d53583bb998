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

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grindwatch._version import __version__
from grindwatch.exceptions import InputError
from grindwatch.report import html as markup

if TYPE_CHECKING:
    from grindwatch.explain import RecordingExplanation
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

ATTRIBUTION_METHODS = {
    "autoencoder": "the autoencoder's reconstruction loss of each element",
    "pca": "the squared residual of each element after the principal-component "
    "projection",
    "knn": "the squared difference of each element to the mean of the nearest "
    "training windows",
    "iforest": "each element's distance from the training median in units of its "
    "training spread (the isolation forest has no per-element decomposition of its "
    "own, so this standardised deviation stands in for it)",
}
AXIS_HEADERS = {
    "top_band": "top band",
    "top_feature": "top statistic",
    "top_sample": "peak at",
}


@dataclass
class ReportResult:
    """What ``create_report`` wrote and recorded.

    Attributes
    ----------
    path : Path
    n_recordings, n_flagged : int
    n_details : int
        Flagged recordings that got a detail section.
    size_bytes : int
    seconds : float
        Wall time to score and build the report.
    run_id : str or None
        The MLflow scoring run that contains the report as an artifact.
    scored : ScoreResult
    """

    path: Path
    n_recordings: int
    n_flagged: int
    n_details: int
    size_bytes: int
    seconds: float
    run_id: str | None = None
    scored: Any = field(default=None, repr=False)


def _uri(figure) -> str:  # noqa: ANN001
    from grindwatch.report.figures import figure_to_data_uri

    return figure_to_data_uri(figure)


# Nearest normal recording ---------------------------------------------------------


def _profile_transform(model: Model, scaled: np.ndarray):  # noqa: ANN202
    """Choose the features that recordings are compared by.

    That is the model's own front-end output, or log band energies for the raw
    front end, because raw samples do not align between recordings.
    """
    from grindwatch.signals import FrontEnd

    if model.kind_ == "table" or model.frontend_.kind != "raw":
        return model.frontend_
    return FrontEnd("spectrum", min(16, scaled.shape[-1] // 2)).fit(scaled)


def recording_profiles(
    model: Model, recordings: list[Recording], batch: int = 64
) -> np.ndarray:
    """Mean feature vector of each recording, (n_recordings, n_features)."""
    transform = None
    parts = []
    for begin in range(0, len(recordings), batch):
        windows = model.prepare(recordings[begin : begin + batch])
        scaled = model.scaler_.transform(windows.X)
        if transform is None:
            transform = _profile_transform(model, scaled)
        flat = transform.transform(scaled).reshape(len(windows), -1)
        counts = np.bincount(windows.recording)
        sums = np.zeros((len(counts), flat.shape[1]))
        np.add.at(sums, windows.recording, flat)
        parts.append(sums / counts[:, None])
    return np.concatenate(parts)


def nearest_normal(
    model: Model, targets: list[Recording], candidates: list[Recording]
) -> dict[str, tuple[Recording, float] | None]:
    """For each target, the candidate nearest in feature space, and the distance.

    Distances are Euclidean between the mean standardised front-end outputs of
    the two recordings (log band energies for the raw front end). A target gets
    None when there is no candidate.
    """
    if not targets:
        return {}
    if not candidates:
        return {target.name: None for target in targets}
    profiles = recording_profiles(model, candidates + targets)
    pool, wanted = profiles[: len(candidates)], profiles[len(candidates) :]
    found: dict[str, tuple[Recording, float] | None] = {}
    for target, profile in zip(targets, wanted, strict=True):
        distances = np.linalg.norm(pool - profile, axis=1)
        best = int(np.argmin(distances))
        found[target.name] = (candidates[best], float(distances[best]))
    return found


# Sections -------------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return markup.escape(value)


def _header(model: Model, scored: ScoreResult, title: str) -> str:
    recordings = scored.recordings
    n_flagged = int(recordings["flag"].sum())
    window = (
        f"windows of {model.window_length_} samples, hop {model.hop_}"
        if model.kind_ == "signals"
        else "one row per cycle"
    )
    rate = f"{model.sample_rate_:g} Hz" if model.sample_rate_ else "not known"
    frontend = model.config.frontend.kind if model.kind_ == "signals" else "table"
    run = f", MLflow run {model.run_id_}" if model.run_id_ else ""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<header><h1>{markup.escape(title)}</h1>"
        f'<p class="meta">{len(recordings)} recordings scored, <b>{n_flagged} '
        f"flagged</b>; {int(scored.windows['flag'].sum())} of {len(scored.windows)} "
        f"windows above the threshold {scored.threshold:.4g}. Model: "
        f"{markup.escape(model.config.detector.family)} on "
        f"{markup.escape(frontend)}, {len(model.channels_)} channels, {window}, "
        f"sample rate {rate}{markup.escape(run)}. Generated {generated} by "
        f"grindwatch {__version__}.</p></header>"
    )


def _aggregate_sentence(model: Model) -> str:
    if model.kind_ == "table":
        return "Each recording is one row of a feature table, scored on its own."
    settings = model.config.aggregate
    rule = {
        "max": "the maximum",
        "mean": "the mean",
        "quantile": f"the {settings.quantile:g} quantile",
    }[settings.method]
    return (
        f"A recording's score is {rule} of its window scores, and it is flagged "
        "when that exceeds the same threshold."
    )


def _distribution(model: Model, scored: ScoreResult) -> str:
    from grindwatch.report.scores import plot_score_distribution

    figure = plot_score_distribution(
        model.training_scores_,
        model.threshold_,
        scored.windows["score"].to_numpy(),
        scored.recordings["score"].to_numpy(),
    )
    return (
        '<div id="distribution"><h2>Score distribution</h2>'
        + markup.figure(
            _uri(figure),
            "Histogram of training and scored window scores with the fitted "
            "clusters and the threshold",
        )
        + f"<p>{markup.escape(model.threshold_.describe())}</p>"
        + f"<p>{markup.escape(_aggregate_sentence(model))}</p></div>"
    )


def _recordings_table(
    model: Model, scored: ScoreResult, anchors: dict[str, str]
) -> str:
    from grindwatch.explain import element_axis

    frame = scored.recordings.sort_values("score", ascending=False, kind="stable")
    axis_column = element_axis(model).column
    has_axis = axis_column is not None and axis_column in frame
    has_top = "top_channel" in frame
    has_label = "label" in frame
    headers = ["#", "recording", "score", "margin", "verdict"]
    if model.kind_ == "signals":
        headers.insert(4, "flagged windows")
    if has_top:
        headers.append("top feature" if model.kind_ == "table" else "top channel")
    if has_axis:
        headers.append(AXIS_HEADERS[axis_column])
    if has_label:
        headers.append("label")

    rows, classes = [], []
    for rank, row in enumerate(frame.itertuples(index=False), start=1):
        record = row._asdict()
        name = f'<span class="name">{markup.escape(record["recording"])}</span>'
        anchor = anchors.get(record["recording"])
        link = f'<a href="#{anchor}">{name}</a>' if anchor else name
        margin = record["score"] - scored.threshold
        cells = [str(rank), link, _number(record["score"]), f"{margin:+.3g}"]
        if model.kind_ == "signals":
            cells.append(f"{record['flagged_windows']}/{record['n_windows']}")
        cells.append("ANOMALOUS" if record["flag"] else "normal")
        if has_top:
            cells.append(
                f"{markup.escape(record['top_channel'])} "
                f"({record['top_channel_share']:.0%})"
            )
        if has_axis:
            cells.append(_axis_cell(model, axis_column, record[axis_column]))
        if has_label:
            cells.append(_label_cell(record["label"]))
        rows.append(cells)
        classes.append("flag" if record["flag"] else "")
    text = [1] + [headers.index(h) for h in headers if h.startswith("top")]
    return (
        '<div id="recordings"><h2>Recordings by score</h2><div class="scroll">'
        + markup.table(headers, rows, text_columns=text, row_classes=classes)
        + "</div></div>"
    )


def _axis_cell(model: Model, column: str, value: Any) -> str:
    if column == "top_sample":
        if model.sample_rate_:
            return f"{int(value) / model.sample_rate_:.4g} s"
        return f"sample {int(value)}"
    return markup.escape(value)


def _label_cell(value: Any) -> str:
    if value is None or pd.isna(value) or int(value) < 0:
        return ""
    return "anomalous" if int(value) else "normal"


def _signal_detail(
    explanation: RecordingExplanation, reference: Recording | None
) -> str:
    from grindwatch.report import figures

    top = explanation.recording.channels.index(explanation.summary["top_channel"])
    parts = [
        markup.figure(
            _uri(figures.signal_panels(explanation, reference)),
            "Signal of each channel with flagged windows shaded",
            "Each channel over the cycle, ordered by contribution; shaded: windows "
            "above the threshold. Long signals are drawn as min/max envelopes.",
        ),
        markup.figure(
            _uri(figures.contribution_heatmaps(explanation)),
            "Heat map of the departure from normal by channel and time",
            f"Contribution to the score: {explanation.axis.name}-level values "
            "summed per channel and window; darker is further from normal, on a "
            "square-root colour scale so smaller departures stay visible.",
        ),
        markup.figure(
            _uri(figures.spectrograms(explanation, top, reference)),
            "Spectrogram of the top channel",
            "Spectrogram of the channel with the largest contribution; outlined: "
            "flagged windows.",
        ),
    ]
    return "".join(parts)


def _table_detail(
    model: Model, explanation: RecordingExplanation, reference: Recording | None
) -> str:
    from grindwatch.explain import feature_groups
    from grindwatch.report import figures

    names = explanation.recording.channels
    groups = feature_groups(names)
    values = explanation.contributions[0, :, 0]
    total = float(values.sum()) or 1.0
    order = np.argsort(-values, kind="stable")[:15]
    row = explanation.recording.data[:, 0]
    other = reference.data[:, 0] if reference is not None else None
    centre, scale = model.scaler_.center_, model.scaler_.scale_
    rows = [
        [
            markup.escape(names[i]),
            f"{values[i] / total:.1%}",
            _number(float(row[i])),
            _number(float(other[i])) if other is not None else "",
            _number(float(centre[i])),
            f"{(row[i] - centre[i]) / scale[i]:+.2f}",
        ]
        for i in order
    ]
    headers = [
        "feature",
        "share",
        "value",
        "nearest normal",
        "training centre",
        "scaled deviation",
    ]
    return (
        markup.figure(
            _uri(figures.feature_contributions(explanation, groups)),
            "Bar chart of the features that contribute most",
            "Share of the departure from normal by feature group and by feature.",
        )
        + markup.table(headers, rows)
        + (
            '<p class="note">Scaled deviation: (value - training centre) / training '
            f"scale, with the model's {markup.escape(model.config.scaling.method)} "
            "scaling of each feature.</p>"
        )
    )


def _detail(
    model: Model,
    anchor: str,
    rank: int,
    explanation: RecordingExplanation,
    neighbour: tuple[Recording, float] | None,
) -> str:
    recording = explanation.recording
    if neighbour is None:
        reference = None
        compared = (
            "Every recording in this data set is flagged, so there is no normal "
            "recording to compare with."
        )
    else:
        reference, distance = neighbour
        compared = (
            f"Nearest normal recording: {markup.escape(reference.name)} (distance "
            f"{distance:.3g} between mean standardised features)."
        )
    body = (
        _table_detail(model, explanation, reference)
        if model.kind_ == "table"
        else _signal_detail(explanation, reference)
    )
    source = f" ({markup.escape(recording.source)})" if recording.source else ""
    return (
        f'<article id="{anchor}"><h3>#{rank} {markup.escape(recording.name)} '
        f"- {'ANOMALOUS' if explanation.flag else 'normal'}</h3>"
        f'<p class="meta">{source}</p>'
        f"<p>{markup.escape(explanation.describe())} {compared}</p>{body}"
        '<p class="note"><a href="#recordings">Back to the table</a></p></article>'
    )


def _study_section(summary: StudySummary) -> str:
    from grindwatch.report.study import plot_history, plot_importances

    trials = summary.trials
    done = int(trials["value"].notna().sum())
    model_rows = trials[trials["is_model"]]
    position = (
        f"This model is trial {int(model_rows['number'].iloc[0])} of study "
        if not model_rows.empty
        else "This model belongs to study "
    )
    source = (
        "as recorded by the study"
        if summary.objective_source == "recorded"
        else "guessed from the metric names, as the study run does not name it"
    )
    best = summary.best
    best_text = (
        f" The best value is {best['value']:.4g} (trial {int(best['number'])})."
        if best is not None
        else ""
    )
    intro = (
        f"<p>{position}{markup.escape(summary.study_name)} (MLflow run "
        f"{markup.escape(summary.study_run_id)}): {len(trials)} trials, {done} "
        f"with an objective value. Objective: "
        f"{markup.escape(summary.objective or 'none found')}, "
        f"{summary.direction}d ({source}).{best_text}</p>"
    )
    # The six fixed columns come first; then parameters, most important first.
    params = (list(summary.importances) or list(trials.columns[6:]))[:8]
    headers = ["trial", "run name", "status", summary.objective or "objective", *params]
    rows = [
        [
            _number(row["number"]),
            markup.escape(row["run_name"])
            + (" (this model)" if row["is_model"] else ""),
            markup.escape(row["status"]),
            _number(row["value"]),
            *(markup.escape(row[p]) if pd.notna(row[p]) else "" for p in params),
        ]
        for _, row in trials.iterrows()
    ]
    classes = ["model" if flag else "" for flag in trials["is_model"]]
    parts = [
        '<section id="study"><h2>Study</h2>',
        intro,
        '<div class="scroll">',
        markup.table(headers, rows, text_columns=(1, 2), row_classes=classes),
        "</div>",
    ]
    if done:
        parts.append(markup.figure(_uri(plot_history(summary)), "Optimisation history"))
    if summary.importances:
        parts.append(
            markup.figure(_uri(plot_importances(summary)), "Parameter importances")
        )
    parts.append(f'<p class="note">{markup.escape(summary.importance_note)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _notes(model: Model, scored: ScoreResult) -> str:
    from grindwatch.explain import element_axis

    axis = element_axis(model)
    elements = {
        "time step": "time steps within each window",
        "band": "frequency bands of each window's spectrum",
        "feature": "per-channel statistics of each window",
        "value": "features of the table",
    }[axis.name]
    method = ATTRIBUTION_METHODS.get(model.config.detector.family, "")
    text = (
        f"Attribution: the departure from normal is split over channels and "
        f"{elements}, using {method}. Shares are each channel's part of that "
        "sum. Channel and band values come from the detector's input, after "
        "the model's per-channel scaling."
    )
    if axis.unit == "fs":
        text += (
            " The sample rate is not known, so band frequencies are given as "
            "fractions of it (fs)."
        )
    skipped = "".join(
        f"<li>{markup.escape(s['path'])}: {markup.escape(s['reason'])}</li>"
        for s in scored.skipped
    )
    listing = f"<p>Skipped files:</p><ul>{skipped}</ul>" if skipped else ""
    return (
        f'<section id="notes"><h2>Notes</h2><p class="note">{text}</p>'
        f"{listing}</section>"
    )


def build_report(
    model: Model,
    recordings: RecordingSet | list[Recording],
    scored: ScoreResult | None = None,
    *,
    study: StudySummary | None = None,
    max_details: int = DEFAULT_MAX_DETAILS,
    title: str | None = None,
    progress: ProgressCallback | None = None,
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
    """
    from grindwatch.explain import explain_recording

    if max_details < 0:
        raise ValueError(f"max_details={max_details} must be 0 or more")
    recordings = list(recordings)
    if scored is None:
        scored = model.score(recordings, progress=progress)
    by_name = {recording.name: recording for recording in recordings}
    table = scored.recordings.sort_values("score", ascending=False, kind="stable")
    flagged = [n for n in table.loc[table["flag"], "recording"] if n in by_name]
    chosen = flagged[:max_details]
    normal = [
        by_name[n] for n in table.loc[~table["flag"], "recording"] if n in by_name
    ]
    ranks = {name: rank for rank, name in enumerate(table["recording"], start=1)}
    anchors = {name: f"rec-{ranks[name]}" for name in chosen}
    title = title or f"grindwatch report: {len(table)} recordings"

    explanations = {}
    for done, name in enumerate(chosen, start=1):
        explanations[name] = explain_recording(model, by_name[name])
        if progress is not None:
            progress("explain", done, len(chosen))
    neighbours = nearest_normal(model, [by_name[n] for n in chosen], normal)
    details = []
    for done, name in enumerate(chosen, start=1):
        details.append(
            _detail(
                model, anchors[name], ranks[name], explanations[name], neighbours[name]
            )
        )
        if progress is not None:
            progress("figures", done, len(chosen))

    omitted = int(table["flag"].sum()) - len(chosen)
    heading = (
        f"<h2>Flagged recordings</h2><p>{len(chosen)} of {int(table['flag'].sum())} "
        "flagged recordings have a detail section, highest scores first."
    )
    if omitted:
        heading += (
            f" {omitted} more flagged recordings are listed in the table only; "
            "raise the detail limit to include them."
        )
    heading += "</p>"
    body = [
        _header(model, scored, title),
        '<section class="overview">',
        _distribution(model, scored),
        _recordings_table(model, scored, anchors),
        "</section>",
        '<section id="details">',
        heading,
        *details,
        "</section>",
    ]
    if study is not None:
        body.append(_study_section(study))
    body.append(_notes(model, scored))
    return markup.page(title, "".join(body))


def write_report(text: str, path: str | Path) -> Path:
    """Write the report via a temporary file and a rename, so a reader never sees
    half a file and an interrupted write keeps any earlier report."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_scores(path: str | Path, threshold: float) -> ScoreResult:
    """Read recording scores written by ``grindwatch score --output`` and the window
    scores beside them (NAME.windows.csv or .parquet)."""
    from grindwatch.pipeline import ScoreResult
    from grindwatch.results import window_table_path

    path = Path(path)
    windows_path = window_table_path(path)
    for needed in (path, windows_path):
        if not needed.is_file():
            raise InputError(
                needed,
                "score table not found",
                "pass the --output file of 'grindwatch score'; its window table "
                "must lie beside it",
            )
    read = pd.read_parquet if path.suffix.lower() == ".parquet" else pd.read_csv
    recordings, windows = read(path), read(windows_path)
    for name, frame in (("recording", recordings), ("window", windows)):
        missing = {"recording", "score", "flag"} - set(frame.columns)
        if missing:
            raise InputError(
                path if name == "recording" else windows_path,
                f"is not a {name} score table: columns {sorted(missing)} are missing",
                "pass the --output file of 'grindwatch score'",
            )
    recordings["recording"] = recordings["recording"].astype(str)
    return ScoreResult(windows=windows, recordings=recordings, threshold=threshold)


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
    progress: ProgressCallback | None = None,
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
        Read the model's study from MLflow and record the report as an artifact
        of a new scoring run nested under the model's run. Off as well when the
        model's config disables tracking.
    """
    from grindwatch.pipeline import Model, load_model, read_data

    started = time.perf_counter()
    if not isinstance(model, Model):
        model = load_model(model)
    recordings = read_data(data, model.config)
    if scores is not None:
        scored = read_scores(scores, model.threshold_.value)
        scored.skipped = [
            {"path": str(s.path), "reason": s.reason} for s in recordings.skipped
        ]
    else:
        scored = model.score(recordings, progress=progress)
    tracking = track and model.config.tracking.enabled
    study = _study_for(model) if tracking else None
    text = build_report(
        model,
        recordings,
        scored,
        study=study,
        max_details=max_details,
        title=title,
        progress=progress,
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
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
        scored=scored,
    )
    if tracking:
        result.run_id = _log(model, scored, path)
    logger.info(
        "wrote %s (%d bytes) in %.1f s", path, result.size_bytes, result.seconds
    )
    return result


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
