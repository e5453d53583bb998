"""Labels for evaluation: folder names and labels CSV files.

Labels never reach fitting. Training code does not read ``Recording.label``.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from grindwatch.exceptions import InputError
from grindwatch.io.csv import read_csv_rows_checked

__all__ = [
    "folder_class",
    "label_folder",
    "label_from_path",
    "label_key_for",
    "read_labels_csv",
]

# Folder-name words that mark a recording's class, matched as whole words.
ANOMALOUS_WORDS = frozenset(
    {
        "bad",
        "nok",
        "nio",
        "anomalous",
        "anomaly",
        "anomalies",
        "abnormal",
        "broken",
        "faulty",
        "fault",
        "defect",
        "defective",
        "fail",
        "failed",
        "worn",
    }
)
NORMAL_WORDS = frozenset(
    {"good", "ok", "io", "normal", "healthy", "pass", "passed", "unworn", "nominal"}
)


# Words that turn a class word into its opposite: "anomaly-free", "fault_less",
# "no-fault", "non anomalous", and the same written as one word.
_NEGATING_BEFORE = ("no", "non", "not", "without", "zero", "un")
_NEGATING_AFTER = ("free", "less")


def folder_class(name: str) -> int | None:
    """Return 1 or 0 when a folder name names a class, else None.

    Class words are matched as whole words. A negated anomalous word
    ("anomaly-free", "faultless", "no_fault") names the normal class, a negated
    normal word ("not_ok") the anomalous one. A name with an anomalous word that
    is not negated is anomalous, whatever else it holds.
    """
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    anomalous = normal = False
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if word in NORMAL_WORDS:
            # "not_ok", "not good": a negated normal word is anomalous.
            if before in _NEGATING_BEFORE:
                anomalous = True
            else:
                normal = True
        elif word in ANOMALOUS_WORDS:
            after = words[index + 1] if index + 1 < len(words) else ""
            if before in _NEGATING_BEFORE or after in _NEGATING_AFTER:
                normal = True
            else:
                anomalous = True
        elif _negated_compound(word):
            normal = True
    if anomalous:
        return 1
    return 0 if normal else None


def _negated_compound(word: str) -> bool:
    """Check for one-word negations such as "faultfree", "nonanomalous"."""
    for suffix in _NEGATING_AFTER:
        if word.endswith(suffix) and word[: -len(suffix)] in ANOMALOUS_WORDS:
            return True
    for prefix in _NEGATING_BEFORE:
        if word.startswith(prefix) and word[len(prefix) :] in ANOMALOUS_WORDS:
            return True
    return False


def label_folder(path: Path, root: Path | None = None) -> tuple[int, Path] | None:
    """Return the label and the folder that names it, or None.

    The nearest class-named parent folder wins, so ``bad/run_ok_3/x.csv`` is
    normal. With ``root`` (the folder the user gave), folders above it are not
    read: a project folder such as ``fault_study/`` above the data does not
    describe the recordings.
    """
    path = Path(path)
    for folder in path.parents:
        label = folder_class(folder.name)
        if label is not None:
            return label, folder
        if root is not None and folder == root:
            break
    return None


def label_from_path(path: Path, root: Path | None = None) -> int | None:
    """Return 1 or 0 when a parent folder is named for a class, else None.

    See ``label_folder`` for the rules and ``root``.
    """
    found = label_folder(path, root)
    return None if found is None else found[0]


_TRUE = {"1", "true", "yes", "bad", "nok", "anomalous", "anomaly", "broken", "worn"}
_FALSE = {"0", "false", "no", "good", "ok", "normal", "healthy", "unworn"}


def label_value(value: object) -> int | None:
    """Return 1 for an anomalous label, 0 for a normal one, None when unknown.

    Numbers other than 0 and 1 give None. Text is matched without case and
    surrounding spaces to 1/0 and words such as bad/good, NOK/OK, worn/unworn.
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return int(value) if value in (0, 1) else None
    word = str(value).strip().lower()
    if word in _TRUE:
        return 1
    if word in _FALSE:
        return 0
    return None


def _header_names(names: list[str]) -> list[str]:
    """Return ``names`` with ``Recording`` or ``LABEL`` in lower case, as the
    reader expects them, unless another column already has that name or it
    occurs in several spellings."""
    renamed = list(names)
    for expected in ("recording", "label"):
        if expected in names:
            continue
        matches = [i for i, name in enumerate(names) if name.lower() == expected]
        if len(matches) == 1:
            renamed[matches[0]] = expected
    return renamed


