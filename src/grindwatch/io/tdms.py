"""NI TDMS reader (needs the npTDMS package)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import ReadOptions
from grindwatch.io.recording import Recording
from grindwatch.io.samples import to_float32
from grindwatch.io.time_vectors import find_time_vectors

__all__ = ["read_tdms"]


def _import_nptdms():  # noqa: ANN202
    try:
        import nptdms
    except ImportError:
        raise ImportError(
            "reading TDMS files needs the npTDMS package; install it with "
            "'pip install npTDMS'"
        ) from None
    return nptdms


def _numeric_channels(group) -> list:  # noqa: ANN001 - nptdms.TdmsGroup
    return [
        channel
        for channel in group.channels()
        if channel.dtype is not None
        and np.dtype(channel.dtype).kind in "iuf"
        and len(channel) > 0
    ]


def _pick_group(path: Path, tdms, options: ReadOptions):  # noqa: ANN001, ANN202
    groups = {group.name: group for group in tdms.groups()}
    if options.tdms_group is not None:
        if options.tdms_group not in groups:
            raise InputError(
                path,
                f"no group {options.tdms_group!r}; groups are {sorted(groups)}",
                "set tdms_group to one of those",
            )
        return groups[options.tdms_group]
    with_data = [group for group in groups.values() if _numeric_channels(group)]
    if not with_data:
        raise InputError(path, "contains no numeric channel", "check the file")
    if len(with_data) > 1:
        raise InputError(
            path,
            f"contains several groups with data ({[g.name for g in with_data]})",
            "set tdms_group to the one to read",
        )
    return with_data[0]


def _rate(channels: list, path: Path, option_rate: float | None) -> float | None:
    """Return the sample rate from the channels' ``wf_increment`` (seconds per
    sample), or None when no channel stores one.

    Raises
    ------
    InputError
        If channels store different intervals, or an interval that is not a
        positive number while ``option_rate`` (the ``sample_rate`` option) is None.
    """
    stored = {
        channel.name: channel.properties["wf_increment"]
        for channel in channels
        if "wf_increment" in channel.properties
    }
    increments = {name: _increment(value) for name, value in stored.items()}
    invalid = [name for name, step in increments.items() if step is None]
    if invalid and option_rate is not None:
        # The sample_rate option gives the rate that the file fails to store.
        return None
    if invalid:
        raise InputError(
            path,
            f"channel {invalid[0]!r} stores wf_increment {stored[invalid[0]]!r}, "
            "which is not a positive sample interval in seconds, so the file gives "
            f"no sample rate ({len(invalid)} of {len(channels)} channels)",
            "set data.sample_rate to the rate in samples per second",
        )
    steps = set(increments.values())
    if not steps:
        return None
    if len(steps) > 1:
        raise InputError(
            path,
            f"channels have different sample intervals {sorted(steps)} s",
            "read one rate at a time with the channels option, or resample them",
        )
    return 1.0 / steps.pop()


def _increment(value: object) -> float | None:
    """Return a ``wf_increment`` property as a positive float, else None."""
    try:
        step = float(value)
    except (TypeError, ValueError):
        return None
    return step if np.isfinite(step) and step > 0 else None


# npTDMS's warnings when the last segment is cut in its data, or before its
# data begins. After the second it leaves that segment out.
_TRUNCATION_WARNINGS = (
    "Last segment of file has less data than expected",
    "Last segment metadata is incomplete",
)


class _TruncationRecords(logging.Handler):
    """Collect npTDMS's warnings that the last segment ends early.

    npTDMS (checked with 1.13) logs them and returns the samples it found, so a
    cut file would be read with fewer samples in its last channels, or without
    its last segment.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        # Another thread may read another file at the same time.
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.thread == self.thread and message.startswith(_TRUNCATION_WARNINGS):
            self.messages.append(message)


_LEAD_IN_BYTES = 28
_BIG_ENDIAN_TOC = 1 << 6


