"""The in-memory form of one recording and of a set of recordings."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Recording", "RecordingSet", "SkippedFile"]


@dataclass
class Recording:
    """One recording, normally one process cycle.

    Attributes
    ----------
    name : str
        Identifier used in results, unique within a data set (the file stem, or
        ``stem#row`` for a row of a feature table).
    data : ndarray of shape (n_channels, n_samples), float32
        The samples. A row of a feature table is stored as (n_features, 1).
        Integer arrays are converted to float32, other float types are kept.
        A float array is stored without a copy, so changing it later changes
        the recording: pass ``array.copy()`` when the buffer is reused.
    channels : list of str
        One name per row of ``data``. A tuple, NumPy array or pandas Index of
        names is stored as a list.
    sample_rate : float or None
        Samples per second, when the file or the user gives it. Must be finite
        and positive. Stored as a float.
    source : Path or None
        The file it was read from.
    label : int or None
        1 for anomalous, 0 for normal, None when unknown. Only ``evaluate`` reads it.
    sample_labels : ndarray of shape (n_samples,) or None
        Per-sample labels from a label column, for evaluation only.
    metadata : dict
        Anything else the reader found (format details, integer scale, meta.json).
    """

    name: str
    data: np.ndarray
    channels: list[str]
    sample_rate: float | None = None
    source: Path | None = None
    label: int | None = None
    sample_labels: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Readers check their values first. These checks catch recordings built
        # in Python, where a transposed array or a rate of 0 would otherwise be
        # scored as something else without any error.
        from grindwatch.exceptions import InputError

        if not isinstance(self.name, str):
            # Result tables and labels match recordings by their names as text.
            raise TypeError(
                f"Recording name must be a str, not {self.name!r}; pass str(name)"
            )
        if not self.name:
            raise InputError(
                self.source or "recording", "has an empty name", "give it a name"
            )
        if not isinstance(self.data, np.ndarray):
            raise TypeError(
                f"recording {self.name!r}: data must be a numpy array of shape "
                f"(n_channels, n_samples), not {type(self.data).__name__}; "
                "convert it with numpy.asarray"
            )
        if not (
            np.issubdtype(self.data.dtype, np.floating)
            or np.issubdtype(self.data.dtype, np.integer)
        ):
            raise TypeError(
                f"recording {self.name!r}: data has dtype {self.data.dtype}, which "
                "is not numeric; convert it with data.astype(numpy.float32)"
            )
        if np.issubdtype(self.data.dtype, np.integer):
            self.data = self.data.astype(np.float32)
        self.channels = self._channel_list(self.channels)
        self._check_shape()
        rate = self.sample_rate
        if isinstance(rate, np.ndarray) and rate.shape == ():
            # np.load of an .npz returns a stored scalar as a 0-d array.
            rate = rate.item()
        # bool is a subclass of int, and True would be read as 1 Hz.
        if rate is not None and not (
            isinstance(rate, (int, float, np.number))
            and not isinstance(rate, (bool, np.bool_))
            and np.isfinite(rate)
            and rate > 0
        ):
            raise InputError(
                self.name,
                f"sample rate {rate!r} is not a positive number of samples per second",
                "pass the rate in Hz (e.g. 1000.0), or None when it is unknown",
            )
        self.sample_rate = None if rate is None else float(rate)
        if self.label is not None:
            if not (
                isinstance(self.label, (int, np.integer, np.bool_))
                and self.label in (0, 1)
            ):
                raise InputError(
                    self.name,
                    f"label {self.label!r} is neither 0 nor 1",
                    "pass 1 for anomalous, 0 for normal or None when unknown",
                )
            self.label = int(self.label)
        if self.sample_labels is not None:
            shape = np.shape(self.sample_labels)
            if shape != (self.n_samples,):
                raise InputError(
                    self.name,
                    f"sample_labels has shape {shape}, not ({self.n_samples},)",
                    "pass one label per sample as a 1-D array, e.g. labels.ravel()",
                )

    def _channel_list(self, channels: Any) -> list[str]:
        """Return ``channels`` as a list of str, or raise TypeError.

        Any iterable of names is accepted (a tuple, a NumPy array, a pandas
        Index). A single str is rejected, because its characters would become
        the channel names.
        """
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
            raise TypeError(
                f"recording {self.name!r}: channels must be a list of names, one "
                f"per row of data, not {type(channels).__name__} {channels!r}; "
                "for one channel pass [name]"
            )
        if isinstance(channels, np.ndarray):
            names = channels.tolist()
        else:
            names = list(channels)
        wrong = [name for name in names if not isinstance(name, str)]
        if wrong:
            raise TypeError(
                f"recording {self.name!r}: channel names must be str, not "
                f"{wrong[0]!r} ({type(wrong[0]).__name__}); pass "
                "[str(name) for name in channels]"
            )
        return names

    def _check_shape(self) -> None:
        """Raise InputError unless ``data`` has one row per distinct channel name."""
        from grindwatch.exceptions import InputError

        shape = self.data.shape
        n_names = len(self.channels)
        if self.data.ndim != 2:
            fix = "pass an array of shape (n_channels, n_samples)"
            if self.data.ndim == 1:
                fix += ", for one channel data[numpy.newaxis, :]"
            raise InputError(
                self.name, f"data has shape {shape}, not 2 dimensions", fix
            )
        if shape[0] != n_names:
            fix = "pass one channel name per row of data"
            if shape[1] == n_names:
                fix = (
                    "data looks like (n_samples, n_channels); pass data.T, which "
                    "has one row per channel"
                )
            raise InputError(
                self.name,
                f"data has shape {shape}, {shape[0]} rows, but {n_names} channel "
                "names are given",
                fix,
            )
        if len(set(self.channels)) != n_names:
            counts = Counter(self.channels)
            repeated = sorted(name for name, count in counts.items() if count > 1)
            raise InputError(
                self.name,
                f"channel names {repeated} are given more than once",
                "give every channel its own name",
            )

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    def select_channels(self, names: list[str]) -> Recording:
        """Return a copy whose channels are ``names``, in that order.

        Raises
        ------
        InputError
            If any name is missing from this recording.
        """
        from grindwatch.exceptions import (
            InputError,
            lookalike_names,
            missing_channels_fix,
            shorten_list,
        )

        missing = [name for name in names if name not in self.channels]
        if missing:
            raise InputError(
                self.source or self.name,
                f"missing channels {shorten_list(missing)}; it has "
                f"{shorten_list(self.channels)}"
                f"{lookalike_names(missing, self.channels)}",
                missing_channels_fix(
                    self.channels,
                    "record those channels or train a model on the channels this "
                    "file has",
                ),
            )
        index = [self.channels.index(name) for name in names]
        return Recording(
            name=self.name,
            data=self.data[index],
            channels=list(names),
            sample_rate=self.sample_rate,
            source=self.source,
            label=self.label,
            sample_labels=self.sample_labels,
            metadata=dict(self.metadata),
        )


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a data set, and why."""

    path: Path
    reason: str


@dataclass
class RecordingSet:
    """The recordings read from a data source, plus the files that were skipped.

    ``kind`` is ``"signals"`` for time series and ``"table"`` for per-cycle feature
    rows, where each recording holds one row.
    """

    recordings: list[Recording]
    skipped: list[SkippedFile] = field(default_factory=list)
    kind: str = "signals"

    def __post_init__(self) -> None:
        # Checked here because a set built in Python would otherwise fail later
        # with an AttributeError, or train a model of an unknown kind.
        message = (
            "RecordingSet needs a list of grindwatch.Recording objects; wrap "
            "each array as Recording(name, data, channels, sample_rate)"
        )
        if isinstance(self.recordings, (str, bytes, np.ndarray)) or not isinstance(
            self.recordings, Iterable
        ):
            raise TypeError(message)
        if not isinstance(self.recordings, list):
            self.recordings = list(self.recordings)
        if not all(isinstance(item, Recording) for item in self.recordings):
            raise TypeError(message)
        if self.kind not in ("signals", "table"):
            raise ValueError(
                f"RecordingSet kind {self.kind!r} is invalid; use 'signals' for "
                "time series or 'table' for per-cycle feature rows"
            )

    def __len__(self) -> int:
        return len(self.recordings)

    def __iter__(self):  # noqa: ANN204 - plain iterator over recordings
        return iter(self.recordings)

    @property
    def channels(self) -> list[str]:
        return self.recordings[0].channels if self.recordings else []

    @property
    def sample_rate(self) -> float | None:
        return self.recordings[0].sample_rate if self.recordings else None

    def group_by(self, key: str) -> dict[str | None, RecordingSet]:
        """Split into one set per value of a metadata field, e.g. ``tool``.

        The field is looked up in ``metadata["meta"]`` (a cycle folder's meta.json)
        first, then in ``metadata``; recordings without it go under None. Each
        group's ``skipped`` is empty, because a skipped file has no metadata.
        """
        groups: dict[str | None, list[Recording]] = {}
        for recording in self.recordings:
            meta = recording.metadata.get("meta", {})
            value = meta.get(key, recording.metadata.get(key))
            groups.setdefault(None if value is None else str(value), []).append(
                recording
            )
        return {
            value: RecordingSet(members, [], self.kind)
            for value, members in groups.items()
        }

    def select_channels(self, names: list[str]) -> RecordingSet:
        """Return a set whose recordings keep only the channels ``names``."""
        return RecordingSet(
            [recording.select_channels(names) for recording in self.recordings],
            list(self.skipped),
            self.kind,
        )

    def duplicate_channels(self) -> dict[str, str]:
        """Map each channel equal to an earlier one in every recording to that one.

        Equal means the same samples, bit for bit, in every recording: a feature
        column copied under a second name, or a signal wired to two inputs.
        Channels that only correlate are not duplicates, and neither are
        constant channels: two dead channels are equal, but either may come back
        to life on its own.
        """
        channels = self.channels
        digests = [hashlib.blake2b(digest_size=16) for _ in channels]
        low = np.full(len(channels), np.inf)
        high = np.full(len(channels), -np.inf)
        batch: list[np.ndarray] = []

        def flush() -> None:
            if batch:
                block = np.concatenate(batch, axis=1)
                for row, digest in zip(block, digests, strict=True):
                    digest.update(np.ascontiguousarray(row).tobytes())
                np.minimum(low, np.nanmin(block, axis=1), out=low)
                np.maximum(high, np.nanmax(block, axis=1), out=high)
                batch.clear()

        size = 0
        for recording in self.recordings:
            batch.append(np.asarray(recording.data, dtype=np.float32))
            size += recording.data.size
            # Stack many short recordings (table rows) to hash them in few calls.
            if size >= 1 << 22:
                flush()
                size = 0
        flush()
        first: dict[bytes, str] = {}
        repeats: dict[str, str] = {}
        constant = ~(high > low)
        for name, digest, flat in zip(channels, digests, constant, strict=True):
            if flat:
                continue
            key = digest.digest()
            if key in first:
                repeats[name] = first[key]
            else:
                first[key] = name
        return repeats

    @property
    def files(self) -> list[Path]:
        seen: dict[Path, None] = {}
        for recording in self.recordings:
            if recording.source is not None:
                seen.setdefault(recording.source, None)
        return list(seen)
