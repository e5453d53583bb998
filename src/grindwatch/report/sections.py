"""The HTML sections of the report: header, overview, details, study and notes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grindwatch._nouns import item_noun
from grindwatch._version import __version__
from grindwatch.explain import format_seconds
from grindwatch.report import html as markup

if TYPE_CHECKING:
    from grindwatch.explain import RecordingExplanation
    from grindwatch.io import Recording
    from grindwatch.pipeline import Model, ScoreResult
    from grindwatch.report.references import ReferenceSet
    from grindwatch.report.study import StudySummary

__all__ = [
    "detail",
    "distribution",
    "header",
    "notes",
    "recordings_table",
    "study_section",
]

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


def _uri(figure) -> str:  # noqa: ANN001
    from grindwatch.report.figures import figure_to_data_uri

    return figure_to_data_uri(figure)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return markup.escape(value)


def header(model: Model, scored: ScoreResult, title: str) -> str:
    recordings = scored.recordings
    n_flagged = int(recordings["flag"].sum())
    threshold = f"threshold {scored.threshold:.4g}"
    run = f", MLflow run {model.run_id_}" if model.run_id_ else ""
    family = markup.escape(model.config.detector.family)
    if model.kind_ == "table":
        counts = f" (above the {threshold})"
        shape = f"{family} on a feature table of {len(model.channels_)} features"
    else:
        windows = scored.windows
        counts = (
            f"; {int(windows['flag'].sum())} of {len(windows)} windows above the "
            f"{threshold}"
        )
        rate = f"{model.sample_rate_:g} Hz" if model.sample_rate_ else "not known"
        shape = (
            f"{family} on {markup.escape(model.config.frontend.kind)}, "
            f"{len(model.channels_)} channels, windows of {model.window_length_} "
            f"samples, hop {model.hop_}, sample rate {rate}"
        )
    if "cycle_flag" in recordings:
        n_cycle = int(recordings["cycle_flag"].astype(bool).sum())
        counts += f"; {n_cycle} flagged by the cycle check"
    if scored.skipped:
        # Without this count, a reader who stops at the header would take every
        # file given as scored, because the reasons are listed only in the notes.
        files = "file" if len(scored.skipped) == 1 else "files"
        counts += (
            f'; <a href="#skipped"><b>{len(scored.skipped)} {files} skipped</b></a>, '
            "not scored"
        )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<header><h1>{markup.escape(title)}</h1>"
        f'<p class="meta">{len(recordings)} {item_noun(model.kind_, len(recordings))} '
        f"scored, <b>{n_flagged} "
        f"flagged</b>{counts}. Model: {shape}{markup.escape(run)}. Generated "
        f"{generated} by grindwatch {__version__}.</p></header>"
    )


def _aggregate_sentence(model: Model) -> str:
    if model.kind_ == "table":
        return "Each row of the feature table is one cycle, scored on its own."
    settings = model.config.aggregate
    rule = {
        "max": "the maximum",
        "mean": "the mean",
        "quantile": f"the {settings.quantile:g} quantile",
    }[settings.method]
    text = (
        f"A recording's score is {rule} of its window scores, and it is flagged "
        "when that exceeds the same threshold."
    )
    if model.cycle_check is not None:
        text += (
            " It is also flagged when the cycle check finds its whole profile "
            f"unlike the training recordings. {model.cycle_check.describe()}"
        )
    return text


def distribution(model: Model, scored: ScoreResult) -> str:
    from grindwatch.report.scores import plot_score_distribution

    figure = plot_score_distribution(
        model.training_scores_,
        model.threshold_,
        scored.windows["score"].to_numpy(),
        scored.recordings["score"].to_numpy(),
        kind=model.kind_,
        recording_flags=scored.recordings["flag"].to_numpy(),
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


def ranked(recordings: pd.DataFrame) -> pd.DataFrame:
    """Sort the recordings into the report's order, which gives each its rank.

    A recording that the cycle check flags can have a low window score. So with
    the check, flagged recordings come first, and each group is sorted by score.
    """
    order = ["flag", "score"] if "cycle_score" in recordings else "score"
    return recordings.sort_values(order, ascending=False, kind="stable")


def recordings_table(model: Model, scored: ScoreResult, anchors: dict[str, str]) -> str:
    from grindwatch.explain import element_axis

    has_cycle = "cycle_score" in scored.recordings
    frame = ranked(scored.recordings)
    axis_column = element_axis(model).column
    has_axis = axis_column is not None and axis_column in frame
    has_top = "top_channel" in frame
    has_label = "label" in frame
    # The header names the item, but the frame's column stays "recording".
    headers = ["#", item_noun(model.kind_, 1), "score", "margin", "verdict"]
    if model.kind_ == "signals":
        headers.insert(4, "flagged windows")
    if has_cycle:
        headers.insert(headers.index("verdict"), "cycle score")
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
        if has_cycle:
            mark = " (flags)" if record["cycle_flag"] else ""
            cells.append(f"{record['cycle_score']:.3g}{mark}")
        cells.append("ANOMALOUS" if record["flag"] else "normal")
        # When only the cycle check flags the recording, its windows' top channel
        # and band come from windows below the threshold, so the cycle check's
        # channel is named and the band left empty, as in score's table.
        cycle_only = has_cycle and record["cycle_flag"] and not margin > 0
        if has_top and cycle_only:
            channel = record["cycle_channel"]
            channel = channel if isinstance(channel, str) else "length"
            cells.append(
                f'<span class="name">{markup.escape(channel)}</span> (cycle check)'
            )
        elif has_top:
            cells.append(
                f'<span class="name">{markup.escape(record["top_channel"])}</span> '
                f"({record['top_channel_share']:.0%})"
            )
        if has_axis and cycle_only:
            cells.append("")
        elif has_axis:
            value = _axis_cell(model, axis_column, record[axis_column])
            cells.append(f'<span class="name">{value}</span>')
        if has_label:
            cells.append(_label_cell(record["label"]))
        rows.append(cells)
        classes.append("flag" if record["flag"] else "")
    text = [1] + [headers.index(h) for h in headers if h.startswith("top")]
    items = item_noun(model.kind_).capitalize()
    title = f"{items}, flagged first, by score" if has_cycle else f"{items} by score"
    return (
        f'<div id="recordings"><h2>{title}</h2><div class="scroll">'
        + markup.table(headers, rows, text_columns=text, row_classes=classes)
        + "</div></div>"
    )


def _axis_cell(model: Model, column: str, value: Any) -> str:
    if column == "top_sample":
        if model.sample_rate_:
            return f"{format_seconds(int(value) / model.sample_rate_)} s"
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

    channels = explanation.recording.channels
    spectrogram_channel = explanation.summary["top_channel"]
    caption = (
        "Spectrogram of the channel with the largest contribution; outlined: "
        "flagged windows."
    )
    cycle = explanation.cycle
    if explanation.cycle_only() and cycle is not None and cycle.channel in channels:
        # No window is flagged, so the channel that the cycle check names is the
        # one to look at, not the top channel of windows below the threshold.
        spectrogram_channel = cycle.channel
        caption = "Spectrogram of the channel that the cycle check names."
    top = channels.index(spectrogram_channel)
    name = explanation.axis.name
    if name == "time step":
        heatmap_caption = (
            "Contribution to the score of each channel at each sample, averaged "
            "where windows overlap"
        )
    else:
        heatmap_caption = (
            f"Contribution to the score: {name}-level values summed per channel "
            f"and window (left), and per channel and {name} over the flagged "
            "windows, or the worst window when none is flagged (right)"
        )
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
            f"{heatmap_caption}; darker is further from normal, on a square-root "
            "colour scale so smaller departures stay visible.",
        ),
        markup.figure(
            _uri(figures.spectrograms(explanation, top, reference)),
            f"Spectrogram of channel {spectrogram_channel}",
            caption,
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
    values = np.maximum(explanation.contributions[0, :, 0], 0)
    total = float(values.sum()) or 1.0
    order = np.argsort(-values, kind="stable")[:15]
    row = explanation.recording.data[:, 0]
    other = None
    if reference is not None:
        # Scoring reads files without reordering their columns to the model's.
        other = reference.select_channels(names).data[:, 0]
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


def detail(
    model: Model,
    anchor: str,
    rank: int,
    explanation: RecordingExplanation,
    neighbour: tuple[Recording, float] | None,
    *,
    from_reference: bool = False,
    missing: str = "",
) -> str:
    """Return the section of one flagged recording.

    ``from_reference`` marks a neighbour that is a reference recording rather
    than a scored one. ``missing`` explains why there is no neighbour and names
    the fix. It is shown in its own paragraph when ``neighbour`` is None.
    """
    recording = explanation.recording
    item = item_noun(model.kind_, 1)
    if neighbour is None:
        reference = None
        compared = ""
        no_comparison = (
            f'<p class="no-comparison">{markup.escape(missing)}</p>' if missing else ""
        )
    else:
        reference, distance = neighbour
        origin = ""
        if from_reference:
            path = f", {reference.source}" if reference.source else ""
            origin = f" (a reference {item}{markup.escape(path)})"
        compared = (
            f" Nearest normal {item}: {markup.escape(reference.name)}{origin}, "
            f"at distance {distance:.3g} between mean standardised features."
        )
        no_comparison = ""
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
        f"<p>{markup.escape(explanation.describe())}{compared}</p>{no_comparison}"
        f"{body}"
        '<p class="note"><a href="#recordings">Back to the table</a></p></article>'
    )


def _parameter_cell(value: Any) -> str:
    """Format an MLflow parameter string, shortening long decimals."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return markup.escape(value)
    if "." in str(value) or "e" in str(value).lower():
        return f"{number:.4g}"
    return markup.escape(value)


