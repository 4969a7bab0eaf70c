"""A self-contained HTML report: sections of text, tables and embedded figures.

Written by hand because the report is a few headings, tables and PNGs: a template
engine or a notebook converter would be a heavy dependency for that.
"""

import base64
import html
import io

__all__ = ["HTMLReport"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
nav ol { columns: 2; } .note { color: #555; font-size: 0.9em; }
"""


def _format(value):
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


class HTMLReport:
    """Collect sections, then write one HTML file with every figure inlined.

    Parameters
    ----------
    title : str

    Examples
    --------
    >>> report = HTMLReport("Study")
    >>> report.section("Data", "Two images.")
    >>> report.table([{"model": "a", "accuracy": 0.5}])
    >>> "<table>" in report.to_html()
    True
    """

    def __init__(self, title):
        self.title = title
        self._parts = []
        self._toc = []

    def section(self, heading, text=None):
        """Start a section with an optional paragraph."""
        anchor = f"s{len(self._toc) + 1}"
        self._toc.append((anchor, heading))
        self._parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>')
        if text:
            self.paragraph(text)

    def heading(self, text, level=3):
        """Add a heading inside the current section (``<h3>`` and below)."""
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def bullets(self, items):
        """Add a bulleted list of plain-text items."""
        listed = "".join(f"<li>{html.escape(item)}</li>" for item in items)
        self._parts.append(f"<ul>{listed}</ul>")

    def paragraph(self, text, *, note=False):
        """Add a paragraph of plain text."""
        css = ' class="note"' if note else ""
        self._parts.append(f"<p{css}>{html.escape(text)}</p>")

    def table(self, rows, *, caption=None):
        """Add a table from a list of dicts sharing the same keys."""
        if not rows:
            return
        columns = list(rows[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{_format(row.get(c, ''))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<tr>{head}</tr>{body}</table>")

    def figure(self, fig, caption=None, *, dpi=90):
        """Embed a matplotlib figure as a base64 PNG and close it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        alt = html.escape(caption or "figure")
        self._parts.append(
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'
        )

    def to_html(self):
        """Return the whole page as a string."""
        toc = "".join(
            f'<li><a href="#{a}">{html.escape(h)}</a></li>' for a, h in self._toc
        )
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1><nav><ol>{toc}</ol></nav>"
            + "\n".join(self._parts)
            + "</body></html>\n"
        )

    def write(self, path):
        """Write the page to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_html())