def read_labels_csv(path: Path) -> dict[str, int]:
    """Read a labels file with columns ``recording`` and ``label``.

    ``recording`` is a recording name (file stem, ``FOLDER/stem`` where stems
    repeat across folders, or ``stem#row`` for table rows) or a file name or path;
    ``label`` is 1/0 or a word such as bad/good, NOK/OK, worn/unworn. Keys are
    the stem, or ``FOLDER/stem`` when the cell names a folder; ``label_key_for``
    matches them to recording names.
    """
    path = Path(path)
    try:
        # Names such as "NA" or "nan" are recording names here, not missing values.
        frame = read_csv_rows_checked(
            path,
            sep=_header_delimiter(path),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
        )
    except pd.errors.ParserWarning:
        raise InputError(
            path,
            "its rows have more fields than its header line has column names",
            "write one recording name and one label per row, under the header "
            "'recording,label'",
        ) from None
    except UnicodeDecodeError as error:
        raise InputError(
            path,
            f"is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start})",
            "save the labels file as UTF-8",
        ) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(path, f"cannot be read as a labels CSV ({error})") from None
    frame.columns = _header_names([str(name).strip() for name in frame.columns])
    missing = {"recording", "label"} - set(frame.columns)
    if missing:
        raise InputError(
            path,
            f"is missing columns {sorted(missing)}; it has {list(frame.columns)}",
            "write a header line 'recording,label'",
        )
    labels = {}
    for row, (recording, value) in enumerate(
        zip(frame["recording"], frame["label"], strict=True)
    ):
        if not recording.strip():
            raise InputError(
                path,
                f"data row {row} has an empty recording name",
                "name the recording as 'grindwatch score' prints it, or delete the row",
            )
        label = label_value(value)
        if label is None:
            raise InputError(
                path,
                f"label {value!r} for {recording!r} is neither 1/0 nor a known word",
                "use 1 for anomalous and 0 for normal",
            )
        key = _label_key(recording.strip())
        if labels.get(key, label) != label:
            raise InputError(
                path,
                f"gives {key!r} the label {labels[key]} and, at data row {row}, "
                f"the label {label}",
                "keep one row for each recording",
            )
        labels[key] = label
    return labels


def _header_delimiter(path: Path) -> str:
    """Return the delimiter after the first column name in the header line, or ','.

    Spreadsheets in many European locales save CSV files with ';'. The name is
    matched in any case and in either column order, as the reader matches it.
    """
    try:
        with path.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return ","  # reading it again raises with the reason
    found = re.match(
        r'\s*"?(?:recording|label)"?\s*([,;\t|])', first, flags=re.IGNORECASE
    )
    return found.group(1) if found else ","


def _label_key(recording: str) -> str:
    """Return the key of a labels-file cell.

    A file name or path (with a recording file's extension) keeps its stem and
    last folder: ``stem`` or ``FOLDER/stem``. A recording name keeps all its
    folders, because names of one stem in several folders that share their last
    folder are ``m1/day/r`` and ``m2/day/r``.
    """
    from grindwatch.io.dataset import SIGNAL_SUFFIXES

    if "#" in recording:
        return recording
    path = Path(recording)
    if path.suffix.lower() not in SIGNAL_SUFFIXES:
        return path.as_posix()
    if path.parent.name:
        return f"{path.parent.name}/{path.stem}"
    return path.stem


def label_key_for(name: str, labels: dict[str, int]) -> str | None:
    """Return the key of ``labels`` that labels the recording ``name``, or None.

    An exact name wins. A name with folders (``m1/day/r``) also takes a label
    given for its last folders and stem (``day/r``) or the bare stem, the longest
    first. A name takes a label for a longer name (``m1/day/r`` for ``r`` or
    ``day/r``) when exactly one key ends in it. When none of these matches,
    name and keys are compared in Unicode NFC form, because file names written
    on macOS often spell ``ü`` as ``u`` plus a combining mark (NFD), while a
    labels file typed in a spreadsheet has the single code point.
    """
    key = _matching_key(name, labels)
    if key is not None:
        return key
    by_nfc = {unicodedata.normalize("NFC", key): key for key in labels}
    key = _matching_key(unicodedata.normalize("NFC", name), by_nfc)
    return None if key is None else by_nfc[key]


def _matching_key(name: str, keys: dict[str, object]) -> str | None:
    if name in keys:
        return name
    parts = name.split("/")
    # A key for the last folders of a longer name: "day/r" or "r" for "m1/day/r".
    for start in range(1, len(parts)):
        suffix = "/".join(parts[start:])
        if suffix in keys:
            return suffix
    # The only key whose last folders are the whole name: "m1/day/r" for "r".
    found = [key for key in keys if key.endswith(f"/{name}")]
    return found[0] if len(found) == 1 else None
