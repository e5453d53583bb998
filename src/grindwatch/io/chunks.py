"""Read large single-stream files in chunks, and cut windows across chunk borders.

Supported: NumPy ``.npy``, headerless binary (``.bin``, ``.raw``), Parquet (one
chunk per batch of rows) and HDF5 (slices of the dataset). Chunks are read with
plain file reads rather than a memory map, because pages of a memory map stay in the
process's resident memory until the kernel needs them back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.exceptions import InputError, shorten_list
from grindwatch.io.binary import binary_layout
from grindwatch.io.options import ReadOptions
from grindwatch.io.parquet import index_to_columns
from grindwatch.io.samples import to_float32

__all__ = ["CHUNKED_SUFFIXES", "ChunkedStream", "iter_windows", "open_stream"]

CHUNKED_SUFFIXES = (".npy", ".bin", ".raw", ".parquet", ".pq", ".h5", ".hdf5", ".hdf")


@dataclass
class ChunkedStream:
    """A file opened for chunked reading.

    Attributes
    ----------
    path : Path
    channels : list of str
    n_samples : int
    sample_rate : float or None
    metadata : dict
        Conversion details, as the whole-file readers record them.
    read : callable
        ``read(start, stop)`` returns float32 samples shaped (channels, stop - start).
    """

    path: Path
    channels: list[str]
    n_samples: int
    sample_rate: float | None
    read: Callable[[int, int], np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    def chunks(self, chunk_samples: int, nan_policy: str = "raise"):  # noqa: ANN201
        """Yield (first sample, samples) for consecutive chunks of the file.

        Raises
        ------
        InputError
            At the first NaN or infinite sample, naming its channel and its position
            in the whole file.
        NotImplementedError
            For ``nan_policy="interpolate"``.
        """
        if nan_policy != "raise":
            # Interpolating needs the next finite sample, which may lie chunks ahead.
            raise NotImplementedError(
                "chunked reading supports nan_policy 'raise' only; read the file "
                "whole to interpolate NaN samples"
            )
        for start in range(0, self.n_samples, chunk_samples):
            stop = min(start + chunk_samples, self.n_samples)
            chunk = self.read(start, stop)
            bad = ~np.isfinite(chunk)
            if bad.any():
                # Transposed, so that the first match is the earliest sample.
                position, channel = np.argwhere(bad.T)[0]
                raise InputError(
                    self.path,
                    f"NaN or infinite sample in channel {self.channels[channel]!r} "
                    f"at sample {start + int(position)}",
                    "clean the file, or read it whole with nan_policy: interpolate",
                )
            yield start, chunk


def iter_windows(
    chunks: Iterator[tuple[int, np.ndarray]],
    length: int,
    hop: int,
    max_windows: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut windows from consecutive chunks, as ``make_windows`` cuts a whole file.

    Samples that a later window still needs are carried from one chunk to the next,
    so the windows and their starts equal those of the whole recording.
    ``max_windows`` caps the windows yielded at once. Without it, a chunk gives
    all its windows together, which take about ``length / hop`` times its memory.

    Yields
    ------
    starts : ndarray of shape (n_windows,)
        First sample of each window in the whole stream.
    windows : ndarray of shape (n_windows, n_channels, length)
    """
    carried: np.ndarray | None = None
    carried_start = 0  # position of carried[:, 0] in the stream
    next_start = 0  # the next window to emit starts here
    last_end = 0  # end of the latest emitted window
    for chunk_start, chunk in chunks:
        if carried is None or carried.shape[1] == 0:
            carried, carried_start = chunk, chunk_start
        else:
            carried = np.concatenate([carried, chunk], axis=1)
        end = carried_start + carried.shape[1]
        if end - next_start >= length:
            last = end - length  # latest start of a full window
            starts = np.arange(next_start, last + 1, hop, dtype=np.int64)
            view = np.lib.stride_tricks.sliding_window_view(carried, length, axis=1)
            batch = max_windows or len(starts)
            for begin in range(0, len(starts), batch):
                part = starts[begin : begin + batch]
                windows = view[:, part - carried_start].transpose(1, 0, 2)
                yield part, np.ascontiguousarray(windows)
            next_start = int(starts[-1]) + hop
            last_end = int(starts[-1]) + length
        # Keep what the next window needs, and at least one window length for the
        # window that ends the stream. A hop longer than a window may skip past the
        # end of this chunk.
        keep_from = min(
            max(next_start - carried_start, 0), max(carried.shape[1] - length, 0)
        )
        carried = carried[:, keep_from:].copy()
        carried_start += keep_from
    # As make_windows does, end the stream with a window when the hop grid left a
    # tail shorter than one.
    if carried is not None and 0 < last_end < carried_start + carried.shape[1]:
        yield (
            np.array([carried_start + carried.shape[1] - length], dtype=np.int64),
            np.ascontiguousarray(carried[None, :, -length:]),
        )


