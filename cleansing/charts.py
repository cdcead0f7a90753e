"""Small inline SVG charts for the report: no library, no script, nothing fetched when opened."""

from __future__ import annotations

import html
from collections.abc import Sequence

PALETTE = {"keep": "#2e7d32", "reconfirm": "#f9a825", "discard": "#c62828", "quarantine": "#6d4c41"}
DEFAULT = "#1565c0"


def _esc(text: object) -> str:
    return html.escape(str(text))


def _label(text: str, limit: int = 34) -> str:
    """Chart labels are cut from the left (file names differ at their ends); the full text is a tooltip."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def hbars(items: Sequence[tuple[str, float, str | None]], *, width: int = 720, unit: str = "", title: str = "") -> str:
    """Horizontal bars, one per ``(label, value, colour)``, the value written at the bar's end."""
    if not items:
        items = [("none", 0, None)]
    row, label_w = 24, 230
    top = max((abs(v) for _, v, _ in items), default=0) or 1
    height = row * len(items) + 10
    scale = (width - label_w - 90) / top
    parts = [
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value, colour) in enumerate(items):
        y = 5 + i * row
        w = max(abs(value) * scale, 1 if value else 0)
        x = label_w if value >= 0 else label_w
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"<title>{_esc(label)}</title>{_esc(_label(label))}</text>"
        )
        parts.append(f'<rect x="{x}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour or DEFAULT}"/>')
        shown = f"{value:+,}" if unit == "delta" else f"{value:,}{unit}"
        parts.append(f'<text x="{x + w + 5:.1f}" y="{y + 15}" font-size="12">{_esc(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked(rows: Sequence[tuple[str, dict[str, int]]], *, width: int = 720, title: str = "") -> str:
    """One 100 % bar per row, split by class, with a legend."""
    row, label_w = 26, 230
    height = row * len(rows) + 34
    parts = [
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    span = width - label_w - 10
    for i, (label, counts) in enumerate(rows):
        y = 5 + i * row
        total = sum(counts.values()) or 1
        x = float(label_w)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"<title>{_esc(label)}</title>{_esc(_label(label))}</text>"
        )
        for klass, count in counts.items():
            w = span * count / total
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
                f'fill="{PALETTE.get(klass, DEFAULT)}"><title>{_esc(klass)}: {count:,}</title></rect>'
            )
            x += w
    y = height - 18
    for i, klass in enumerate(PALETTE):
        parts.append(
            f'<rect x="{label_w + i * 110}" y="{y}" width="12" height="12" fill="{PALETTE[klass]}"/>'
            f'<text x="{label_w + i * 110 + 16}" y="{y + 11}" font-size="12">{klass}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    buckets: Sequence[tuple[str, int]], *, lines: Sequence[tuple[int, str]] = (), width: int = 720, title: str = ""
) -> str:
    """Vertical bars per bucket; ``lines`` are ``(bucket index, label)`` drawn as vertical rules."""
    height, bottom, left = 240, 40, 40
    n = max(len(buckets), 1)
    bar = (width - left - 10) / n
    top = max((c for _, c in buckets), default=0) or 1
    scale = (height - bottom - 20) / top
    parts = [
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#444"/>',
    ]
    for i, (label, count) in enumerate(buckets):
        x = left + i * bar
        h = count * scale
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
            f'fill="{DEFAULT}"><title>{_esc(label)}: {count:,}</title></rect>'
        )
        if i % max(1, n // 12) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                f'font-size="10">{_esc(label)}</text>'
            )
    for index, label in lines:
        x = left + index * bar
        parts.append(
            f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - bottom}" stroke="#c62828" '
            f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="20" font-size="11" fill="#c62828">'
            f"{_esc(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