def _other_settings(row: pd.Series, names: list[str]) -> str:
    """Join a trial's settings outside the table's columns, e.g. "knn.n_neighbors
    7, knn.metric euclidean"; the trial's family leaves the others empty."""
    cells = [(name, _parameter_cell(row[name])) for name in names]
    return ", ".join(f"{markup.escape(name)} {cell}" for name, cell in cells if cell)


def _model_mark(summary: StudySummary) -> str:
    return " (this model's trial)" if summary.retrained else " (this model)"


def study_section(summary: StudySummary, kind: str = "signals") -> str:
    """Describe the Optuna study behind the model; ``kind`` is the model's data
    kind, which names the training items."""
    from grindwatch.report.study import plot_history, plot_importances

    trials = summary.trials
    done = int(trials["completed"].sum())
    model_rows = trials[trials["is_model"]]
    if model_rows.empty:
        position = "This model belongs to study "
    elif summary.retrained:
        position = (
            f"This model is trial {int(model_rows['number'].iloc[0])} retrained "
            f"on all training {item_noun(kind)}, from study "
        )
    else:
        position = f"This model is trial {int(model_rows['number'].iloc[0])} of study "
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
    measure = (
        f" ({markup.escape(summary.objective_name)})"
        if summary.objective_name and summary.objective_name != summary.objective
        else ""
    )
    intro = (
        f"<p>{position}{markup.escape(summary.study_name)} (MLflow run "
        f"{markup.escape(summary.study_run_id)}): {len(trials)} trials, {done} "
        f"completed with an objective value. Objective: "
        f"{markup.escape(summary.objective or 'none found')}{measure}, "
        f"{summary.direction}d ({source}).{best_text}</p>"
    )
    # Parameters most important first, or in logged order without importances.
    params = (list(summary.importances) or summary.parameters)[:8]
    # The family's own settings (n_neighbors, filters...) share one column, so
    # two trials of one family differ in the table.
    others = [name for name in summary.settings if name not in params]
    headers = ["trial", "run name", "status", summary.objective or "objective", *params]
    if others:
        headers.append("other settings")
    rows = [
        [
            _number(row["number"]),
            markup.escape(row["run_name"])
            + (_model_mark(summary) if row["is_model"] else ""),
            markup.escape(_trial_status(row)),
            _number(row["value"]),
            *(_parameter_cell(row[p]) for p in params),
            *([_other_settings(row, others)] if others else []),
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


def _trial_status(row: pd.Series) -> str:
    """Return the trial's state, with the epochs a pruned or failed one trained."""
    stopped = row.get("stopped_step")
    if stopped is None or not np.isfinite(stopped):
        return str(row["status"])
    # MLflow steps count epochs from 0, so the last step logged is one less.
    epochs = int(stopped) + 1
    return f"{row['status']} after {epochs} epoch{'s' if epochs != 1 else ''}"


def notes(
    model: Model, scored: ScoreResult, reference: ReferenceSet | None = None
) -> str:
    from grindwatch.explain import element_axis

    axis = element_axis(model)
    elements = {
        "time step": "time steps within each window",
        "band": "frequency bands of each window's spectrum",
        "feature": "per-channel statistics of each window",
        "value": "features of the table",
    }[axis.name]
    method = ATTRIBUTION_METHODS.get(model.config.detector.family, "")
    if model.kind_ == "table":
        # A table row is its own single window.
        method = method.replace("training windows", "training rows")
    baseline = ""
    if getattr(model, "contribution_baseline_", None) is not None and (
        model.kind_ == "table"
    ):
        baseline = (
            ", less its mean over the training rows, so a feature that departs "
            "in every normal row does not top the attribution of every row; "
            "features below that level take no share"
        )
    elif getattr(model, "contribution_baseline_", None) is not None:
        baseline = (
            ", less its mean over the training windows, so a channel that is "
            "hard to reconstruct in every normal window does not top the "
            "attribution of every window; channels below that level take no share"
        )
    values = {
        "time step": "Sample",
        "band": "Band",
        "feature": "Statistic",
        "value": "Feature",
    }[axis.name]
    text = (
        f"Attribution: the departure from normal is split over channels and "
        f"{elements}, using {method}{baseline}. Shares are each channel's part of "
        f"that sum. {values} values come from the detector's input, after the "
        "model's per-channel scaling."
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
    listing = (
        f'<p id="skipped">Skipped files, not scored:</p><ul>{skipped}</ul>'
        if skipped
        else ""
    )
    if reference is not None:
        listing += _reference_notes(reference, item_noun(model.kind_))
    return (
        f'<section id="notes"><h2>Notes</h2><p class="note">{text}</p>'
        f"{listing}</section>"
    )


def _reference_notes(reference: ReferenceSet, items: str = "recordings") -> str:
    """List the reference recordings (``items``) that are not candidates, and why."""
    unused = [(_where(r), "flagged by this model") for r in reference.flagged]
    unused += [(item["path"], item["reason"]) for item in reference.skipped]
    if not unused:
        return ""
    entries = "".join(
        f"<li>{markup.escape(path)}: {markup.escape(reason)}</li>"
        for path, reason in unused
    )
    return f"<p>Reference {items} not used:</p><ul>{entries}</ul>"


def _where(recording: Recording) -> str:
    """Return the recording's file, and its name when the file contains several."""
    if recording.source is None:
        return recording.name
    if Path(recording.source).stem == recording.name:
        return str(recording.source)
    return f"{recording.source} ({recording.name})"
