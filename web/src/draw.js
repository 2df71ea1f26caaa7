// Drawing the link graph on two canvases: the base (edges, nodes, axes) and an overlay
// for hover, so hovering never redraws the 50,000 edges. Edges are stroked in a few
// batches (sign x weight bucket), one path each.

import { nodeRadius } from "./layout.js";

export const COLORS = {
  positive: "37,99,235",
  negative: "234,88,12",
  feature: ["#f1dfa6", "#8a6d1d"],
  error: ["#c8c8c8", "#666"],
  token: ["#cfe3f5", "#4a6f94"],
  logit: ["#b7e4c7", "#2d6a4f"],
  pinned: "#7c3aed",
  compared: "#0d9488",
  clicked: "#111",
};
const BUCKETS = 4;

export function sizeCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

function screen(t, p) {
  return [p[0] * t.k + t.x, p[1] * t.k + t.y];
}

export function glyph(ctx, kind, x, y, r) {
  if (kind === "feature") {
    ctx.moveTo(x + r, y);
    ctx.arc(x, y, r, 0, 2 * Math.PI);
  } else if (kind === "error") {
    ctx.rect(x - r, y - r, 2 * r, 2 * r);
  } else if (kind === "token") {
    ctx.rect(x - r * 1.6, y - r * 0.9, 3.2 * r, 1.8 * r);
  } else {
    ctx.moveTo(x, y - r * 1.3);
    ctx.lineTo(x + r * 1.2, y);
    ctx.lineTo(x, y + r * 1.3);
    ctx.lineTo(x - r * 1.2, y);
    ctx.closePath();
  }
}

function strokeEdges(ctx, edges, layout, t, widthScale, alphaScale) {
  const batches = [];
  for (let i = 0; i < 2 * BUCKETS; i++) batches.push([]);
  for (const l of edges) {
    const bucket = Math.min(BUCKETS - 1, Math.floor(Math.sqrt(l.share) * BUCKETS));
    batches[(l.weight >= 0 ? 0 : BUCKETS) + bucket].push(l);
  }
  batches.forEach((batch, i) => {
    if (!batch.length) return;
    const bucket = i % BUCKETS;
    ctx.beginPath();
    for (const l of batch) {
      const a = screen(t, layout.positions.get(l.source.id));
      const b = screen(t, layout.positions.get(l.target.id));
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
    }
    const rgb = i < BUCKETS ? COLORS.positive : COLORS.negative;
    ctx.strokeStyle = `rgba(${rgb},${Math.min(1, alphaScale * (0.15 + 0.25 * bucket))})`;
    ctx.lineWidth = widthScale * (0.5 + bucket * 0.6);
    ctx.stroke();
  });
}

export function linksOf(node, linkType) {
  if (!node) return [];
  if (linkType === "inputs") return node.inputs;
  if (linkType === "outputs") return node.outputs;
  return node.inputs.concat(node.outputs);
}

export function drawBase(ctx, view) {
  const { model, layout, visible, visibleIds, t, width, height } = view;
  ctx.clearRect(0, 0, width, height);
  drawAxes(ctx, view);
  const edges = [];
  for (const l of model.links) {
    if (visibleIds.has(l.source.id) && visibleIds.has(l.target.id)) edges.push(l);
  }
  const focus = view.clicked ? linksOf(view.clicked, view.linkType) : [];
  strokeEdges(ctx, edges, layout, t, 1, focus.length ? 0.35 : 1);
  const shownFocus = focus.filter((l) => visibleIds.has(l.source.id) && visibleIds.has(l.target.id));
  strokeEdges(ctx, shownFocus, layout, t, 2.2, 2.5);
  for (const kind of ["feature", "error", "token", "logit"]) {
    ctx.beginPath();
    for (const n of visible) {
      if (n.kind !== kind) continue;
      const [x, y] = screen(t, layout.positions.get(n.id));
      glyph(ctx, kind, x, y, nodeRadius(n) * Math.sqrt(t.k));
    }
    ctx.fillStyle = COLORS[kind][0];
    ctx.strokeStyle = COLORS[kind][1];
    ctx.lineWidth = 0.8;
    ctx.fill();
    ctx.stroke();
  }
  outline(ctx, view, visible.filter((n) => view.pinned.has(n.id)), COLORS.pinned, 2);
  if (view.highlighted && view.highlighted.size) {
    // a ring outside the clicked node's outline, so both show
    outline(ctx, view, visible.filter((n) => view.highlighted.has(n.id)), COLORS.compared, 3, 5);
  }
  if (view.clicked && visibleIds.has(view.clicked.id)) outline(ctx, view, [view.clicked], COLORS.clicked, 2.5);
  return edges.length;
}

