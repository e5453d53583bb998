"""The noun for one scored item in user-facing text.

Signal data is scored per recording (a file, or one cycle cut from it). A feature
table (``data.kind: table``) is scored per row, because each row is one cycle.
Result tables and JSON keep their ``recording`` names for both kinds, so only
messages, titles and headers use this noun.
"""

from __future__ import annotations

__all__ = ["item_noun"]


def item_noun(kind: str, count: int = 2) -> str:
    """Return "row" or "rows" for a feature table, else "recording" or "recordings".

    ``kind`` is the model's or the config's data kind ("signals" or "table"), and
    ``count`` picks the singular (1) or the plural (any other number).
    """
    singular = "row" if kind == "table" else "recording"
    return singular if count == 1 else f"{singular}s"
