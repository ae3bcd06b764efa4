"""What every report shares: charts as PNG, a PDF with a Unicode font, a self-contained HTML page.

Charts: plotly figures are drawn to PNG by kaleido, which drives a headless Chromium
(Debian's, found on PATH). Starting the browser costs seconds and each figure after that
a fraction of one, so `figures_to_png` draws every figure of a report in one browser.

PDF: fpdf2 with DejaVu Sans, embedded, so tenant names with accents (Sofía, Malmö,
Yılmaz) print as typed; the built-in PDF fonts know Latin-1 only. Text is written as
text: nothing in it is read as markup.

HTML: one file, no external URL: the CSS is inline and the charts are data: URIs. Every
piece of text goes through html.escape.
"""

from __future__ import annotations

import asyncio
import base64
import html
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import plotly.graph_objects as go
from fpdf import FPDF
from fpdf.fonts import FontFace

from lockstep.errors import LockstepError

# Debian and Ubuntu: fonts-dejavu-core (.ci/run installs it).
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVu"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# Chart size in CSS pixels, drawn across an A4 page's 180 mm of text. Narrower would print
# larger labels, but the stage-mix legend would wrap into the title; at 900 px it keeps to
# one line and plotly's 12 px labels print at about 7 pt. Scale 2 keeps lines sharp.
CHART_WIDTH, CHART_HEIGHT, CHART_SCALE = 900, 420, 2
# Seconds kaleido may take per figure before giving up (the first one includes the browser start).
CHART_TIMEOUT = 120

INK = (33, 33, 33)
MUTED = (96, 110, 120)
RULE = (200, 205, 210)
HEAD_FILL = (236, 239, 241)


class ReportError(LockstepError):
    """A report could not be made (a missing font or browser); the message says what to install."""


# --- charts -------------------------------------------------------------------------------------


def chart_height(fig: go.Figure) -> int:
    """The figure's own height in CSS px (plotly's default when it sets none)."""
    return int(fig.layout.height or CHART_HEIGHT)


async def _draw_all(figures: Sequence[go.Figure], widths: Sequence[int], scale: float) -> list[bytes]:
    from kaleido import Kaleido

    # mathjax=False: kaleido would otherwise load MathJax from a CDN; no chart here uses LaTeX.
    async with Kaleido(n=1, timeout=CHART_TIMEOUT, mathjax=False) as k:
        return [
            await k.calc_fig(
                fig, opts={"format": "png", "width": width, "height": chart_height(fig), "scale": scale}
            )
            for fig, width in zip(figures, widths, strict=True)
        ]


def figures_to_png(
    figures: Sequence[go.Figure], *, widths: Sequence[int] | None = None, scale: float = CHART_SCALE
) -> list[bytes]:
    """Each figure as PNG bytes (`widths` in CSS px, default CHART_WIDTH), drawn in one headless browser."""
    if not figures:
        return []
    widths = list(widths) if widths is not None else [CHART_WIDTH] * len(figures)
    # A thread of its own: the caller may already run an event loop (Streamlit, pytest plugins).
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            return pool.submit(asyncio.run, _draw_all(list(figures), widths, scale)).result()
        except Exception as exc:  # noqa: BLE001 - kaleido raises many kinds; all mean "no images"
            raise ReportError(
                f"could not draw the charts ({type(exc).__name__}: {exc}); kaleido needs Chromium "
                "on PATH (Debian: apt-get install chromium)"
            ) from exc


# --- PDF ------------------------------------------------------------------------------------------


