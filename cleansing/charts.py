"""Small inline SVG charts for the report: no library, no script, nothing fetched when opened.

Charts are drawn at a fixed size and never scaled down: on a narrow screen their box scrolls, so the
text stays as legible as on a wide one.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

PALETTE = {"keep": "#2e7d32", "reconfirm": "#f9a825", "discard": "#c62828", "quarantine": "#6d4c41"}
DEFAULT = "#1565c0"
FONT = 12


def _esc(text: object) -> str:
    return html.escape(str(text))


def shorten(text: str, limit: int) -> str:
    """Cut from the middle: file names differ at their start (the export's kind) and end (its id)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def distinct_labels(texts: Sequence[str], limit: int = 34) -> list[str]:
    """Each text shortened to ``limit`` characters, longer where that is what keeps the labels apart."""
    for width in range(limit, max((len(t) for t in texts), default=0) + 1):
        labels = [shorten(t, width) for t in texts]
        if len(set(labels)) == len(set(texts)):
            return labels
    return list(texts)


def _svg(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-size="{FONT}">'
    )


def _label(x: float, y: float, full: str, shown: str) -> str:
    return f'<text x="{x}" y="{y}" text-anchor="end"><title>{_esc(full)}</title>{_esc(shown)}</text>'


def hbars(items: Sequence[tuple[str, float, str | None]], *, width: int = 720, unit: str = "", title: str = "") -> str:
    """Horizontal bars, one per ``(label, value, colour)``, the value written at the bar's end. Negative
    values grow to the left of a zero line."""
    row, label_w, room = 24, 230, 70
    labels = distinct_labels([label for label, _, _ in items])
    most = max((v for _, v, _ in items), default=0)
    least = min((v for _, v, _ in items), default=0)
    span = (most - min(least, 0)) or 1
    scale = (width - label_w - 2 * room) / span
    zero = label_w + room + (-min(least, 0)) * scale if least < 0 else label_w
    height = row * len(items) + 10
    parts = [_svg(width, height, title)]
    if least < 0:
        parts.append(f'<line x1="{zero:.1f}" y1="2" x2="{zero:.1f}" y2="{height - 2}" stroke="#444"/>')
    for i, ((label, value, colour), shown_label) in enumerate(zip(items, labels, strict=True)):
        y = 5 + i * row
        w = max(abs(value) * scale, 1 if value else 0)
        x = zero if value >= 0 else zero - w
        parts.append(_label(label_w - 6, y + 15, label, shown_label))
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour or DEFAULT}"/>')
        shown = f"{value:+,}" if unit == "delta" else f"{value:,}{unit}"
        if value >= 0:
            parts.append(f'<text x="{x + w + 5:.1f}" y="{y + 15}">{_esc(shown)}</text>')
        else:
            parts.append(f'<text x="{x - 5:.1f}" y="{y + 15}" text-anchor="end">{_esc(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked(rows: Sequence[tuple[str, dict[str, int]]], *, width: int = 720, title: str = "") -> str:
    """One 100 % bar per row, split by class, with a legend."""
    row, label_w = 26, 230
    height = row * len(rows) + 34
    labels = distinct_labels([label for label, _ in rows])
    parts = [_svg(width, height, title)]
    span = width - label_w - 10
    for i, ((label, counts), shown_label) in enumerate(zip(rows, labels, strict=True)):
        y = 5 + i * row
        total = sum(counts.values()) or 1
        x = float(label_w)
        parts.append(_label(label_w - 6, y + 15, label, shown_label))
        for klass, count in counts.items():
            w = span * count / total
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
                f'fill="{PALETTE.get(klass, DEFAULT)}"><title>{_esc(klass)}: {count:,}</title></rect>'
            )
            x += w
    parts.append(_legend(label_w, height - 18, list(PALETTE)))
    parts.append("</svg>")
    return "".join(parts)


def _legend(x: float, y: float, classes: Sequence[str]) -> str:
    return "".join(
        f'<rect x="{x + i * 110}" y="{y}" width="12" height="12" fill="{PALETTE[k]}"/>'
        f'<text x="{x + i * 110 + 16}" y="{y + 11}">{_esc(k)}</text>'
        for i, k in enumerate(classes)
    )


def _ticks(top: int) -> list[int]:
    """Round steps (1, 2, 5 times a power of ten) from 0 past ``top``, at most six of them."""
    if top <= 0:
        return [0]
    power = 1
    while True:
        for step in (power, 2 * power, 5 * power):
            if top / step <= 5:
                return list(range(0, -(-top // step) * step + 1, step))
        power *= 10


def histogram(
    buckets: Sequence[tuple[str, dict[str, int]]],
    *,
    lines: Sequence[tuple[int, str]] = (),
    width: int = 720,
    title: str = "",
) -> str:
    """Vertical bars per bucket, stacked by class, with a count axis and each bar's total above it;
    ``lines`` are ``(bucket index, label)`` drawn as vertical rules at the bucket's left edge."""
    height, bottom, left, top_pad = 280, 58, 56, 28
    n = max(len(buckets), 1)
    bar = (width - left - 10) / n
    totals = [sum(c.values()) for _, c in buckets]
    ticks = _ticks(max(totals, default=0))
    top = ticks[-1] or 1
    scale = (height - bottom - top_pad) / top
    base = height - bottom
    parts = [_svg(width, height, title)]
    for tick in ticks:
        y = base - tick * scale
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left}" y2="{top_pad - 8}" stroke="#444"/>')
    parts.append(f'<text x="4" y="{top_pad - 14}">records</text>')
    for i, ((label, counts), total) in enumerate(zip(buckets, totals, strict=True)):
        x = left + i * bar
        y = float(base)
        for klass, count in counts.items():
            h = count * scale
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE.get(klass, DEFAULT)}">'
                f"<title>{_esc(label)} months, {_esc(klass)}: {count:,}</title></rect>"
            )
        if total:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="10">{total:,}</text>'
            )
        if i % max(1, n // 9) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{base + 15}" text-anchor="middle">{_esc(label)}</text>')
    parts.append(f'<text x="{left}" y="{base + 31}">months before the as-of date</text>')
    for index, label in lines:
        x = left + index * bar
        parts.append(
            f'<line x1="{x:.1f}" y1="{top_pad - 8}" x2="{x:.1f}" y2="{base}" stroke="#333" stroke-dasharray="4 3"/>'
            f'<text x="{x + 4:.1f}" y="{top_pad - 12}" fill="#333">{_esc(label)}</text>'
        )
    parts.append(_legend(left, height - 14, ["keep", "reconfirm", "discard"]))
    parts.append("</svg>")
    return "".join(parts)