def _npy_stream(path: Path) -> ChunkedStream:
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = reader(handle)
        except ValueError as error:
            raise InputError(path, f"is not a readable .npy file ({error})") from None
        offset = handle.tell()
    if dtype.kind not in "iuf" or len(shape) not in (1, 2):
        raise InputError(
            path,
            f"contains an array of dtype {dtype} and shape {shape}",
            "save one recording as a numeric (channels, samples) array",
        )
    if 0 in shape:
        # Without this check, a (2, 0) array would read as 2 samples of no
        # channel and fail as "missing channels".
        raise InputError(
            path,
            f"contains no samples (an array of shape {shape})",
            "check that the export finished",
        )
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size < expected:
        raise InputError(
            path,
            f"is truncated: {path.stat().st_size} bytes, but the header needs "
            f"{expected}",
            "check that the file was written completely",
        )
    shape2d = (1, shape[0]) if len(shape) == 1 else shape
    # Memory order of the rows: C order stores shape2d[0] blocks of shape2d[1].
    rows_outer = not fortran_order
    outer, inner = shape2d if rows_outer else shape2d[::-1]
    # Recordings have far more samples than channels: the longer axis is time.
    # A square array is (channels, samples), as the whole-file reader takes it,
    # which puts time on the inner axis only in C order.
    time_is_inner = (
        (inner > outer or (inner == outer and rows_outer)) if len(shape) == 2 else True
    )
    n_samples = inner if time_is_inner else outer
    n_channels = outer if time_is_inner else inner
    _, metadata = to_float32(np.zeros(0, dtype=dtype))

    def read(start: int, stop: int) -> np.ndarray:
        count = stop - start
        with open(path, "rb") as handle:
            if time_is_inner:
                rows = []
                for channel in range(n_channels):
                    handle.seek(offset + (channel * n_samples + start) * dtype.itemsize)
                    rows.append(np.fromfile(handle, dtype=dtype, count=count))
                values = np.stack(rows)
            else:
                handle.seek(offset + start * n_channels * dtype.itemsize)
                flat = np.fromfile(handle, dtype=dtype, count=count * n_channels)
                values = flat.reshape(count, n_channels).T
        return to_float32(values)[0]

    channels = [f"channel_{i}" for i in range(n_channels)]
    return ChunkedStream(path, channels, n_samples, None, read, metadata)


def _binary_stream(path: Path, options: ReadOptions) -> ChunkedStream:
    dtype, n_channels, n_samples = binary_layout(path, options)
    _, metadata = to_float32(np.zeros(0, dtype=dtype))

    def read(start: int, stop: int) -> np.ndarray:
        with open(path, "rb") as handle:
            handle.seek(start * n_channels * dtype.itemsize)
            flat = np.fromfile(handle, dtype=dtype, count=(stop - start) * n_channels)
        return to_float32(flat.reshape(stop - start, n_channels).T)[0]

    channels = [f"channel_{i}" for i in range(n_channels)]
    return ChunkedStream(path, channels, n_samples, options.sample_rate, read, metadata)