class ReportPDF(FPDF):
    """A4 portrait with DejaVu Sans, a running footer and helpers for headings, text and tables."""

    def __init__(self, *, title: str, footer: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        for style, name in FONT_FILES.items():
            path = FONT_DIR / name
            if not path.exists():
                raise ReportError(f"font {path} is missing (Debian: apt-get install fonts-dejavu-core)")
            self.add_font(FONT, style, str(path))
        self.set_title(title)
        self.set_creator("Lockstep")
        self.set_auto_page_break(auto=True, margin=16)
        self.set_margins(15, 15, 15)
        self._footer_text = footer
        self.add_page()
        self.set_text_color(*INK)

    @property
    def text_width(self) -> float:
        """Width between the margins, in mm."""
        return self.w - self.l_margin - self.r_margin

    def footer(self) -> None:
        """The running footer: what this is, and page N of M."""
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        self.cell(self.text_width * 0.8, 5, self._footer_text, align="L")
        self.cell(self.text_width * 0.2, 5, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(*INK)

    def title_block(self, title: str, subtitle: str) -> None:
        """The document's title and a line under it."""
        self.set_font(FONT, "B", 18)
        self.multi_cell(self.text_width, 9, title, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_font(FONT, "", 10)
        self.set_text_color(*MUTED)
        self.multi_cell(self.text_width, 5, subtitle, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(*INK)
        self.ln(2)
        self.set_draw_color(*RULE)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(4)

    def heading(self, text: str, *, need: float = 30) -> None:
        """A section heading, moved to the next page when fewer than `need` mm would follow it."""
        if self.get_y() + need > self.page_break_trigger:
            self.add_page()
        self.ln(2)
        self.set_font(FONT, "B", 13)
        self.multi_cell(self.text_width, 7, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def paragraph(self, text: str, *, size: float = 10, muted: bool = False, bold: bool = False) -> None:
        """A left-aligned paragraph of plain text."""
        self.set_font(FONT, "B" if bold else "", size)
        if muted:
            self.set_text_color(*MUTED)
        self.multi_cell(self.text_width, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(*INK)
        self.ln(1)

    def data_table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        widths: Sequence[float] | None = None,
        right: Sequence[int] = (),
        size: float = 9,
    ) -> None:
        """A table with a shaded header row repeated on every page; `right` = right-aligned columns."""
        self.set_font(FONT, "", size)
        self.set_draw_color(*RULE)
        with self.table(
            col_widths=tuple(widths) if widths else None,
            width=self.text_width,
            text_align="LEFT",
            line_height=size * 0.5,
            padding=(1, 1.5),
            headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL),
            borders_layout="HORIZONTAL_LINES",
            repeat_headings=1,
        ) as table:
            head = table.row()
            for i, name in enumerate(header):
                head.cell(str(name), align="RIGHT" if i in right else "LEFT")
            for values in rows:
                row = table.row()
                for i, value in enumerate(values):
                    row.cell("" if value is None else str(value), align="RIGHT" if i in right else "LEFT")
        self.ln(3)

    def chart(self, png: bytes, *, width_px: int, height_px: int) -> None:
        """A chart drawn at width_px × height_px, across the text width; on a new page if it would not fit."""
        h = self.text_width * height_px / width_px
        if self.get_y() + h > self.page_break_trigger:
            self.add_page()
        self.image(png, x=self.l_margin, w=self.text_width, h=h)
        self.ln(4)

    def to_bytes(self) -> bytes:
        """The finished document."""
        return bytes(self.output())


# --- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #212121;
       max-width: 960px; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #c8cdd2; padding-bottom: .2rem; }
p.sub, p.muted, footer { color: #606e78; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .9rem; }
th { background: #eceff1; text-align: left; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #c8cdd2; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
img.chart { width: 100%; max-width: 900px; height: auto; display: block; margin: .5rem 0 1.5rem; }
footer { margin-top: 3rem; font-size: .8rem; }
"""


def esc(value: object) -> str:
    """Text for HTML: escaped, never markup (None is empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()) -> str:
    """An HTML table of escaped text; `right` = right-aligned (numeric) columns."""

    def cls(i: int) -> str:
        return ' class="num"' if i in right else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc(v)}</td>" for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_image(png: bytes, alt: str) -> str:
    """A PNG inlined as a data: URI, so the page needs nothing from elsewhere."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def html_document(*, title: str, body: Sequence[str], footer: str) -> bytes:
    """A complete UTF-8 HTML page; `body` parts are already-escaped HTML fragments."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network: this page must not load anything, even if a fragment tried to.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        *body,
        f"<footer>{esc(footer)}</footer>",
        "</body></html>",
    ]
    return "\n".join(parts).encode("utf-8")


def generated_line(when: datetime) -> str:
    """'generated 2020-05-25 09:14 UTC' for footers."""
    return f"generated {when:%Y-%m-%d %H:%M} UTC"
