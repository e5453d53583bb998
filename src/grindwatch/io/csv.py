"""CSV reader: delimiter and decimal mark detected unless given, text encoding
as configured (UTF-8 by default)."""

from __future__ import annotations

import codecs
import csv as stdlib_csv
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError
from grindwatch.io.options import ReadOptions

logger = logging.getLogger(__name__)

__all__ = ["read_csv_frame", "sniff_csv"]

_DELIMITERS = (",", ";", "\t", "|")
# pandas reads this regular expression with its C engine.
_WHITESPACE = r"\s+"
_DECIMAL_COMMA = re.compile(r"(^|[;\t|])\s*-?\d+,\d+([eE][-+]?\d+)?\s*($|[;\t|])")


def sniff_csv(path: Path, head: str) -> tuple[str, str]:
    """Guess the delimiter and decimal mark from the first lines of a file."""
    lines = [line for line in head.splitlines() if line.strip()][:20]
    if not lines:
        raise InputError(path, "the file is empty", "check that the export finished")

    def spread(delimiter: str) -> tuple[int, int]:
        counts = [line.count(delimiter) for line in lines]
        # A real delimiter appears the same number of times on every line.
        return (len(set(counts)) == 1 and counts[0] > 0, counts[0])

    scored = sorted(_DELIMITERS, key=spread, reverse=True)
    delimiter = scored[0]
    if spread(delimiter)[1] == 0:
        # Columns aligned with spaces, as numpy.savetxt writes them by default.
        widths = {len(line.split()) for line in lines}
        delimiter = _WHITESPACE if len(widths) == 1 and widths.pop() > 1 else ","

    decimal = "."
    if delimiter != "," and any(_DECIMAL_COMMA.search(line) for line in lines[1:]):
        decimal = ","
    return delimiter, decimal


