"""Score a single-stream file larger than memory, chunk by chunk.

The file is read in chunks of ``chunk_samples`` samples (see
``grindwatch.io.chunks``), windows are cut across chunk borders exactly as for a
whole recording, and each batch of windows is scored and dropped. Memory grows with
the chunk and batch sizes and with the per-window score table, not with the file.
The window scores equal those of scoring the whole file in memory, up to float32
rounding where a chunk gives the detector fewer windows at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from grindwatch.exceptions import (
    InputError,
    lookalike_names,
    missing_channels_fix,
    shorten_list,
)
from grindwatch.io.chunks import ChunkedStream, iter_windows, open_stream
from grindwatch.io.dataset import source_path
from grindwatch.io.frames import warn_irregular_time
from grindwatch.io.labels import label_folder

if TYPE_CHECKING:
    from grindwatch.pipeline import Model, ProgressCallback, ScoreResult

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CHUNK_SAMPLES", "score_chunked"]

DEFAULT_CHUNK_SAMPLES = 1 << 22  # 4 Mi samples: 16 MiB per float32 channel
# Windows cut and scored at once: at most this many, and at most a chunk's
# samples, but never fewer than _MIN_BATCH_WINDOWS, so that a small chunk does not
# score one window per call. This bounds the window array and the front end's
# temporary arrays, which with a short hop exceed the chunk many times, and with
# long windows would take 1 GiB per channel for 4096 windows of 65536 samples.
_BATCH_WINDOWS = 4096
_MIN_BATCH_WINDOWS = 16


def _batch_windows(window_length: int, chunk_samples: int) -> int:
    """Return how many windows of ``window_length`` to cut and score at once."""
    fit = chunk_samples // window_length
    return max(_MIN_BATCH_WINDOWS, min(_BATCH_WINDOWS, fit))


def _channel_index(model: Model, stream: ChunkedStream, path: Path) -> list[int]:
    stream_channels = stream.channels
    missing = [name for name in model.channels_ if name not in stream_channels]
    text = [
        name
        for name in missing
        if name in stream.metadata.get("non_numeric_columns", [])
    ]
    if text:
        raise InputError(
            path,
            f"columns {text} are not numbers in the Parquet schema (but text, "
            "booleans or another type)",
            "write those columns as numbers; for numbers stored as text, scoring "
            "the file whole (--set data.chunk_samples=null) names the first cell "
            "that is not a number",
        )
    if missing:
        raise InputError(
            path,
            f"missing channels {shorten_list(missing)}; it has "
            f"{shorten_list(stream_channels)}"
            f"{lookalike_names(missing, stream_channels)}",
            missing_channels_fix(
                stream_channels,
                "record those channels or train a model on the channels this file has",
            ),
        )
    return [stream_channels.index(name) for name in model.channels_]


def _check_rate(model: Model, rate: float | None, path: Path) -> None:
    if model.sample_rate_ is None or rate is None:
        return
    if not np.isclose(rate, model.sample_rate_):
        # Resampling needs filter state carried across chunks, which is not built.
        raise InputError(
            path,
            f"sample rate {rate:g} differs from the model's {model.sample_rate_:g}, "
            "and chunked scoring cannot resample",
            "resample the file first, or score it whole with --set "
            "data.chunk_samples=null --set data.resample=true",
        )


def score_chunked(
    model: Model,
    path: str | Path,
    chunk_samples: int | None = None,
    progress: ProgressCallback | None = None,
) -> ScoreResult:
    """Score one large file with bounded memory.

    Parameters
    ----------
    model : Model
        A fitted signal model.
    path : path
        A ``.npy``, ``.bin``/``.raw``, Parquet or HDF5 file holding one stream.
    chunk_samples : int, optional
        Samples read at a time; defaults to the model config's
        ``data.chunk_samples``, else DEFAULT_CHUNK_SAMPLES.
    progress : callable, optional
        Called with ("score", samples done, total samples).

    NOTE: the cycle check (``grindwatch.cycles``) is not applied, because a stream
    too large for memory is not one process cycle. Its table has no cycle columns,
    and a warning says so when the model has a cycle check.

    Raises
    ------
    ValueError
        If ``chunk_samples`` is below 1.
    InputError
        If the file is unreadable, lacks a model channel, has another sample rate
        than the model, is shorter than one window, or contains a NaN or infinite
        sample (named with its channel and position), or if the model's
        ``data.nan_policy`` is not ``raise``.
    """
    from grindwatch.pipeline import ScoreResult, scoring_options

    path = Path(path)
    if chunk_samples is not None and chunk_samples < 1:
        raise ValueError(f"chunk_samples={chunk_samples} must be 1 or more")
    if model.kind_ != "signals":
        raise InputError(
            path,
            "cannot be scored in chunks by a model trained on a feature table",
            "score feature tables whole, with grindwatch.score, or score this "
            "file with a model trained on signal recordings",
        )
    options = scoring_options(model)
    if options.nan_policy != "raise":
        # Checked before reading, so that the CLI reports it as an input error
        # instead of failing in the middle of the file.
        raise InputError(
            path,
            f"cannot be scored in chunks with data.nan_policy={options.nan_policy}, "
            "because filling a gap needs the next finite sample, which may lie "
            "chunks ahead",
            "score it with --set data.nan_policy=raise (a NaN or infinite sample "
            "then raises), or with --set data.chunk_samples=null to read it whole",
        )
    chunk_samples = chunk_samples or options.chunk_samples or DEFAULT_CHUNK_SAMPLES
    stream = open_stream(path, options)
    warn_irregular_time([(path, stream.metadata)])
    index = _channel_index(model, stream, path)
    _check_rate(model, stream.sample_rate, path)
    if model.cycle_check is not None:
        # Without this warning, a recording that only the cycle check would flag,
        # such as a cycle without a part, passes silently.
        logger.warning(
            "%s is scored in chunks (data.chunk_samples), so the model's cycle "
            "check does not judge it and its verdict rests on its windows only; "
            "score it whole (--set data.chunk_samples=null) to apply the check",
            path,
        )
    if stream.n_samples < model.window_length_:
        raise InputError(
            path,
            f"has {stream.n_samples} samples, fewer than one window of "
            f"{model.window_length_}, the window length this model was trained "
            "with",
            "leave this recording out, or score it with a model trained on "
            "shorter windows",
        )

    starts, scores = [], []
    chunks = stream.chunks(chunk_samples, options.nan_policy)
    for window_starts, windows in iter_windows(
        chunks,
        model.window_length_,
        model.hop_,
        max_windows=_batch_windows(model.window_length_, chunk_samples),
    ):
        scores.append(model.window_scores(windows[:, index]))
        starts.append(window_starts)
        if progress is not None:
            done = int(window_starts[-1]) + model.window_length_
            progress("score", min(done, stream.n_samples), stream.n_samples)

    start = np.concatenate(starts)
    score = np.concatenate(scores).astype(np.float64)
    logger.info("scored %d windows of %s in chunks", len(score), path)
    return ScoreResult(
        windows=_window_table(model, path.stem, start, score),
        recordings=pd.DataFrame([_recording_row(model, path, score)]),
        threshold=model.threshold_.value,
    )


def _window_table(model: Model, name: str, start: np.ndarray, score: np.ndarray):  # noqa: ANN202
    frame = pd.DataFrame(
        {
            "recording": name,
            "window": np.arange(len(score)),
            "start_sample": start,
            "score": score,
            "flag": score > model.threshold_.value,
        }
    )
    if model.sample_rate_:
        frame.insert(3, "start_s", start / model.sample_rate_)
        frame.insert(4, "end_s", (start + model.window_length_) / model.sample_rate_)
    return frame


def _recording_row(model: Model, path: Path, score: np.ndarray) -> dict:
    value = model.aggregate(score)
    row = {
        "recording": path.stem,
        "source": source_path(path),
        "n_windows": int(len(score)),
        "score": value,
        "flag": bool(value > model.threshold_.value),
        "max_window_score": float(score.max()),
        "flagged_windows": int((score > model.threshold_.value).sum()),
    }
    # One file given by name: only its own folder's name may label it.
    found = label_folder(path, path.parent)
    if found is not None:
        row["label"] = found[0]
        row["label_source"] = f"folder {found[1].name}"
    return row
