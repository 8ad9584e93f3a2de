"""Draw docs/architecture.svg from its text source, docs/architecture.yaml.

    .venv/bin/python scripts/draw_architecture.py [--source FILE.yaml] [--output FILE.svg]

The output is byte-for-byte reproducible: fixed sizes and fonts, text kept as SVG text (no glyph paths that
depend on the fonts installed), a fixed hash salt for the SVG's ids and no creation date, so regenerating
an unchanged source gives the same file and a test can compare the committed picture with the source.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "architecture.yaml"
OUTPUT = ROOT / "docs" / "architecture.svg"

STYLE = {
    "svg.hashsalt": "shipyard-architecture",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "path.simplify": False,
}
TITLE_SIZE, BODY_SIZE, LABEL_SIZE, HEADING_SIZE = 10.5, 8.2, 7.8, 13


def boundary_point(
    center: tuple[float, float], size: tuple[float, float], toward: tuple[float, float]
) -> tuple[float, float]:
    """Where the ray from a box's centre toward a point leaves the box."""
    (cx, cy), (w, h) = center, size
    dx, dy = toward[0] - cx, toward[1] - cy
    if dx == 0 and dy == 0:
        return center
    scale = min(
        (w / 2) / abs(dx) if dx else math.inf,
        (h / 2) / abs(dy) if dy else math.inf,
    )
    return (round(cx + dx * scale, 4), round(cy + dy * scale, 4))


def label_position(edge: dict[str, Any], points: list[tuple[float, float]]) -> tuple[float, float, str]:
    """Where an edge's label goes: ``label_at`` if given, else beside the middle segment, clear of the
    line (above a horizontal one, right of a vertical one)."""
    if "label_at" in edge:
        x, y = edge["label_at"]
        return x, y, "center"
    a, b = points[len(points) // 2 - 1], points[len(points) // 2]
    x, y = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    lines = str(edge["label"]).count("\n") + 1
    if abs(a[1] - b[1]) < 1e-9:  # horizontal
        return x, y + 0.1 + 0.13 * lines, "center"
    return x + 0.12, y, "left"


def load(source: Path) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    missing = {e[k] for e in spec["edges"] for k in ("from", "to")} - set(spec["nodes"])
    if missing:
        raise SystemExit(f"{source}: edges name unknown nodes: {sorted(missing)}")
    unknown = {n["group"] for n in spec["nodes"].values()} - set(spec["groups"])
    if unknown:
        raise SystemExit(f"{source}: nodes name unknown groups: {sorted(unknown)}")
    return spec


def draw(spec: dict[str, Any], output: Path) -> None:
    # The object API, not pyplot: no global backend switch, so tests can call this in-process.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path as MplPath

    with matplotlib.rc_context(STYLE):
        width, height = spec["size"]
        box_w, box_h = spec["box"]
        fig = Figure(figsize=(width, height))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.set_axis_off()

        ax.text(0.35, height - 0.45, spec["title"], fontsize=HEADING_SIZE, fontweight="bold", va="center")

        groups = spec["groups"]
        for node in spec["nodes"].values():
            cx, cy = node["at"]
            colours = groups[node["group"]]
            ax.add_patch(
                FancyBboxPatch(
                    (cx - box_w / 2, cy - box_h / 2),
                    box_w,
                    box_h,
                    boxstyle="round,pad=0,rounding_size=0.12",
                    facecolor=colours["fill"],
                    edgecolor=colours["edge"],
                    linewidth=1.4,
                    zorder=2,
                )
            )
            ax.text(
                cx,
                cy + box_h / 2 - 0.25,
                node["title"],
                ha="center",
                va="center",
                fontsize=TITLE_SIZE,
                fontweight="bold",
                color=colours["edge"],
                zorder=3,
            )
            ax.text(
                cx,
                cy - 0.12,
                node["body"],
                ha="center",
                va="center",
                fontsize=BODY_SIZE,
                color="#222222",
                linespacing=1.35,
                zorder=3,
            )

        for edge in spec["edges"]:
            start_node, end_node = spec["nodes"][edge["from"]], spec["nodes"][edge["to"]]
            via = [tuple(p) for p in edge.get("via", [])]
            first_target = via[0] if via else tuple(end_node["at"])
            last_source = via[-1] if via else tuple(start_node["at"])
            start = (
                tuple(edge["start"])
                if "start" in edge
                else boundary_point(tuple(start_node["at"]), (box_w, box_h), first_target)
            )
            end = boundary_point(tuple(end_node["at"]), (box_w, box_h), last_source)
            points = [start, *via, end]
            colour = "#444444"
            arrow = FancyArrowPatch(
                path=MplPath(points, [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)),
                arrowstyle="-|>",
                mutation_scale=13,
                linewidth=1.3,
                linestyle="--" if edge.get("style") == "dashed" else "-",
                color=colour,
                shrinkA=0,
                shrinkB=2,
                zorder=1,
            )
            ax.add_patch(arrow)
            if "label" in edge:
                lx, ly, align = label_position(edge, points)
                ax.text(
                    lx,
                    ly,
                    edge["label"],
                    ha=align,
                    va="center",
                    fontsize=LABEL_SIZE,
                    color="#333333",
                    linespacing=1.2,
                    zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
                )

        handles = [Patch(facecolor=g["fill"], edgecolor=g["edge"], label=g["label"]) for g in groups.values()]
        ax.legend(
            handles=handles,
            loc="lower right",
            bbox_to_anchor=(0.985, 0.02),
            frameon=False,
            fontsize=LABEL_SIZE + 0.4,
            ncol=1,
        )

        output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(
            output,
            format="svg",
            metadata={"Date": None, "Creator": "scripts/draw_architecture.py", "Title": spec["title"]},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the text source (YAML)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the SVG to write")
    args = parser.parse_args(argv)
    draw(load(args.source), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