_HEAD_BYTES = 65536
_EXCEL_SEPARATOR = re.compile(r"^\ufeff?sep=(.)\s*$", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _read_head(path: Path, encoding: str) -> str:
    """Decode the first 64 KiB of a file.

    Raises
    ------
    InputError
        If the encoding is unknown, or the bytes are not valid in it, naming the
        byte and its line.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise InputError(
            path,
            f"unknown text encoding {encoding!r}",
            "set data.encoding to a Python codec name such as utf-8, latin-1 or cp1252",
        ) from None
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_HEAD_BYTES)
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror})") from None
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not wide:
        raise InputError(
            path,
            f"starts with a UTF-16 byte order mark, so it is not {encoding} text",
            "set the file's encoding with --set data.encoding=utf-16 (data.encoding "
            "in the config)",
        )
    if b"\x00" in raw and not wide:
        # CSV text in UTF-8 or a one-byte codec has no NUL bytes, but UTF-16
        # text of ASCII characters has one in every pair of bytes, and a file
        # cut short by a crash may end in a run of them.
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        if raw[:64].count(b"\x00") >= 16:
            raise InputError(
                path,
                f"contains NUL bytes (first on line {line}), as UTF-16 text does, "
                f"so it is not {encoding} text",
                "set the file's encoding with --set data.encoding=utf-16-le "
                "(data.encoding in the config), or utf-16-be",
            )
        raise InputError(
            path,
            f"contains NUL bytes from line {line} on, which text never contains, "
            "as in a file that was not completely written before a crash",
            "export the file again, or delete the NUL bytes",
        )
    try:
        # Final only when the file ended, because the 64 KiB border may cut a
        # multi-byte character.
        head = decoder.decode(raw, final=len(raw) < _HEAD_BYTES)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = raw[error.start]
        raise _not_encoded(path, encoding, byte, f"on line {line}") from None
    except UnicodeError as error:
        # Python's utf-16 codec raises this for a file without a byte order mark.
        raise InputError(
            path,
            f"is not valid {encoding} text ({error})",
            "set data.encoding to utf-16-le or utf-16-be, which need no byte order "
            "mark (utf-16-le for files written on Windows)",
        ) from None
    return head


def _not_encoded(path: Path, encoding: str, byte: int, where: str) -> InputError:
    return InputError(
        path,
        f"is not valid {encoding} text (byte 0x{byte:02x} {where})",
        "set the file's encoding with --set data.encoding=NAME (data.encoding in "
        "the config), e.g. latin-1, or cp1252 for many Windows exports",
    )


def _leading_comments(lines: list[str]) -> int:
    """Count the lines before the header that are blank or start with '#'."""
    count = 0
    for line in lines:
        text = line.strip().lstrip("\ufeff")
        if text and not text.startswith("#"):
            break
        count += 1
    return count


def _fields(line: str, delimiter: str) -> list[str] | None:
    """Split one line into fields, or return None where the csv module cannot.

    pandas also takes regular expressions and longer strings as delimiters, which
    the csv module does not, and the csv module rejects some damaged lines.
    """
    if delimiter == _WHITESPACE:
        return line.split()
    if len(delimiter) != 1:
        return None
    try:
        return next(stdlib_csv.reader([line], delimiter=delimiter), [])
    except stdlib_csv.Error:
        return None


def _header_in_comment(
    lines: list[str], n_comments: int, delimiter: str, decimal: str
) -> bool:
    """Tell whether the last comment line is the header.

    ``numpy.savetxt`` writes its header as "# time,a,b". That line is the header
    when the first line after the comments contains only numbers and as many
    fields.
    """
    if n_comments == 0:
        return False
    first = _fields(lines[n_comments], delimiter)
    names = _fields(lines[n_comments - 1].strip().lstrip("\ufeff#"), delimiter)
    if not first or names is None or len(names) != len(first):
        return False
    if not all(name.strip() for name in names):
        return False
    numbers = pd.to_numeric(
        pd.Series([field.strip().replace(decimal, ".") for field in first]),
        errors="coerce",
    )
    return bool(numbers.notna().all())


def _header_with_hash_field(lines: list[str], n_comments: int, delimiter: str) -> bool:
    """Tell whether the last comment line is a header whose first column is '#'.

    A header such as "#,time,vib" names a row-number column '#' but starts like a
    comment. It is the header when its first field is '#' alone and it has as many
    fields as the first line after the comments. It needs at least two fields,
    because a lone '#' line is an empty comment.
    """
    if n_comments == 0:
        return False
    names = _fields(lines[n_comments - 1].strip().lstrip("\ufeff"), delimiter)
    first = _fields(lines[n_comments], delimiter)
    if not names or not first or names[0].strip() != "#":
        return False
    return len(names) == len(first) >= 2


def read_csv_rows_checked(path: Path, **options: object) -> pd.DataFrame:
    """Read a CSV with ``pandas.read_csv``, raising ParserWarning for rows with
    more fields than the header line.

    Without ``index_col=False``, pandas moves the leading fields of such rows into
    the index, so every column gets the values of the column to its right. With
    it, pandas only warns, and the warning is raised here as an error.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "error",
            message="Length of header or names does not match",
            category=pd.errors.ParserWarning,
        )
        return pd.read_csv(path, index_col=False, **options)


def _raise_if_numeric_header(
    path: Path, line: str, delimiter: str, decimal: str
) -> None:
    """Raise when the header line contains only numbers, so the file has no header.

    pandas would name the columns after the first samples, which differ from file
    to file, and drop that row from the data. Column numbers counting up from 0
    or 1 (pandas writes "0,1,2" for unnamed columns) are names.
    """
    names = _fields(line.strip().lstrip("\ufeff"), delimiter)
    while names and not names[-1].strip():
        names.pop()
    if not names:
        return
    numbers = pd.to_numeric(
        pd.Series([name.strip().replace(decimal, ".") for name in names]),
        errors="coerce",
    )
    if numbers.isna().any():
        return
    counted = numbers.tolist()
    for start in (0, 1):
        if counted == list(range(start, start + len(names))):
            return
    raise InputError(
        path,
        f"has no header line: its first line ({line.strip()[:60]!r}) contains only "
        "numbers, not column names",
        "add a first line with one name per column (for example time,vib_x,vib_y)",
    )


def _warn_renamed(path: Path, header: list[str], columns: list) -> None:
    """Warn when pandas renamed repeated column names ("vib", "vib.1")."""
    seen: set[str] = set()
    renamed = []
    for raw, column in zip(header, columns, strict=False):
        if raw and raw in seen and str(column) != raw:
            renamed.append(str(column))
        seen.add(raw)
    if renamed:
        repeated = sorted({name for name in header if header.count(name) > 1 and name})
        logger.warning(
            "%s: columns %s appear more than once in the header, so the later ones "
            "were renamed %s (the first keeps its name). Give each column its own "
            "name in the file if the channels should be matched by what they are",
            path,
            repeated,
            renamed,
        )


