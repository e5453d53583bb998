"""WAV reader: any channel count, integer PCM or float samples."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from grindwatch.exceptions import InputError
from grindwatch.io.frames import finite_or_raise
from grindwatch.io.options import ReadOptions
from grindwatch.io.recording import Recording
from grindwatch.io.samples import to_float32

__all__ = ["read_wav"]


def _scale(dtype: np.dtype) -> tuple[float | None, float | None]:
    """Scale and offset that map integer PCM onto [-1, 1), as audio tools do."""
    if dtype.kind == "u":  # 8-bit WAV is unsigned, centred on 128
        middle = (np.iinfo(dtype).max + 1) / 2
        return 1.0 / middle, -1.0
    if dtype.kind == "i":
        return 1.0 / (np.iinfo(dtype).max + 1), None
    return None, None


def _unreadable(path: Path, reason: str) -> InputError:
    return InputError(
        path,
        f"is not a readable WAV file ({reason})",
        "check that the file was written completely",
    )


def _streamed(path: Path) -> bool:
    """Check for a RIFF size of 0xFFFFFFFF, which recorders that stream a file
    write because they never go back to store its length. EOF is then its end."""
    with path.open("rb") as file:
        head = file.read(8)
    return head[:4] == b"RIFF" and head[4:8] == b"\xff\xff\xff\xff"


def _short_data_chunk(path: Path) -> str | None:
    """Describe a data chunk whose header size runs past the end of the file.

    scipy (checked with 1.17) warns only when the RIFF header's size does, so a
    file cut after a writer had updated that size was read short without a word.
    Returns None when the sizes agree, for a streamed size of 0xFFFFFFFF, and
    for files that are not RIFF or RIFX (scipy reports those).
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:] != b"WAVE":
            return None
        order = "little" if head[:4] == b"RIFF" else "big"
        position = 12
        while position + 8 <= size:
            file.seek(position)
            chunk = file.read(8)
            length = int.from_bytes(chunk[4:], order)
            if chunk[:4] == b"data":
                available = size - position - 8
                if length == 0xFFFFFFFF or length <= available:
                    return None
                return (
                    f"its data chunk gives {length} bytes, but the file has "
                    f"{available} after the chunk header"
                )
            # Chunks are padded to an even length.
            position += 8 + length + length % 2
    return None


def read_wav(path: Path, options: ReadOptions) -> Recording:
    """Read a WAV file; integer samples are scaled to [-1, 1) and the scale recorded.

    24-bit files arrive from scipy as int32 with the sample in the top three bytes,
    so they scale by 2**31 like 32-bit files.
    """
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings(record=True) as caught:
            # scipy warns about chunks it skips (cue points, LIST), which contain
            # no samples. It also warns, and returns the samples it found, when
            # the file ends before the size in its header, so the file is truncated.
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, values = wavfile.read(path, mmap=False)
    except (ValueError, OSError, EOFError, struct.error, IndexError) as error:
        raise _unreadable(path, str(error)) from None
    for warning in caught:
        message = str(warning.message)
        if message.startswith("Reached EOF prematurely") and not _streamed(path):
            raise _unreadable(path, f"truncated: {message}")
    short = None if _streamed(path) else _short_data_chunk(path)
    if short is not None:
        raise _unreadable(path, f"truncated: {short}")
    if rate <= 0:
        raise InputError(
            path,
            f"its header gives sample rate {rate}, which is not a positive number "
            "of samples per second",
            "write the file again with its true sample rate",
        )
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] == 0:
        raise InputError(path, "contains no samples", "check that the export finished")

    scale, offset = _scale(values.dtype)
    channels = [f"channel_{i}" for i in range(values.shape[1])]
    data, metadata = to_float32(values.T, scale, offset, channels)
    data = finite_or_raise(path, data, channels, options.nan_policy)
    if options.sample_rate is not None and not np.isclose(options.sample_rate, rate):
        raise InputError(
            path,
            f"the file stores sample rate {rate} but sample_rate is "
            f"{options.sample_rate:g}",
            "remove sample_rate from the config; when scoring with a model "
            "trained with it, pass --set data.sample_rate=null",
        )
    recording = Recording(
        name=path.stem,
        data=data,
        channels=channels,
        sample_rate=float(rate),
        source=path,
        metadata=metadata,
    )
    if options.channels is not None:
        recording = recording.select_channels(list(options.channels))
    return recording
