"""HTML building blocks of the report: page shell, inline styles, tables, images.

The page loads nothing: styles are inline, figures are data URIs, there is no
script, and links only jump within the page. All text from data (recording,
channel and parameter names) passes through ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["CSS", "escape", "figure", "page", "table"]

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #1a1a1a; background: #fff; margin: 0 auto; padding: 12px 20px;
       max-width: 1500px; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 18px 0 6px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 14px 0 4px; }
p { margin: 4px 0 8px; }
.meta { color: #444; font-size: 13px; }
.overview { display: grid; grid-template-columns: minmax(0, 560px) minmax(0, 1fr);
            gap: 16px; align-items: start; }
.overview h2 { margin-top: 6px; }
.scroll { max-height: 660px; overflow: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { padding: 2px 5px; border-bottom: 1px solid #e4e4e4; text-align: right; }
td { white-space: nowrap; }
td.text { white-space: normal; }
.name { white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; text-align: right; }
th.text, td.text { text-align: left; }
tr.flag td { font-weight: 600; background: #fff1e0; }
tr.model td { font-weight: 600; background: #e8f0fa; }
td.verdict { letter-spacing: 0.02em; }
img { max-width: 100%; height: auto; display: block; }
figure { margin: 6px 0 12px; }
figcaption { font-size: 12px; color: #444; }
article { border-top: 1px solid #bbb; padding-top: 4px; margin-top: 18px; }
.note { font-size: 12.5px; color: #333; }
.no-comparison { border-left: 3px solid #c86400; padding-left: 8px; }
a { color: #1f4e8c; }
@media (max-width: 1100px) { .overview { grid-template-columns: 1fr; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  .scroll { max-height: none; overflow: visible; border: 0; }
  th { position: static; }
  article, figure, .overview > div { break-inside: avoid; }
  article { break-before: page; }
  a { color: inherit; text-decoration: none; }
  tr.flag td, tr.model td { background: none; }
}
"""


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    text_columns: Iterable[int] = (0,),
    row_classes: Iterable[str] | None = None,
    table_id: str | None = None,
) -> str:
    """Render a table. Cells are HTML already (escape data before passing it).

    Columns in ``text_columns`` are left-aligned; the others hold numbers and are
    right-aligned.
    """
    text = set(text_columns)

    def cell(tag: str, index: int, content: str) -> str:
        kind = ' class="text"' if index in text else ""
        return f"<{tag}{kind}>{content}</{tag}>"

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(headers))
    classes = iter(row_classes) if row_classes is not None else None
    body = []
    for row in rows:
        css = next(classes) if classes is not None else ""
        attribute = f' class="{css}"' if css else ""
        cells = "".join(cell("td", i, c) for i, c in enumerate(row))
        body.append(f"<tr{attribute}>{cells}</tr>")
    identifier = f' id="{escape(table_id)}"' if table_id else ""
    return (
        f"<table{identifier}><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def figure(uri: str, alt: str, caption: str = "") -> str:
    """Render an embedded image with alternative text and an optional caption."""
    text = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{escape(alt)}">{text}</figure>'


def page(title: str, body: str) -> str:
    """Assemble the complete document: doctype, inline styles and ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon, so the browser does not look for /favicon.ico.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