def read_csv_frame(path: Path, options: ReadOptions) -> pd.DataFrame:
    """Read a CSV file into a DataFrame, detecting its dialect when not given.

    Blank lines and lines starting with '#' before the header are skipped. When
    the last of them is a header (see ``_header_in_comment``), it names the
    columns, without its '#'. When its first field is '#' alone and it has as
    many fields as the first data line (see ``_header_with_hash_field``), it is
    the header, and its first column is named '#'.

    Raises
    ------
    InputError
        If the file is not text in ``options.encoding``, contains only comment
        lines, has one character as delimiter and decimal mark, or cannot be
        parsed.
    """
    head = _read_head(path, options.encoding)
    lines = _LINE_BREAK.split(head)
    # Excel reads and writes a first line "sep=;" that names the delimiter.
    separator = _EXCEL_SEPARATOR.match(lines[0])
    n_comments = _leading_comments(lines[1:] if separator else lines)
    n_comments += 1 if separator else 0
    has_comment = any(line.strip().startswith("#") for line in lines[:n_comments])
    if n_comments == len(lines) and has_comment:
        raise InputError(
            path,
            "contains comment lines starting with '#' but no header or data in its "
            f"first {_HEAD_BYTES // 1024} KiB",
            "check that the export finished",
        )
    body = "\n".join(lines[n_comments:])
    delimiter, decimal = sniff_csv(path, body)
    if separator:
        delimiter = separator.group(1)
    delimiter = options.delimiter or delimiter
    decimal = options.decimal or decimal
    if delimiter == decimal:
        # pandas then reads every number as text, and the message names a column.
        raise InputError(
            path,
            f"the delimiter and the decimal mark are both {delimiter!r}",
            "set data.delimiter and data.decimal to different characters (files "
            "with a decimal comma usually separate fields with ';')",
        )
    # A header in the last comment line is read as the header row. A savetxt
    # header's '#' is dropped afterwards, and a '#' field names a column.
    header_row = n_comments
    strip_hash = _header_in_comment(lines, n_comments, delimiter, decimal)
    if strip_hash or _header_with_hash_field(lines, n_comments, delimiter):
        header_row = n_comments - 1

    # pandas reads a longer delimiter as a regular expression ('\\t' is a tab)
    # with its python engine, which rejects low_memory.
    one_character = len(delimiter) == 1 or delimiter == _WHITESPACE
    engine = {"low_memory": False} if one_character else {"engine": "python"}
    header_line = {"skiprows": header_row}
    if strip_hash and delimiter == _WHITESPACE:
        # Split on spaces, the header "# time a b" gives '#' a column of its own.
        names = lines[header_row].lstrip("\ufeff").strip().lstrip("#").split()
        header_line = {"skiprows": header_row + 1, "header": None, "names": names}
    try:
        frame = read_csv_rows_checked(
            path,
            sep=delimiter,
            decimal=decimal,
            encoding=options.encoding,
            **header_line,
            **engine,
        )
    except pd.errors.ParserWarning:
        raise InputError(
            path,
            f"its data rows have more {delimiter!r}-separated fields than its header "
            "line has column names, so the values cannot be matched to the names",
            "name every column in the header line, or set data.delimiter if the "
            "detected delimiter is wrong",
        ) from None
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        where = f"after the first {_HEAD_BYTES // 1024} KiB"
        raise _not_encoded(path, options.encoding, byte, where) from None
    except (pd.errors.ParserError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            path,
            f"is not valid CSV with delimiter {delimiter!r} ({first_line})",
            "set delimiter and decimal in the config if detection guessed wrong",
        ) from None

    _raise_if_numeric_header(path, lines[header_row], delimiter, decimal)
    header = header_line.get("names") or _fields(
        lines[header_row].lstrip("\ufeff"), delimiter
    )
    _raise_if_header_wider(path, header, lines[header_row + 1 :], delimiter)
    if strip_hash:
        first = str(frame.columns[0]).lstrip("#").strip()
        frame = frame.rename(columns={frame.columns[0]: first})
        header = None if header is None else [first, *header[1:]]
    if header is not None:
        _warn_renamed(path, header, list(frame.columns))
    frame = _without_trailing_empty(frame)
    _raise_if_cut_short(path, delimiter, options.encoding)
    _raise_if_mixed_delimiter(path, frame, delimiter)
    return _big_integers_as_floats(frame)