def _parquet_stream(path: Path, options: ReadOptions) -> ChunkedStream:
    import pyarrow
    import pyarrow.parquet as pq

    from grindwatch.io.date_time import check_date_column, date_time_pair_columns
    from grindwatch.io.frames import (
        _channel_columns,
        _choose_time_column,
        _column_metadata,
        _combine_split_timestamp,
        _rate_from_time,
        _resolve_rate,
        _time_candidates,
    )

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pyarrow.ArrowException) as error:
        raise InputError(
            path, f"is not a readable Parquet file ({error})", "check the file"
        ) from None
    empty = index_to_columns(path, parquet.schema_arrow.empty_table().to_pandas())
    # The time column, a date column combined with it, and the rate come from
    # the first row group's values, and ``_scan_time`` then checks the steps of
    # every row group. The schema has no rows, so a numeric column with text
    # cells cannot be detected here and is listed as non-numeric.
    candidates = _time_candidates(path, empty, options)
    time_column, date_column, pair = None, None, None
    if not options.ignore_time:
        check_date_column(path, empty, options)
        head_columns = list(
            dict.fromkeys([*candidates, *date_time_pair_columns(empty, options)])
        )
        head = empty
        if head_columns and parquet.metadata.num_row_groups > 0:
            head = parquet.read_row_group(0, columns=head_columns).to_pandas()
            head = index_to_columns(path, head)
        head, candidates, pair = _combine_split_timestamp(
            path, head, options, candidates
        )
        time_column = _choose_time_column(path, head, candidates, options, pair)
    if pair is not None and pair.time_column == time_column:
        pair.raise_if_invalid(path)
        date_column = pair.date_column
    columns, left_out, unused_time = _channel_columns(
        path, empty, options, time_column, candidates, date_column
    )
    if options.channels is not None:
        missing = [name for name in options.channels if name not in columns]
        if missing:
            raise InputError(
                path,
                f"channels {shorten_list(missing)} not found; numeric columns are "
                f"{shorten_list(columns)}",
                "fix the channel names in the config",
            )
        columns = list(options.channels)
    if not columns:
        raise InputError(path, "contains no numeric channel column", "check the file")

    found, irregular = None, None
    if time_column is not None and parquet.metadata.num_rows > 1:
        _raise_if_serial_days(path, parquet, time_column, head[time_column])
        found, irregular = _rate_from_time(
            path, str(time_column), head[time_column], options.time_column
        )
        if found is not None and parquet.metadata.num_row_groups > 1:
            irregular = _scan_time(
                path, parquet, time_column, date_column, options, 1.0 / found
            )
    rate = _resolve_rate(path, found, options.sample_rate)
    n_samples = parquet.metadata.num_rows
    metadata: dict[str, Any] = {
        "source_dtype": str(empty[columns].dtypes.iloc[0]) if columns else ""
    }
    metadata.update(_column_metadata(time_column, left_out, unused_time, date_column))
    if irregular is not None:
        metadata["irregular_time_steps"] = irregular

    def read(start: int, stop: int) -> np.ndarray:
        # Row groups are the unit Parquet can seek to; read those that overlap.
        table = _read_rows(parquet, columns, start, stop)
        values = np.stack([table.column(i).to_numpy() for i in range(len(columns))])
        return to_float32(values)[0]

    return ChunkedStream(
        path, [str(c) for c in columns], n_samples, rate, read, metadata
    )


def _raise_if_serial_days(
    path: Path,
    parquet,  # noqa: ANN001
    name: object,
    head,  # noqa: ANN001
) -> None:
    """Check the first and last row group's times for spreadsheet serial days.

    ``head`` is the time column of the first row group. Times increase, so the
    first and last group give the file's range of times.
    """
    import pandas as pd

    from grindwatch.io.frames import raise_if_serial_days

    times = head
    last = parquet.metadata.num_row_groups - 1
    if last > 0 and pd.api.types.is_numeric_dtype(head):
        tail = parquet.read_row_group(last, columns=[name]).to_pandas()
        times = pd.concat([head, index_to_columns(path, tail)[name]])
    raise_if_serial_days(path, str(name), times)


