"""A call's per-turn latency as an SVG bar chart, drawn on the server (no chart library,
no script): one bar per turn with its value, failed turns in red, the axis in round
steps (0.5 s, 1 s, 2 s...) and a dashed line at the one-second target, labelled."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

W, H, LEFT, RIGHT, BOTTOM, TOP = 640, 230, 52, 84, 30, 18
TARGET_MS = 1000.0
STEPS_MS = (500, 1000, 2000, 5000, 10000, 20000, 30000, 60000)


def axis(max_ms: float, ticks: int = 6) -> tuple[float, float]:
    """(top, step) in ms: the smallest round step that covers ``max_ms`` (and the target,
    with room above it) in at most ``ticks`` steps."""
    want = max(max_ms, TARGET_MS) * 1.08
    step = next((float(s) for s in STEPS_MS if want / s <= ticks), float(STEPS_MS[-1]))
    return math.ceil(want / step) * step, step


def _seconds(ms: float) -> str:
    return f"{ms / 1000:g} s"


def latency_svg(turns) -> Markup:
    if not turns:
        return Markup('<p class="empty">No turns: the caller did not speak.</p>')
    values = [t.latency_ms or 0.0 for t in turns]
    top, step = axis(max(values))
    plot_h, plot_w = H - BOTTOM - TOP, W - LEFT - RIGHT
    slot = plot_w / len(turns)
    bar = max(4.0, min(44.0, slot * 0.6))

    def y(ms: float) -> float:
        return TOP + plot_h * (1 - ms / top)

    parts = [f'<svg class="chart" role="img" aria-label="Latency per turn" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(round(top / step) + 1):
        ms = step * i
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(ms) + 4:.1f}" class="axis" text-anchor="end">{_seconds(ms)}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(TARGET_MS):.1f}" y2="{y(TARGET_MS):.1f}" class="target"/>'
                 f'<text x="{W - RIGHT + 6}" y="{y(TARGET_MS) + 4:.1f}" class="target-label">1 s target</text>')
    small = len(turns) > 16  # too narrow for a value on every bar
    for i, (t, v) in enumerate(zip(turns, values, strict=True)):
        x = LEFT + slot * i + (slot - bar) / 2
        failed = t.outcome != "ok"
        h = max(2.0, plot_h * v / top) if v else 2.0
        label = f"turn {t.n}: " + (f"{v:.0f} ms" if t.latency_ms is not None else "no reply audio") + ("" if not failed else f" ({t.outcome})")
        parts.append(
            f'<rect class="bar{" failed" if failed else ""}" data-turn="{t.n}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}</title></rect>"
            f'<text x="{x + bar / 2:.1f}" y="{H - 10}" class="axis" text-anchor="middle">{t.n}</text>'
        )
        if not small:
            value = f"{v:.0f} ms" if t.latency_ms is not None else ("failed" if failed else "-")
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h - h - 4:.1f}" class="value{" failed" if failed else ""}" text-anchor="middle">{value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