function outline(ctx, view, nodes, color, width, gap = 1.5) {
  ctx.beginPath();
  for (const n of nodes) {
    const [x, y] = screen(view.t, view.layout.positions.get(n.id));
    glyph(ctx, n.kind, x, y, nodeRadius(n) * Math.sqrt(view.t.k) + gap);
  }
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.stroke();
}

function drawAxes(ctx, view) {
  const { model, layout, t, height } = view;
  ctx.fillStyle = "#666";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let row = 0; row < layout.rows; row++) {
    const y = layout.rowY(row) * t.k + t.y;
    const label = row === 0 ? "Emb" : row === layout.rows - 1 ? "Lgt" : "L" + (row - 1);
    ctx.fillText(label, 30, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  layout.columns.forEach((c, pos) => {
    const x = ((c.x0 + c.x1) / 2) * t.k + t.x;
    const token = model.tokens[pos] === undefined ? "" : JSON.stringify(model.tokens[pos]).slice(1, -1);
    ctx.fillStyle = "#222";
    ctx.fillText(token.length > 14 ? token.slice(0, 13) + "…" : token, x, height - 40);
    ctx.fillStyle = "#999";
    ctx.fillText(String(pos), x, height - 24);
    ctx.strokeStyle = "#eee";
    ctx.beginPath();
    ctx.moveTo(c.x0 * t.k + t.x, 0);
    ctx.lineTo(c.x0 * t.k + t.x, height - 44);
    ctx.stroke();
  });
}

export function drawOverlay(ctx, view, hovered) {
  ctx.clearRect(0, 0, view.width, view.height);
  if (!hovered) return;
  const shown = linksOf(hovered, "both").filter(
    (l) => view.visibleIds.has(l.source.id) && view.visibleIds.has(l.target.id),
  );
  strokeEdges(ctx, shown, view.layout, view.t, 2, 2.5);
  outline(ctx, view, [hovered], COLORS.clicked, 1.5);
}

// A grid over layout coordinates, for finding the node under the mouse.
export function hitIndex(layout, visible, cell = 12) {
  const grid = new Map();
  for (const n of visible) {
    const [x, y] = layout.positions.get(n.id);
    const key = Math.floor(x / cell) + "," + Math.floor(y / cell);
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(n);
  }
  return { grid, cell, layout };
}

export function nodeAt(index, t, sx, sy) {
  const x = (sx - t.x) / t.k, y = (sy - t.y) / t.k;
  const reach = Math.max(1, Math.ceil(8 / t.k / index.cell));
  const cx = Math.floor(x / index.cell), cy = Math.floor(y / index.cell);
  let best = null, bestDistance = Infinity;
  for (let i = cx - reach; i <= cx + reach; i++) {
    for (let j = cy - reach; j <= cy + reach; j++) {
      for (const n of index.grid.get(i + "," + j) || []) {
        const [px, py] = index.layout.positions.get(n.id);
        const d = Math.hypot(px - x, py - y) * t.k;
        if (d < bestDistance) { best = n; bestDistance = d; }
      }
    }
  }
  return bestDistance <= Math.max(8, nodeRadius(best || {}) + 3) ? best : null;
}