def _scan_time(
    path: Path,
    parquet,  # noqa: ANN001
    name: object,
    date_column: object | None,
    options: ReadOptions,
    step: float,
) -> dict[str, object] | None:
    """Check the time column of every row group against the median step ``step``.

    Only one row group is held at a time, together with the last time of the
    group before it. Returns the same description of gaps and short steps that
    ``_rate_from_time`` gives for a whole file, or None when there are none.

    Raises
    ------
    InputError
        Where time goes backwards or repeats, naming the data row. The whole-file
        reader drops repeated rows, which chunks read by row number cannot do.
    """
    from dataclasses import replace

    from grindwatch.io.date_time import find_date_time_pair
    from grindwatch.io.frames import (
        _GAP_FACTOR,
        _about_one_hour,
        _as_datetime,
        _seconds,
        local_times_to_utc,
    )

    read = [name] if date_column is None else [date_column, name]
    # The pair is named, so each row group combines the same two columns.
    paired = replace(options, date_column=date_column, time_column=name)

    found: dict[str, object] = {"column": str(name), "median_step_s": step}
    n_steps = n_gaps = n_short = 0
    largest_gap = 0.0
    origin, start, previous, offset = None, None, np.array([]), 0
    # The last time of the row group before, in UTC, with data.timezone.
    last_utc = None
    for group in range(parquet.metadata.num_row_groups):
        frame = parquet.read_row_group(group, columns=read).to_pandas()
        frame = index_to_columns(path, frame)
        column = frame[name]
        if date_column is not None:
            pair = find_date_time_pair(path, frame, paired)
            if pair is not None:
                pair.raise_if_invalid(path)
                column = pair.values
        if options.timezone is not None:
            column = local_times_to_utc(
                path, name, column, options.timezone, after=last_utc
            )
        as_datetime = _as_datetime(column)
        if as_datetime is not None and as_datetime.notna().any():
            last_utc = as_datetime.dropna().iloc[-1]
        if as_datetime is not None:
            valid = as_datetime.dropna()
            if origin is None and not valid.empty:
                origin = valid.iloc[0]
            if origin is None:
                seconds = np.full(len(column), np.nan)
            else:
                seconds = (as_datetime - origin).dt.total_seconds().to_numpy()
        else:
            seconds = _seconds(str(name), column, options.time_column)
            if seconds is None:
                return None
        if start is None and np.isfinite(seconds).any():
            # Reported times count from the file's first valid timestamp.
            start = float(seconds[np.isfinite(seconds)][0])
        joined = np.concatenate([previous, seconds])
        first_row = offset - previous.size
        steps = np.diff(joined)
        known = np.flatnonzero(np.isfinite(steps))
        backwards = known[steps[known] <= 0]
        if backwards.size:
            row = first_row + int(backwards[0]) + 1
            problem = (
                "goes backwards"
                if steps[backwards[0]] < 0
                else "repeats the time of the row before"
            )
            fix = (
                "sort the rows by time and drop repeated ones, or score the file "
                "without data.chunk_samples, which drops repeated rows"
            )
            if _about_one_hour(-steps[backwards[0]]):
                # Local time repeats an hour when clocks go back.
                fix += (
                    "; if the step back is a daylight-saving switch, name the time "
                    "zone with data.timezone (for example Europe/Berlin)"
                )
            raise InputError(
                path,
                f"time column {name!r} {problem} at data row {row}, in row group "
                f"{group}",
                fix,
            )
        known_steps = steps[known]
        long = known_steps > _GAP_FACTOR * step
        short = known_steps < step / _GAP_FACTOR
        n_steps += int(known.size)
        n_gaps += int(long.sum())
        n_short += int(short.sum())
        if long.any():
            largest = int(np.argmax(np.where(long, known_steps, -np.inf)))
            if known_steps[largest] > largest_gap:
                index = int(known[largest]) + 1
                largest_gap = float(known_steps[largest])
                found["largest_gap_s"] = largest_gap
                found["largest_gap_row"] = first_row + index
                found["largest_gap_at_s"] = float(joined[index] - start)
        if short.any() and "first_short_step_row" not in found:
            index = int(known[int(np.argmax(short))]) + 1
            found["first_short_step_row"] = first_row + index
            found["first_short_step_at_s"] = float(joined[index] - start)
        previous = seconds[-1:]
        offset += len(column)
    if not (n_gaps or n_short):
        return None
    found.update(n_steps=n_steps, n_gaps=n_gaps, n_short_steps=n_short)
    return found