def _raise_if_header_wider(
    path: Path, header: list[str] | None, data_lines: list[str], delimiter: str
) -> None:
    """Raise when every data line in the first 20 has fewer fields than the header.

    A name that contains the delimiter unquoted ("Force (kN, filtered)") splits
    in two, so pandas gives each value the name to its left and leaves the last
    column empty, and the error would name NaN samples in that column.
    """
    names = list(header or [])
    while names and not names[-1].strip():
        names.pop()
    counts = set()
    for line in [line for line in data_lines if line.strip()][:20]:
        fields = _fields(line, delimiter)
        if fields is None:
            return
        counts.add(len(fields))
    if len(counts) != 1 or min(counts) >= len(names):
        return
    raise InputError(
        path,
        f"its header line has {len(names)} {delimiter!r}-separated names but its "
        f"data rows have {min(counts)} fields, so the names do not match the "
        "values; a name probably contains the delimiter",
        "put such names in double quotes, or remove the delimiter from them",
    )


def _raise_if_cut_short(path: Path, delimiter: str, encoding: str) -> None:
    """Raise when the last line has no line break and fewer fields than the line
    before it, as a file copied or read while it is being written ends.

    pandas fills the missing fields with NaN and reads a cut field ('0' of
    '0.217') as a number, so the error would name a NaN sample or a time going
    back. A cut inside the last field of a line cannot be detected and is read.
    """
    try:
        if "\n".encode(encoding) != b"\n":
            return  # NOTE: UTF-16 and other wide encodings are not checked.
    except LookupError:
        return
    with path.open("rb") as file:
        file.seek(max(path.stat().st_size - 65536, 0))
        tail = file.read()
    if tail.endswith((b"\n", b"\r")):
        return
    lines = tail.decode(encoding, errors="replace").splitlines()
    # An odd count of quotes may end a quoted cell that spans lines. A last
    # line of spaces only is padding, which pandas skips as a blank line.
    if len(lines) < 3 or lines[-1].count('"') % 2 or not lines[-1].strip():
        return
    last = _fields(lines[-1], delimiter)
    before = _fields(lines[-2], delimiter)
    if last is None or before is None or len(last) >= len(before):
        return
    raise InputError(
        path,
        f"its last line {lines[-1]!r} has {len(last)} of {len(before)} fields and "
        "no line break, so the file was probably cut short while being written",
        "wait until the export finishes, or delete the incomplete last line",
    )


def _raise_if_mixed_delimiter(path: Path, frame: pd.DataFrame, delimiter: str) -> None:
    """Raise when some lines use another delimiter than the header.

    Such a line lands whole in the first column, with the other columns empty,
    so without this check it reads as a text cell and a row of NaN samples.
    """
    if frame.shape[1] < 2:
        return
    first = frame.iloc[:, 0]
    if pd.api.types.is_numeric_dtype(first):
        return
    rest_empty = frame.iloc[:, 1:].isna().all(axis=1)
    text = first.astype("string")
    for other in (";", "\t", "|", ","):
        if other == delimiter:
            continue
        split = text.str.contains(other, regex=False).fillna(False) & rest_empty
        if split.any():
            row = int(np.flatnonzero(split.to_numpy())[0])
            raise InputError(
                path,
                f"data row {row} is separated by {other!r}, but the header by "
                f"{delimiter!r}",
                "export the file with one delimiter on every line",
            )


def _big_integers_as_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert columns of integers beyond 64 bits, which pandas keeps as Python
    integers in an object column, to float64."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        values = column.dropna()
        if len(values) and all(
            isinstance(value, int) and not isinstance(value, bool) for value in values
        ):
            frame[name] = column.astype(np.float64)
    return frame


def _without_trailing_empty(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the empty, unnamed last columns that a delimiter at the end of each
    line makes (``1,2,3,``); pandas names them ``Unnamed: N``."""
    drop = []
    for name in reversed(frame.columns):
        if not str(name).startswith("Unnamed: ") or frame[name].notna().any():
            break
        drop.append(name)
    return frame.drop(columns=drop) if drop else frame
