"""Labels for evaluation: folder names and labels CSV files.

Labels never reach fitting. Training code does not read ``Recording.label``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from grindwatch.exceptions import InputError

__all__ = ["label_from_path", "read_labels_csv"]

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


def label_from_path(path: Path) -> int | None:
    """Return 1 or 0 when a parent folder is named for a class, else None.

    The nearest parent wins, so ``bad/run_ok_3/x.csv`` is normal.
    """
    for folder in path.parents:
        words = set(re.split(r"[^a-z0-9]+", folder.name.lower()))
        if words & ANOMALOUS_WORDS:
            return 1
        if words & NORMAL_WORDS:
            return 0
    return None


_TRUE = {"1", "true", "yes", "bad", "nok", "anomalous", "anomaly", "broken", "worn"}
_FALSE = {"0", "false", "no", "good", "ok", "normal", "healthy", "unworn"}


def read_labels_csv(path: Path) -> dict[str, int]:
    """Read a labels file with columns ``recording`` and ``label``.

    ``recording`` is a recording name (file stem, or ``stem#row`` for table rows)
    or a file name; ``label`` is 1/0 or a word such as bad/good, NOK/OK, worn/unworn.
    """
    path = Path(path)
    try:
        # Names such as "NA" or "nan" are recording names here, not missing values.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(path, f"cannot be read as a labels CSV ({error})") from None
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
        word = str(value).strip().lower()
        if word in _TRUE:
            labels[Path(str(recording)).stem if "#" not in recording else recording] = 1
        elif word in _FALSE:
            labels[Path(str(recording)).stem if "#" not in recording else recording] = 0
        else:
            raise InputError(
                path,
                f"label {value!r} for {recording!r} is neither 1/0 nor a known word",
                "use 1 for anomalous and 0 for normal",
            )
    return labels
