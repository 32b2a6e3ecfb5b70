"""The workflow page's graph: nodes in layers (a node one layer below its lowest parent), as SVG shapes.

Up to COLLAPSE_AT nodes every node is drawn; beyond, the nodes of one stage (submit file) in one
layer are drawn as one box with their counts per state, so a 10,000-node workflow is four boxes.
Linear in the nodes and edges; the template turns the shapes into SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLLAPSE_AT = 300
STATE_COLOURS = {
    "waiting": "#dee2e6",
    "ready": "#adb5bd",
    "queued": "#9bbcf0",
    "running": "#2f6fde",
    "done": "#2f9e5b",
    "failed": "#d64545",
    "notrun": "#f1c6c6",
    "removed": "#6c757d",
}
NODE_W, NODE_H, GAP_X, GAP_Y = 22, 16, 6, 46
BOX_W, BOX_H = 200, 40


@dataclass
class Shape:
    x: float
    y: float
    w: float
    h: float
    colour: str
    title: str
    label: str = ""
    bars: list[tuple[float, float, str]] = field(default_factory=list)  # (x, width, colour) inside a box


@dataclass
class Graph:
    width: float
    height: float
    shapes: list[Shape]
    edges: list[tuple[float, float, float, float]]
    collapsed: bool


NodeRow = tuple[int, str, str, str, list[int], bool]  # index, name, stage, state, parents, final


def layers(rows: list[NodeRow]) -> dict[int, int]:
    """Each node's layer: 0 for roots, one below its deepest parent; the FINAL node last. Rows come in
    topological order (the DAG reader's), so one pass suffices."""
    depth: dict[int, int] = {}
    finals = []
    for index, _, _, _, parents, final in rows:
        if final:
            finals.append(index)
            continue
        depth[index] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
    bottom = max(depth.values(), default=-1) + 1
    for index in finals:
        depth[index] = bottom
    return depth


Group = tuple[int, str]  # (layer, stage)


def build(rows: list[NodeRow], running: set[int]) -> Graph:
    """Every node drawn (small workflows; the preview), or per stage beyond COLLAPSE_AT nodes."""
    depth = layers(rows)
    if len(rows) > COLLAPSE_AT:
        groups: dict[Group, dict[str, int]] = {}
        for index, _, stage, state, _, _ in rows:
            counts = groups.setdefault((depth[index], stage), {})
            shown = "running" if index in running else state
            counts[shown] = counts.get(shown, 0) + 1
        links = {
            ((depth[p], rows[p][2]), (depth[index], stage))
            for index, _, stage, _, parents, _ in rows
            for p in parents
            if (depth[p], rows[p][2]) != (depth[index], stage)
        }
        return collapsed(groups, sorted(links))
    by_layer: dict[int, list[NodeRow]] = {}
    for row in rows:
        by_layer.setdefault(depth[row[0]], []).append(row)
    widest = max((len(v) for v in by_layer.values()), default=1)
    width = max(widest * (NODE_W + GAP_X) + GAP_X, 200)
    centres: dict[int, tuple[float, float]] = {}
    shapes = []
    for layer, members in sorted(by_layer.items()):
        row_width = len(members) * (NODE_W + GAP_X) - GAP_X
        x0 = (width - row_width) / 2
        y = 10 + layer * (NODE_H + GAP_Y)
        for k, (index, name, _stage, state, _, _) in enumerate(members):
            shown = "running" if index in running else state
            x = x0 + k * (NODE_W + GAP_X)
            centres[index] = (x + NODE_W / 2, y)
            shapes.append(Shape(x, y, NODE_W, NODE_H, STATE_COLOURS.get(shown, "#ccc"), f"{name}: {shown}"))
    edges = []
    for index, _, _, _, parents, _ in rows:
        cx, cy = centres[index]
        for p in parents:
            px, py = centres[p]
            edges.append((px, py + NODE_H, cx, cy))
    height = 20 + (max(by_layer, default=0) + 1) * (NODE_H + GAP_Y) - GAP_Y
    return Graph(width, height, shapes, edges, False)


def collapsed(groups: dict[Group, dict[str, int]], links: list[tuple[Group, Group]]) -> Graph:
    """One box per stage and layer with its counts per state, from counts the database adds up."""
    by_layer: dict[int, list[tuple[int, str]]] = {}
    for key in groups:
        by_layer.setdefault(key[0], []).append(key)
    widest = max((len(v) for v in by_layer.values()), default=1)
    width = max(widest * (BOX_W + 20) + 20, 240)
    pos: dict[tuple[int, str], tuple[float, float]] = {}
    shapes = []
    for layer, keys in sorted(by_layer.items()):
        row_width = len(keys) * (BOX_W + 20) - 20
        x0 = (width - row_width) / 2
        y = 10 + layer * (BOX_H + GAP_Y)
        for k, key in enumerate(sorted(keys, key=lambda g: g[1])):
            counts = groups[key]
            total = sum(counts.values())
            x = x0 + k * (BOX_W + 20)
            pos[key] = (x + BOX_W / 2, y)
            bars, at = [], 0.0
            for state, colour in STATE_COLOURS.items():
                if counts.get(state):
                    w = BOX_W * counts[state] / total
                    bars.append((x + at, w, colour))
                    at += w
            summary = ", ".join(f"{n} {s}" for s, n in counts.items())
            label = f"{key[1]} · {total} node{'s' if total != 1 else ''}"
            shapes.append(Shape(x, y, BOX_W, BOX_H, "#ffffff", f"{key[1]}: {summary}", label, bars))
    edges = [(pos[a][0], pos[a][1] + BOX_H, pos[b][0], pos[b][1]) for a, b in sorted(links)]
    height = 20 + (max(by_layer, default=0) + 1) * (BOX_H + GAP_Y) - GAP_Y
    return Graph(width, height, shapes, edges, True)
