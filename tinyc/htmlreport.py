"""One self-contained HTML page about a compiled model: the memory plan as a picture, per-layer
MACs, weight bytes, instructions (when bench data is there) and quantization error, and RAM/flash
against the target's board. No network, no external files: inline CSS, SVG and a few lines of
script. Python computes every coordinate; the template only loops."""
from __future__ import annotations

import hashlib
import math
from typing import Any

import jinja2

from . import __version__
from .resources import data_dir
from .targets import Target

PLOT_W, PLOT_H = 900, 320  # memory picture, px (inside the margins)
MARGIN_L, MARGIN_T, MARGIN_B = 80, 16, 40
QPLOT_H = 160  # quantization error chart


def _color(name: str) -> str:
    h = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({h}, 55%, 62%)"


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else "\u2026" + name[-(n - 1):]


def _num(v: float | int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "\u221e" if v > 0 else "-\u221e"
    if isinstance(v, float):
        return f"{v:.1f}"
    return f"{v:,}"


def memory_picture(report: dict[str, Any]) -> dict[str, Any]:
    """Boxes (one per planned tensor) over step x address, the arena and lower-bound lines and
    the live-bytes curve, in SVG coordinates."""
    steps = max(len(report["layers"]), 1)
    arena = report["arena_bytes"]
    bound = report["arena_lower_bound_bytes"]
    top = max(arena, bound, 1)
    sx = PLOT_W / steps
    sy = PLOT_H / top
    base = MARGIN_T + PLOT_H

    def y(addr: float) -> float:
        return round(base - addr * sy, 2)

    boxes = []
    for t in report.get("memory_tensors", []):
        x0 = MARGIN_L + t["first_use"] * sx
        w = (t["last_use"] - t["first_use"] + 1) * sx
        boxes.append(dict(x=round(x0 + 0.5, 2), y=y(t["offset"] + t["size"]), w=round(max(w - 1, 1), 2),
                          h=round(max(t["size"] * sy, 1.0), 2), color="#bbb" if t["kind"] == "scratch" else _color(t["name"]),
                          kind=t["kind"], node=t["first_use"],
                          title=f"{t['name']} ({t['kind']}): {t['size']:,} B at offset {t['offset']:,}, "
                                f"steps {t['first_use']}..{t['last_use']}"))
    live = []
    for s in range(steps):
        live.append(sum(b["size"] for b in report["memory_plan"] if b["first_use"] <= s <= b["last_use"]))
    curve = " ".join(f"{round(MARGIN_L + s * sx, 2)},{y(v)} {round(MARGIN_L + (s + 1) * sx, 2)},{y(v)}"
                     for s, v in enumerate(live))
    yticks = [dict(y=y(v), label=f"{int(v):,}") for v in _ticks(top)]
    xticks = [dict(x=round(MARGIN_L + (s + 0.5) * sx, 2), label=str(s))
              for s in range(0, steps, max(1, math.ceil(steps / 30)))]
    return dict(width=MARGIN_L + PLOT_W + 20, height=MARGIN_T + PLOT_H + MARGIN_B, left=MARGIN_L, top=MARGIN_T,
                right=MARGIN_L + PLOT_W, base=base, boxes=boxes, curve=curve, arena_y=y(arena), bound_y=y(bound),
                arena=arena, bound=bound, yticks=yticks, xticks=xticks)


def _ticks(top: int) -> list[float]:
    step = 10 ** max(0, int(math.log10(top)) - 1) if top > 0 else 1
    while top / step > 6:
        step *= 2 if str(step)[0] == "1" else 2.5 if str(step)[0] == "2" else 2
    return [k * step for k in range(int(top // step) + 1)]


def budget_bars(report: dict[str, Any], target: Target) -> list[dict[str, Any]]:
    """RAM and flash, split into their parts, against the board's memory."""
    m = report.get("measured") or {}
    ram_parts = [("arena and statics", m.get("bss_bytes", report["arena_bytes"]) + m.get("data_bytes", 0)),
                 ("I/O buffers", report["io_bytes"]), ("stack (estimate)", m.get("stack_bytes_estimate", 0))]
    flash_parts = [("weights and tables", m.get("rodata_bytes", report["weights_bytes"]) + m.get("data_bytes", 0)),
                   ("code", m.get("code_bytes", 0)), ("weights blob", report.get("weights_blob", {}).get("bytes", 0))]
    bars = []
    for label, parts, limit, key in (("RAM", ram_parts, target.ram_bytes, "ram"),
                                     ("flash", flash_parts, target.flash_bytes, "flash")):
        total = report.get(f"{key}_bytes", sum(v for _, v in parts))
        scale = max(limit, total, 1)
        segs, x = [], 0.0
        for (name, v), color in zip(parts, ("#4a7fc1", "#e39b3b", "#8a6bbf", "#5aa469")):
            if v:
                segs.append(dict(name=name, bytes=f"{v:,}", left=round(100 * x / scale, 3), width=round(100 * v / scale, 3),
                                 color=color))
                x += v
        bars.append(dict(label=label, key=key, total=f"{total:,}", limit=f"{limit:,}" if limit else None,
                         percent=f"{100 * total / limit:.1f}%" if limit else "", over=bool(limit) and total > limit,
                         segments=segs))
    return bars


def layer_rows(report: dict[str, Any], errors: list[dict] | None, bench: dict | None) -> list[dict[str, Any]]:
    by_index = {}
    for e in errors or []:
        by_index.setdefault(e["index"], e)  # the first output of a node
    bench_layers = bench["layers"] if bench else []
    max_macs = max([l["macs"] for l in report["layers"]] + [1])
    rows = []
    for i, l in enumerate(report["layers"]):
        e = by_index.get(i, {})
        insn = bench_layers[i]["instructions"] if i < len(bench_layers) else None
        target = e.get("target_equal")
        rows.append(dict(
            index=i, name=_short(l["name"]), full_name=l["name"], op=l["op"], shape="\u00d7".join(map(str, l["output_shape"])),
            macs=f"{l['macs']:,}", macs_pct=round(100 * l["macs"] / max_macs, 2), weights=f"{l.get('weights_bytes', 0):,}",
            instructions=None if insn is None else f"{insn:,}",
            per_mac=f"{insn / l['macs']:.2f}" if insn and l["macs"] else "-",
            sqnr=_num(_float(e.get("sqnr_db"))), drop=_num(_float(e.get("sqnr_drop_db"))),
            max_error=f"{e['max_error']:.3g}" if e.get("max_error") is not None else "-",
            target="view" if l.get("view") else ("-" if target is None else "equal" if target else
                                                 f"DIFFERS ({e['target_mismatches']} values)"),
            bad=target is False, view=bool(l.get("view")), **_choice(l.get("kernel_choice")),
        ))
    return rows


def _choice(c: dict | None) -> dict[str, str]:
    """The layer's kernel (--optimize) and, as its tooltip, every option's estimates."""
    if c is None:
        return dict(kernel="", kernel_options="")
    tips = [f"{'chosen' if o['chosen'] else 'instead'}: {o['kernel']} [{o['form']}] {o['instructions']:,} instructions, "
            f"{o['flash_bytes']:,} B flash, {o['flash_read_bytes']:,} B read, {o['cycles']:,} cycles" for o in c["options"]]
    return dict(kernel=f"{c['kernel']} [{c['form']}]", kernel_options="\n".join(tips))


def _float(v) -> float | None:
    if v is None:
        return None
    return float(v) if not isinstance(v, str) else (math.inf if v == "inf" else -math.inf)


def error_chart(errors: list[dict] | None) -> dict[str, Any] | None:
    """SQNR per layer as bars (int8 reference against float)."""
    pts = [e for e in errors or [] if e.get("sqnr_db") is not None]
    if not pts:
        return None
    vals = [min(_float(e["sqnr_db"]), 80.0) for e in pts]
    top = max(max(vals), 10.0)
    bw = PLOT_W / len(pts)
    base = MARGIN_T + QPLOT_H
    bars = []
    for e, v in zip(pts, vals):
        h = max(v, 0.0) / top * QPLOT_H
        bars.append(dict(x=round(MARGIN_L + len(bars) * bw + 1, 2), w=round(max(bw - 2, 1), 2), y=round(base - h, 2),
                         h=round(h, 2), label=str(e["index"]), title=f"layer {e['index']} {e['op']} '{e['name']}': "
                         f"SQNR {_num(_float(e['sqnr_db']))} dB, max error {e['max_error']:.3g}"))
    yticks = [dict(y=round(base - v / top * QPLOT_H, 2), label=f"{v:g}") for v in _ticks(int(top))]
    return dict(width=MARGIN_L + PLOT_W + 20, height=MARGIN_T + QPLOT_H + MARGIN_B, left=MARGIN_L,
                right=MARGIN_L + PLOT_W, base=base, bars=bars, yticks=yticks)


def render(report: dict[str, Any], target: Target, errors: list[dict] | None = None, bench: dict | None = None,
           summary: dict | None = None, samples_note: str = "") -> str:
    """The page. ``errors``: `tinyc diff`'s per-layer rows (LayerDiff.to_json); ``bench``: the
    result of `tinyc bench`."""
    m = report.get("measured") or {}
    cards = [("arena", "arena", f"{report['arena_bytes']:,} B"),
             ("lower-bound", "arena lower bound", f"{report['arena_lower_bound_bytes']:,} B"),
             ("weights", "weights", f"{report['weights_bytes']:,} B"),
             ("macs", "MACs", f"{report['macs_total']:,}")]
    if "patch" in report:
        p = report["patch"]
        cards.append(("patch", f"patched ({len(p['stages'])} stage{'s' if len(p['stages']) > 1 else ''} in bands)",
                      f"{p['arena_lower_bound_before_bytes']:,} B -> {p['arena_bytes']:,} B"))
    if m.get("code_bytes") is not None:
        cards.append(("code", f"code ({m.get('measured_with', '')})", f"{m['code_bytes']:,} B"))
    if bench:
        cards.append(("instructions", f"instructions ({bench['machine']})", f"{bench['instructions_total']:,}"))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates") / "report")),
                             undefined=jinja2.StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        r=report, version=__version__, target=target, cards=cards, memory=memory_picture(report),
        bars=budget_bars(report, target), rows=layer_rows(report, errors, bench), chart=error_chart(errors),
        has_errors=bool(errors and any(e.get("sqnr_db") is not None for e in errors)),
        has_target=bool(errors and any(e.get("target_equal") is not None for e in errors)),
        has_choice=any("kernel_choice" in l for l in report["layers"]),
        bench=bench, summary=summary or {}, samples_note=samples_note,
        planned=len(report.get("memory_tensors", [])),
    )
