"""CSV reader: delimiter and decimal mark detected unless given."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from grindwatch.exceptions import InputError
from grindwatch.io.options import ReadOptions

__all__ = ["read_csv_frame", "sniff_csv"]

_DELIMITERS = (",", ";", "\t", "|")
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
        delimiter = ","  # one column: the delimiter does not matter

    decimal = "."
    if delimiter != "," and any(_DECIMAL_COMMA.search(line) for line in lines[1:]):
        decimal = ","
    return delimiter, decimal


def read_csv_frame(path: Path, options: ReadOptions) -> pd.DataFrame:
    """Read a CSV file into a DataFrame, detecting its dialect when not given."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(65536)
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror})") from None
    delimiter, decimal = sniff_csv(path, head)
    delimiter = options.delimiter or delimiter
    decimal = options.decimal or decimal

    try:
        return pd.read_csv(path, sep=delimiter, decimal=decimal, low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            path,
            f"is not valid CSV with delimiter {delimiter!r} ({first_line})",
            "set delimiter and decimal in the config if detection guessed wrong",
        ) from None
