// The compare panel: the current graph (A) beside another served graph (B), from the
// server's /api/compare (graph/compare.py's `compare_graphs`): the summary, the shared
// features with their influence in each graph, the features only in one of them, and
// the matched supernode suggestions. Rows of features in this graph are clickable.

import { el, fmt, showToken } from "./dom.js";
import { featureIndex } from "./graph_model.js";

export function featureKey(layer, index) {
  return `${layer}/${index}`;
}

// The feature nodes of the model, by "layer/index".
export function featureNodes(model) {
  const byFeature = new Map();
  for (const n of model.nodes) {
    if (n.kind !== "feature") continue;
    const key = featureKey(n.layer, featureIndex(n));
    if (!byFeature.has(key)) byFeature.set(key, []);
    byFeature.get(key).push(n);
  }
  return byFeature;
}

function percent(value) {
  return `${(100 * Number(value)).toFixed(1)}%`;
}

function positions(list, tokens) {
  return list.map((p) => (tokens && tokens[p] !== undefined ? `“${showToken(tokens[p])}”@${p}` : `@${p}`)).join(" ");
}

// comparison: the JSON of `compare_graphs`; names: [this graph's, the other's];
// model: this graph's; select(keys): click the features `keys` ("layer/index") here.
export function renderComparison(comparison, names, model, select) {
  const [here, there] = names;
  const s = comparison.summary;
  const labels = model.doc.featureLabels || {};
  const inModel = featureNodes(model);
  const box = el("div", { id: "compare-body" });
  box.append(el("div", { id: "compare-summary", "data-shared": String(s.n_shared), "data-jaccard": String(s.jaccard) },
    el("div", { class: "prompts", text: `this: “${comparison.prompt_a}” · other: “${comparison.prompt_b}”` }),
    el("div", { text: `features: ${s.n_shared} shared, ${s.n_only_a} only here, ${s.n_only_b} only in “${there}” · Jaccard ${fmt(s.jaccard)}` }),
    el("div", { text: `influence on shared features: ${percent(s.shared_share_a)} of this graph's, ${percent(s.shared_share_b)} of the other's (node influence ${s.influence_source})` })));

  const row = (r, cells, side) => {
    const key = featureKey(r.layer, r.index);
    const clickable = side !== "b" && inModel.has(key);
    const title = [
      r.nodes_a ? `here: ${positions(r.positions_a, model.tokens)}` : "",
      r.nodes_b ? `in “${there}”: ${positions(r.positions_b, null)}` : "",
    ].filter(Boolean).join("\n");
    const tr = el("tr", { "data-feature": key, title, class: clickable ? "" : "inert" },
      el("td", { class: "feature", text: `L${r.layer}/F${r.index}` }),
      el("td", { class: "label", text: labels[key] || "" }),
      ...cells.map((c) => el("td", { class: "num", text: c })));
    if (clickable) tr.addEventListener("click", () => select([key]));
    return tr;
  };
  const table = (id, head, rows) =>
    el("table", { id, class: "links compare-table" },
      el("tr", {}, ...["feature", "label", ...head].map((h) => el("th", { text: h }))), ...rows);

  box.append(el("h4", { text: `shared features (${comparison.shared.length})` }));
  box.append(table("compare-shared", ["here", "there", "nodes"], comparison.shared.map((r) =>
    row(r, [fmt(r.influence_a, 4), fmt(r.influence_b, 4), `${r.nodes_a} / ${r.nodes_b}`], "shared"))));
  box.append(el("h4", { text: `only in this graph, “${here}” (${comparison.only_a.length})` }));
  box.append(table("compare-only-here", ["influence", "nodes"], comparison.only_a.map((r) =>
    row(r, [fmt(r.influence_a, 4), String(r.nodes_a)], "a"))));
  box.append(el("h4", { text: `only in “${there}” (${comparison.only_b.length})` }));
  box.append(table("compare-only-there", ["influence", "nodes"], comparison.only_b.map((r) =>
    row(r, [fmt(r.influence_b, 4), String(r.nodes_b)], "b"))));
  box.append(renderSupernodes(comparison.supernodes, there, inModel, select));
  return box;
}

function renderSupernodes(groups, there, inModel, select) {
  const box = el("div", { id: "compare-supernodes" }, el("h4", { text: "supernodes" }));
  if (!groups) {
    box.append(el("p", { class: "hint", text: "not compared: both trace folders need suggestions (`circuitscope supernodes FOLDER` writes supernodes.json)" }));
    return box;
  }
  box.append(el("div", { text: `${groups.matched.length} matched (Jaccard ≥ ${groups.threshold}), ${groups.only_a.length} only here, ${groups.only_b.length} only in “${there}”` }));
  const keysOf = (group) => group.features.map(([layer, index]) => featureKey(layer, index)).filter((k) => inModel.has(k));
  const clickable = (tr, group) => {
    const keys = keysOf(group);
    if (keys.length) tr.addEventListener("click", () => select(keys));
    else tr.classList.add("inert");
    return tr;
  };
  const table = el("table", { class: "links compare-table", id: "compare-matched" },
    el("tr", {}, ...["Jaccard", "shared", "here", "there"].map((h) => el("th", { text: h }))));
  for (const m of groups.matched) {
    table.append(clickable(el("tr", { title: `${m.a.features.length} features here, ${m.b.features.length} there` },
      el("td", { class: "num", text: fmt(m.jaccard) }),
      el("td", { class: "num", text: String(m.shared) }),
      el("td", { class: "label", text: m.a.label }),
      el("td", { class: "label", text: m.b.label })), m.a));
  }
  if (groups.matched.length) box.append(table);
  const left = (title, list, here) => {
    if (!list.length) return;
    box.append(el("div", { class: "hint", text: title }));
    const rows = el("table", { class: "links compare-table" });
    for (const g of list) {
      const tr = el("tr", {},
        el("td", { class: "label", text: g.label || `group ${g.group}` }),
        el("td", { class: "num", text: `${g.features.length} features` }),
        el("td", { class: "num", text: fmt(g.influence, 4) }));
      rows.append(here ? clickable(tr, g) : (tr.classList.add("inert"), tr));
    }
    box.append(rows);
  };
  left("unmatched here:", groups.only_a, true);
  left(`unmatched in “${there}”:`, groups.only_b, false);
  return box;
}