def _cut_lead_in(path: Path) -> str | None:
    """Describe a file that ends inside a segment's 28-byte lead-in, else None.

    npTDMS (checked with 1.13) leaves such a last segment out without a warning.
    Each lead-in contains the tag TDSm, the table of contents mask, the version and
    the offset of the next segment from the end of the lead-in. A file cut
    exactly between two segments looks complete and is read.
    """
    size = path.stat().st_size
    position = 0
    with path.open("rb") as file:
        while position < size:
            file.seek(position)
            lead_in = file.read(_LEAD_IN_BYTES)
            if not lead_in.startswith(b"TDSm"[: len(lead_in)]):
                return None  # not a segment start; npTDMS reports what it finds
            if len(lead_in) < _LEAD_IN_BYTES:
                return (
                    f"the last segment's lead-in has {len(lead_in)} of "
                    f"{_LEAD_IN_BYTES} bytes"
                )
            toc = int.from_bytes(lead_in[4:8], "little")
            order = "big" if toc & _BIG_ENDIAN_TOC else "little"
            position += _LEAD_IN_BYTES + int.from_bytes(lead_in[12:20], order)
    return None


def read_tdms(path: Path, options: ReadOptions) -> Recording:
    """Read one group of a TDMS file; its channels become the recording's channels.

    Channel values come scaled when the file defines NI scaling; otherwise integer
    samples are converted to float and their dtype is recorded.
    """
    nptdms = _import_nptdms()
    truncation = _TruncationRecords()
    nptdms_logger = logging.getLogger("nptdms")
    level = nptdms_logger.level
    # NOTE: logging.disable(WARNING) or above still hides the truncation.
    if nptdms_logger.getEffectiveLevel() > logging.WARNING:
        nptdms_logger.setLevel(logging.WARNING)
    nptdms_logger.addHandler(truncation)
    try:
        tdms = nptdms.TdmsFile.read(path)
    except (ValueError, OSError, EOFError, KeyError, IndexError) as error:
        raise InputError(
            path,
            f"is not a readable TDMS file ({type(error).__name__}: {error})",
            "check that the file was written completely",
        ) from None
    finally:
        nptdms_logger.removeHandler(truncation)
        nptdms_logger.setLevel(level)
    cut_lead_in = _cut_lead_in(path)
    if cut_lead_in is not None:
        truncation.messages.append(cut_lead_in)
    if truncation.messages:
        raise InputError(
            path,
            f"is not a readable TDMS file (truncated: {truncation.messages[0]})",
            "check that the file was written completely",
        )
    group = _pick_group(path, tdms, options)
    channels = _numeric_channels(group)
    if options.channels is not None:
        by_name = {channel.name: channel for channel in channels}
        missing = [name for name in options.channels if name not in by_name]
        if missing:
            raise InputError(
                path,
                f"missing channels {shorten_list(missing)}; group {group.name!r} has "
                f"{shorten_list(list(by_name))}",
                "fix the channel names in the config",
            )
        channels = [by_name[name] for name in options.channels]
    lengths = {channel.name: len(channel) for channel in channels}
    if len(set(lengths.values())) > 1:
        raise InputError(
            path,
            f"channels of group {group.name!r} have different lengths {lengths}",
            "pick channels of one length with the channels option",
        )

    time = find_time_vectors(
        path, [channel.name for channel in channels], lambda i: channels[i][:], options
    )
    channels = [channel for i, channel in enumerate(channels) if i not in time.dropped]
    names = [channel.name for channel in channels]
    stacked = np.stack([channel[:] for channel in channels])
    data, metadata = to_float32(stacked, channels=names)
    data = finite_or_raise(path, data, names, options.nan_policy)
    metadata.update(_tdms_metadata(group, channels))
    metadata.update(time.metadata())
    rate = _rate(channels, path, options.sample_rate)
    if rate is None:
        rate = time.rate
    if options.sample_rate is not None:
        if rate is not None and not np.isclose(rate, options.sample_rate):
            raise InputError(
                path,
                f"the file stores sample rate {rate:g} but sample_rate is "
                f"{options.sample_rate:g}",
                "remove sample_rate from the config; when scoring with a "
                "model trained with it, pass --set data.sample_rate=null",
            )
        rate = options.sample_rate
    return Recording(
        name=path.stem,
        data=data,
        channels=names,
        sample_rate=rate,
        source=path,
        metadata=metadata,
    )


def _tdms_metadata(group, channels: list) -> dict[str, Any]:  # noqa: ANN001
    scaled = [
        channel.name
        for channel in channels
        if int(channel.properties.get("NI_Number_Of_Scales", 0)) > 0
    ]
    metadata: dict[str, Any] = {"tdms_group": group.name}
    if scaled:
        metadata["tdms_scaled_channels"] = scaled
    return metadata
