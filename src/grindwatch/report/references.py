"""Reference recordings: known-good recordings that the report compares with.

When every scored recording is flagged, no scored recording can serve as the
nearest normal one. Reference recordings (the training data, or any recordings
known to be good) fill that gap: they are read and matched to the model like the
scored data, but they are not rows of the report's table. A reference recording
that the model flags is left out of the candidates, because the detail section
calls its comparison a normal recording, which the model's own verdict
contradicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grindwatch._nouns import item_noun
from grindwatch.exceptions import InputError, shorten_list

if TYPE_CHECKING:
    from grindwatch.io import Recording, RecordingSet
    from grindwatch.pipeline import Model

logger = logging.getLogger(__name__)

__all__ = ["ReferenceSet", "prepare_references", "read_references"]

REFERENCE_FIX = (
    "pass known-good recordings, such as the training data, with --reference "
    "(the reference argument of create_report)"
)


@dataclass
class ReferenceSet:
    """Reference recordings sorted by whether the report can compare with them.

    Attributes
    ----------
    normal : list of Recording
        Recordings the model scores as normal, matched to the model (its
        channels, in its order, at its rate). These are the candidates.
    flagged : list of Recording
        Recordings the model flags; they are not candidates.
    skipped : list of dict
        Files or recordings that could not be used, each with "path" and
        "reason": unreadable files, and recordings that do not match the model.
    n_scored_too : int
        Reference recordings left out because the same recording is among the
        scored data, where it is already a candidate when it is normal.
    """

    normal: list[Recording] = field(default_factory=list)
    flagged: list[Recording] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    n_scored_too: int = 0

    @property
    def n_given(self) -> int:
        """Reference recordings read, whether usable or not."""
        return len(self.normal) + len(self.flagged) + len(self.skipped)


def read_references(source: Any, model: Model) -> RecordingSet:
    """Read reference recordings with the model's reading options, as scored data is.

    Raises
    ------
    InputError
        If a path does not exist, or no file in ``source`` can be read. The
        message marks the file as a reference recording.
    """
    from grindwatch.pipeline import read_data

    try:
        return read_data(source, model.config, model)
    except InputError as error:
        raise InputError(
            error.path,
            f"reference recordings: {error.problem}",
            error.fix or REFERENCE_FIX,
        ) from None


def prepare_references(
    model: Model,
    recordings: RecordingSet | list[Recording],
    scored: Sequence[Recording] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> ReferenceSet:
    """Match reference recordings to the model, score them and keep the normal ones.

    Parameters
    ----------
    model : Model
    recordings : RecordingSet or list of Recording
        The reference recordings as read. Files the reader skipped are carried
        over to ``ReferenceSet.skipped``.
    scored : list of Recording
        The scored recordings. A reference recording with the same source file
        and name is left out, because it is a candidate already when it is normal.
    progress : callable, optional
        Called with ("reference", done, total) while scoring.

    Raises
    ------
    InputError
        If no reference recording matches the model (missing channels, another
        sample rate, shorter than one window), or, with ``data.strict``, if any
        does not.
    """
    references = ReferenceSet(
        skipped=[
            {"path": str(s.path), "reason": s.reason}
            for s in getattr(recordings, "skipped", [])
        ]
    )
    matched = _match_references(model, recordings, scored, references)
    if not matched:
        if references.skipped:
            _raise_none_usable(model, references.skipped)
        return references

    # Every matched recording passed the scoring checks, so the score table has
    # one row per recording, in order.
    stage_progress = None
    if progress is not None:

        def stage_progress(_stage: str, done: int, total: int) -> None:
            progress("reference", done, total)

    scores = model.score(matched, progress=stage_progress, attribution=False)
    flags = scores.recordings["flag"].to_numpy(bool)
    for recording, flag in zip(matched, flags, strict=True):
        (references.flagged if flag else references.normal).append(recording)
    if references.flagged:
        items = item_noun(model.kind_)
        logger.warning(
            "%d of %d reference %s are flagged by the model and are not "
            "used as normal %s: %s",
            len(references.flagged),
            len(matched),
            items,
            items,
            shorten_list([r.name for r in references.flagged], limit=3),
        )
    return references


def _match_references(
    model: Model,
    recordings: RecordingSet | list[Recording],
    scored: Sequence[Recording],
    references: ReferenceSet,
) -> list[Recording]:
    """Return the references matched to the model, and record the ones left out."""
    seen = {_identity(r) for r in scored if r.source is not None}
    matched = []
    for recording in recordings:
        if recording.source is not None and _identity(recording) in seen:
            references.n_scored_too += 1
            continue
        try:
            recording = model.match_recordings([recording])[0]
            # Cutting windows rejects a recording shorter than one window.
            model.prepare([recording])
        except InputError as error:
            if model.config.data.strict:
                raise InputError(
                    error.path,
                    f"reference recording does not match the model: {error.problem}",
                    error.fix,
                ) from None
            logger.warning("reference recording not used: %s", error)
            references.skipped.append({"path": error.path, "reason": error.problem})
            continue
        matched.append(recording)
    return matched


def _identity(recording: Recording) -> tuple[str, str]:
    """Return the recording's resolved source path and its name within the file."""
    # NOTE: names are made unique per data set, so a file whose stem clashes with
    # another file's in only one of the two sets is not recognised as the same.
    return (str(Path(recording.source).resolve()), recording.name)


def _raise_none_usable(model: Model, skipped: list[dict[str, str]]) -> None:
    reasons = "; ".join(f"{item['path']}: {item['reason']}" for item in skipped[:3])
    if len(skipped) > 3:
        reasons += f"; and {len(skipped) - 3} more"
    needs = [f"the model's channels {shorten_list(model.channels_)}"]
    if model.kind_ == "signals":
        if model.sample_rate_:
            needs.append(
                f"its sample rate of {model.sample_rate_:g} Hz "
                "(--set data.resample=true resamples other rates)"
            )
        needs.append(f"at least {model.window_length_} samples")
    raise InputError(
        skipped[0]["path"],
        f"no reference recording can be compared with ({reasons})",
        f"pass reference recordings with {', '.join(needs)}, such as the training data",
    )
