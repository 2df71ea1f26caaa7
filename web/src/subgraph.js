// The pinned subgraph: pinned nodes and supernodes in their own draggable layout.
// A supernode's links are the sums of its members' links.

import { drag } from "d3-drag";
import { select } from "d3-selection";
import { COLORS } from "./draw.js";
import { svgEl } from "./dom.js";
import { nodeTitle } from "./graph_model.js";

// Items shown: one per supernode, one per pinned node outside every supernode.
export function subgraphItems(model, pinned, supernodes) {
  const grouped = new Set();
  const items = supernodes.map((group, i) => {
    const members = group.slice(1).map((id) => model.byId.get(id)).filter(Boolean);
    members.forEach((m) => grouped.add(m.id));
    return { key: "sn:" + group[0], label: group[0], members, supernode: i };
  });
  for (const id of pinned) {
    const node = model.byId.get(id);
    if (node && !grouped.has(id)) items.push({ key: id, label: null, members: [node], supernode: null });
  }
  return items;
}

export function itemLinks(items) {
  const owner = new Map();
  items.forEach((item) => item.members.forEach((m) => owner.set(m.id, item)));
  const sums = new Map();
  for (const target of items) {
    for (const m of target.members) {
      for (const l of m.inputs) {
        const source = owner.get(l.source.id);
        if (!source || source === target) continue;
        const key = source.key + "\u0000" + target.key;
        sums.set(key, { source, target, weight: (sums.get(key)?.weight || 0) + l.weight });
      }
    }
  }
  return [...sums.values()];
}

export function renderSubgraph(svgNode, state, handlers) {
  const { model } = state;
  const svg = select(svgNode);
  svg.selectAll("*").remove();
  const width = svgNode.clientWidth || 800, height = svgNode.clientHeight || 220;
  const items = subgraphItems(model, state.pinned, state.supernodes);
  const text = (item) =>
    item.label !== null ? `${item.label} (${item.members.length})` : nodeTitle(item.members[0], state.labels);
  const boxWidth = (item) => Math.min(180, 16 + 6.2 * text(item).length);
  const at = defaultPlaces(items, boxWidth, height);
  for (const item of items) if (state.sgPos[item.key]) at.set(item.key, state.sgPos[item.key]);
  const links = itemLinks(items);
  const largest = Math.max(1e-30, ...links.map((l) => Math.abs(l.weight)));
  const linkLayer = svgEl("g", { class: "links" });
  svgNode.append(linkLayer);
  const drawLinks = () => {
    linkLayer.replaceChildren();
    for (const l of links) {
      const [x1, y1] = at.get(l.source.key), [x2, y2] = at.get(l.target.key);
      linkLayer.append(svgEl("line", {
        x1, y1, x2, y2,
        stroke: `rgb(${l.weight >= 0 ? COLORS.positive : COLORS.negative})`,
        "stroke-opacity": 0.75,
        "stroke-width": (0.5 + 5 * Math.abs(l.weight) / largest).toFixed(2),
      }));
    }
  };
  drawLinks();
  for (const item of items) {
    const label = text(item);
    const selected = state.selectedItems.has(item.key);
    const g = svgEl("g", { class: "item" + (selected ? " selected" : ""), "data-key": item.key });
    const w = boxWidth(item);
    const kind = item.label !== null ? "supernode" : item.members[0].kind;
    const fill = item.label !== null ? "#e9d5ff" : (COLORS[kind] || COLORS.feature)[0];
    g.append(svgEl("rect", { x: -w / 2, y: -11, width: w, height: 22, rx: item.label !== null ? 11 : 3, fill, stroke: "#777" }));
    const caption = svgEl("text", { "text-anchor": "middle", y: 4, "font-size": 11 });
    caption.textContent = label.length > 28 ? label.slice(0, 27) + "…" : label;
    g.append(caption);
    const [x, y] = at.get(item.key);
    g.setAttribute("transform", `translate(${x},${y})`);
    svgNode.append(g);
    select(g).call(
      drag()
        .on("drag", (event) => {
          const p = [Math.round(event.x), Math.round(event.y)];
          at.set(item.key, p);
          g.setAttribute("transform", `translate(${p[0]},${p[1]})`);
          drawLinks();
        })
        .on("end", () => handlers.moved(item.key, at.get(item.key))),
    );
    g.addEventListener("click", (event) => handlers.toggle(item, event));
  }
  return items;
}

// Default places: a column per token position (left to right), higher layers higher up;
// a column that would overflow the pane continues in the next one. Nothing overlaps.
function defaultPlaces(items, boxWidth, height) {
  const mean = (item, f) => item.members.reduce((s, m) => s + f(m), 0) / Math.max(1, item.members.length);
  const byPos = new Map();
  for (const item of items) {
    const pos = Math.round(mean(item, (m) => m.pos));
    if (!byPos.has(pos)) byPos.set(pos, []);
    byPos.get(pos).push(item);
  }
  const capacity = Math.max(1, Math.floor((height - 16) / 28));
  const at = new Map();
  let left = 16;
  for (const pos of [...byPos.keys()].sort((a, b) => a - b)) {
    const column = byPos.get(pos).sort((a, b) => mean(b, (m) => m.row) - mean(a, (m) => m.row));
    for (let start = 0; start < column.length; start += capacity) {
      const chunk = column.slice(start, start + capacity);
      const width = Math.max(...chunk.map(boxWidth));
      chunk.forEach((item, i) => at.set(item.key, [Math.round(left + width / 2), 22 + 28 * i]));
      left += width + 28;
    }
  }
  return at;
}
