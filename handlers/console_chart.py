"""A call's per-turn latency as an SVG bar chart, drawn on the server (no chart library,
no script): one bar per turn, failed turns in red, a dashed line at one second."""

from __future__ import annotations

from markupsafe import Markup, escape

W, H, LEFT, BOTTOM, TOP = 640, 220, 48, 28, 12


def _nice_max(v: float) -> float:
    for step in (500, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 60000):
        if v <= step:
            return float(step)
    return v


def latency_svg(turns) -> Markup:
    if not turns:
        return Markup('<p class="muted">No turns: the caller did not speak.</p>')
    values = [t.latency_ms or 0.0 for t in turns]
    top = _nice_max(max(max(values), 1000.0))
    plot_h, plot_w = H - BOTTOM - TOP, W - LEFT - 10
    slot = plot_w / len(turns)
    bar = max(4.0, min(48.0, slot * 0.6))

    def y(ms: float) -> float:
        return TOP + plot_h * (1 - ms / top)

    parts = [f'<svg class="chart" role="img" aria-label="Latency per turn" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        ms = top * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{W - 10}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(ms) + 4:.1f}" class="axis" text-anchor="end">{ms / 1000:g}s</text>')
    parts.append(f'<line x1="{LEFT}" x2="{W - 10}" y1="{y(1000):.1f}" y2="{y(1000):.1f}" class="target"/>')
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
    parts.append("</svg>")
    return Markup("".join(parts))