def _read_rows(parquet, columns: list, start: int, stop: int):  # noqa: ANN001, ANN202
    # NOTE: each call reads every row group it overlaps in full, so chunks much
    # shorter than a row group read that group once per chunk.
    import pyarrow

    tables, offset = [], 0
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if offset + rows > start and offset < stop:
            table = parquet.read_row_group(group, columns=columns)
            low, high = max(start - offset, 0), min(stop - offset, rows)
            tables.append(table.slice(low, high - low))
        offset += rows
        if offset >= stop:
            break
    return pyarrow.concat_tables(tables).combine_chunks()


def _hdf5_layout(path: Path, handle, options: ReadOptions) -> dict[str, Any]:  # noqa: ANN001
    """Names, shape, channels, rate, scale and offset, as ``read_hdf5`` finds them."""
    from grindwatch.io import hdf5

    names, items, rate, time = hdf5.pick_signals(path, handle, options)
    shape = items[0].shape
    if len(names) == 1 and len(shape) == 2:
        time_axis = hdf5.two_d_samples_axis(items, shape, time.n_samples)
        n_channels = shape[1 - time_axis]
        channels = hdf5.two_d_channel_names(path, names, items, n_channels)
    else:
        time_axis = 0
        channels = [name.rsplit("/", 1)[-1] for name in names]
    scale, offset = hdf5.channel_scaling(path, names, items, len(channels))
    return {
        "names": names,
        "two_d": len(names) == 1 and len(shape) == 2,
        "time_axis": time_axis,
        "n_samples": shape[time_axis],
        "channels": [c.decode() if isinstance(c, bytes) else str(c) for c in channels],
        "dtype": items[0].dtype,
        "scale": scale,
        "offset": offset,
        "rate": rate,
    }


def _hdf5_stream(path: Path, options: ReadOptions) -> ChunkedStream:
    import h5py

    from grindwatch.io.hdf5 import _DAMAGE_ERRORS

    try:
        with h5py.File(path, "r") as handle:
            layout = _hdf5_layout(path, handle, options)
    except InputError:
        raise
    except _DAMAGE_ERRORS as error:
        raise InputError(
            path,
            f"is not a readable HDF5 file ({type(error).__name__}: {error})",
            "check that the file was written completely",
        ) from None
    names, scale, offset = layout["names"], layout["scale"], layout["offset"]
    _, metadata = to_float32(np.zeros(0, dtype=layout["dtype"]), scale, offset)

    def read(start: int, stop: int) -> np.ndarray:
        with h5py.File(path, "r") as file:
            datasets = [file[name] for name in names]
            if not layout["two_d"]:
                values = np.stack([d[start:stop] for d in datasets])
            elif layout["time_axis"] == 0:
                values = datasets[0][start:stop].T
            else:
                values = datasets[0][:, start:stop]
        return to_float32(values, scale, offset)[0]

    return ChunkedStream(
        path, layout["channels"], layout["n_samples"], layout["rate"], read, metadata
    )


def open_stream(path: str | Path, options: ReadOptions | None = None) -> ChunkedStream:
    """Open a single-stream file for chunked reading.

    Raises
    ------
    InputError
        If the file is missing, empty, unreadable, or of a type that cannot be read
        in chunks.
    """
    path = Path(path)
    options = options or ReadOptions()
    if not path.is_file():
        raise InputError(path, "file not found", "check the path")
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty", "check that the export finished")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        stream = _npy_stream(path)
        stream.sample_rate = options.sample_rate
    elif suffix in (".bin", ".raw"):
        stream = _binary_stream(path, options)
    elif suffix in (".parquet", ".pq"):
        stream = _parquet_stream(path, options)
    elif suffix in (".h5", ".hdf5", ".hdf"):
        stream = _hdf5_stream(path, options)
    else:
        raise InputError(
            path,
            f"{suffix!r} files cannot be read in chunks",
            f"convert it to one of {', '.join(CHUNKED_SUFFIXES)}, or unset "
            "chunk_samples",
        )
    if stream.n_samples == 0:
        raise InputError(path, "contains no samples", "check that the export finished")
    return stream
