// The page: wiring of state, the link graph, the side panel, the subgraph pane,
// saving, URL state, interventions and the compare panel. window.circuitscope exposes
// state and timings for tests and the benchmark.

import { select } from "d3-selection";
import { zoom, zoomIdentity } from "d3-zoom";
import * as api from "./api.js";
import { renderCard } from "./card.js";
import { el, fmt, showToken } from "./dom.js";
import { drawBase, drawOverlay, hitIndex, nodeAt, sizeCanvas } from "./draw.js";
import { buildModel, featureIndex, nodeTitle, visibleNodes } from "./graph_model.js";
import { computeLayout } from "./layout.js";
import { selectionScores } from "./scores.js";
import { itemLinks, renderSubgraph, subgraphItems } from "./subgraph.js";
import { exportPng, exportSvg, subgraphPngUrl, subgraphSvgText } from "./export.js";
import { featureKey, featureNodes, renderComparison } from "./compare.js";

const $ = (id) => document.getElementById(id);
const state = {
  graphs: [], gid: 0, model: null, threshold: 0.8, linkType: "both", clicked: null,
  pinned: [], supernodes: [], labels: {}, editedLabels: {}, sgPos: {},
  selectedItems: new Set(), t: zoomIdentity, scores: null, view: null,
  // the compare panel: the other graph's id (null: closed), the comparison, "none" |
  // "loading" | "ready" | "error", the nodes of the features clicked in the list
  compareWith: null, comparison: null, compareStatus: "none", compareHighlight: new Set(),
};
let compareTicket = 0;
const timings = { start: performance.now(), firstDraw: null, redraw: [], hover: [] };
window.circuitscope = {
  state, timings, redraw: () => draw(), ready: false, error: null,
  subgraphSvg: () => subgraphSvgText($("subgraph-svg")),
  subgraphPng: () => subgraphPngUrl($("subgraph-svg")),
  subgraphLinks: () =>
    itemLinks(subgraphItems(state.model, state.pinned, state.supernodes))
      .map((l) => ({ source: l.source.key, target: l.target.key, weight: l.weight })),
};

function showError(message) {
  window.circuitscope.error = message;
  $("error-box").hidden = false;
  $("error-box").textContent = message;
}

function setStatus(text) {
  $("status").textContent = text;
}

// --- the link graph -------------------------------------------------------------------
function draw() {
  const { model } = state;
  if (!model) return 0;
  const started = performance.now();
  const pane = $("graph-pane");
  const width = pane.clientWidth, height = pane.clientHeight;
  const always = new Set(state.pinned);
  if (state.clicked) always.add(state.clicked.id);
  for (const id of state.compareHighlight) always.add(id);
  const visible = visibleNodes(model, state.threshold, always);
  const layout = computeLayout(model, visible, width, height);
  const ctx = sizeCanvas($("base-canvas"), width, height);
  sizeCanvas($("overlay-canvas"), width, height);
  const view = {
    model, layout, visible, visibleIds: new Set(visible.map((n) => n.id)), t: state.t, width, height,
    clicked: state.clicked, linkType: state.linkType, pinned: new Set(state.pinned),
    highlighted: state.compareHighlight,
  };
  view.edgeCount = drawBase(ctx, view);
  view.hits = hitIndex(layout, visible);
  state.view = view;
  $("visible-count").textContent = `${visible.length} of ${model.nodes.length} nodes`;
  $("threshold-value").textContent = state.threshold.toFixed(2);
  const elapsed = performance.now() - started;
  timings.redraw.push(elapsed);
  if (timings.firstDraw === null) timings.firstDraw = performance.now(); // ms since navigation start
  return elapsed;
}

function hover(event) {
  const view = state.view;
  if (!view) return;
  const started = performance.now();
  const rect = $("base-canvas").getBoundingClientRect();
  const x = event.clientX - rect.left, y = event.clientY - rect.top;
  const node = nodeAt(view.hits, view.t, x, y);
  drawOverlay($("overlay-canvas").getContext("2d"), view, node);
  const tip = $("tooltip");
  if (node) {
    tip.hidden = false;
    tip.replaceChildren(
      el("b", { text: nodeTitle(node, state.labels) }),
      el("div", { text: describe(node) }),
    );
    tip.style.left = Math.min(x + 12, view.width - 240) + "px";
    tip.style.top = Math.max(0, y - 40) + "px";
  } else {
    tip.hidden = true;
  }
  timings.hover.push(performance.now() - started);
}

function describe(node) {
  const token = state.model.tokens[node.pos];
  const where = `${node.kind} · pos ${node.pos} ${token === undefined ? "" : `“${showToken(token)}”`}`;
  const layer = node.kind === "feature" || node.kind === "error" ? ` · layer ${node.layer}` : "";
  const act = node.activation !== null && node.activation !== undefined ? ` · act ${fmt(node.activation)}` : "";
  const p = node.kind === "logit" ? ` · p ${fmt(node.token_prob)}` : "";
  return where + layer + act + p + ` · cumulative influence ${fmt(node.influenceValue)}`;
}

function click(event) {
  const view = state.view;
  if (!view) return;
  const rect = $("base-canvas").getBoundingClientRect();
  const node = nodeAt(view.hits, view.t, event.clientX - rect.left, event.clientY - rect.top);
  if (node && event.shiftKey) togglePin(node.id);
  else selectNode(node);
}

// highlight: node ids outlined as the features clicked in the compare panel (none
// when the node was clicked anywhere else).
function selectNode(node, highlight = []) {
  state.clicked = node || null;
  state.compareHighlight = new Set(highlight);
  draw();
  renderSide();
  renderIntervene();
  markCompareRows(highlight.length === 0);
  writeHash();
}

// --- the side panel -------------------------------------------------------------------
function renderSide() {
  const side = $("side");
  const node = state.clicked;
  if (!node) {
    side.replaceChildren(el("p", { class: "hint", text: "Click a node to see its links and card; shift-click pins it." }));
    return;
  }
  const labelInput = el("input", { id: "label-input", value: state.labels[node.id] || "", placeholder: "label" });
  const pinned = state.pinned.includes(node.id);
  side.replaceChildren(
    el("h3", { id: "node-title", text: nodeTitle(node, state.labels) }),
    el("div", { text: describe(node) }),
    el("div", {},
      labelInput,
      el("button", { id: "label-save", text: "set label", onclick: () => setLabel(node.id, labelInput.value) }),
      el("button", { id: "pin-toggle", text: pinned ? "unpin" : "pin", onclick: () => togglePin(node.id) })),
    linkTable("inputs", node.inputs, (l) => l.source),
    linkTable("outputs", node.outputs, (l) => l.target),
  );
  if (node.kind === "feature") {
    const holder = el("div", { id: "card" }, el("p", { class: "hint", text: "loading card…" }));
    side.append(holder);
    api.loadCard(state.gid, node.layer, featureIndex(node)).then(
      (card) => state.clicked === node && holder.replaceChildren(renderCard(card, node.activation)),
      (error) => holder.replaceChildren(el("p", { class: "hint", text: String(error.message) })),
    );
  }
}

function linkTable(title, links, other) {
  const box = el("div", { class: "link-table", "data-kind": title });
  for (const sign of [1, -1]) {
    const chosen = links.filter((l) => Math.sign(l.weight) === sign)
      .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, 10);
    box.append(el("h4", { text: `${title}, ${sign > 0 ? "positive" : "negative"} (${chosen.length})` }));
    const table = el("table", { class: "links" });
    for (const l of chosen) {
      const n = other(l);
      const where = n.kind === "token" ? `pos ${n.pos}` : n.kind === "logit" ? "logit" : `L${n.layer} pos ${n.pos}`;
      table.append(el("tr", { onclick: () => selectNode(n) },
        el("td", { class: sign > 0 ? "pos" : "neg", text: fmt(l.weight) }),
        el("td", { text: where }),
        el("td", { text: nodeTitle(n, state.labels) })));
    }
    box.append(table);
  }
  return box;
}

function setLabel(id, label) {
  state.labels[id] = label;
  state.editedLabels[id] = label;
  if (!label.trim()) delete state.labels[id];
  renderSide();
  renderSubgraphPane();
}

// --- pins, supernodes, scores ---------------------------------------------------------
function togglePin(id) {
  if (state.pinned.includes(id)) {
    state.pinned = state.pinned.filter((p) => p !== id);
    state.supernodes = state.supernodes.map((g) => g.filter((m, i) => i === 0 || m !== id)).filter((g) => g.length > 1);
  } else {
    state.pinned.push(id);
  }
  afterSelectionChange();
}

function afterSelectionChange() {
  draw();
  if (state.clicked) renderSide();
  renderSubgraphPane();
  renderIntervene();
  writeHash();
}

function selectedIds() {
  return new Set([...state.pinned, ...state.supernodes.flatMap((g) => g.slice(1))]);
}

function renderSubgraphPane() {
  if (!state.model) return;
  renderSubgraph($("subgraph-svg"), state, {
    moved: (key, p) => { state.sgPos[key] = p; },
    toggle: (item) => {
      if (state.selectedItems.has(item.key)) state.selectedItems.delete(item.key);
      else state.selectedItems.add(item.key);
      renderSubgraphPane();
      renderIntervene();
    },
  });
  state.scores = selectionScores(state.model, selectedIds());
  const box = $("scores");
  box.dataset.replacement = String(state.scores.replacement);
  box.dataset.completeness = String(state.scores.completeness);
  box.textContent = `subgraph scores: replacement ${fmt(state.scores.replacement)} · completeness ${fmt(state.scores.completeness)}`;
}

function selectedGroups() {
  return state.supernodes.filter((g) => state.selectedItems.has("sn:" + g[0]));
}

function group() {
  const members = [];
  for (const key of state.selectedItems) {
    const groupOf = state.supernodes.find((g) => "sn:" + g[0] === key);
    members.push(...(groupOf ? groupOf.slice(1) : [key]));
  }
  if (!members.length) return setStatus("select pinned nodes in the subgraph first (click them)");
  const name = $("group-name").value.trim() || `group ${state.supernodes.length + 1}`;
  state.supernodes = state.supernodes.filter((g) => !state.selectedItems.has("sn:" + g[0]));
  state.supernodes.push([name, ...new Set(members)]);
  for (const id of members) if (!state.pinned.includes(id)) state.pinned.push(id);
  state.selectedItems = new Set(["sn:" + name]);
  afterSelectionChange();
}

function rename() {
  const name = $("group-name").value.trim();
  const groups = selectedGroups();
  if (!name || groups.length !== 1) return setStatus("select one supernode and type its new name");
  const old = "sn:" + groups[0][0];
  groups[0][0] = name;
  if (state.sgPos[old]) state.sgPos["sn:" + name] = state.sgPos[old];
  delete state.sgPos[old];
  state.selectedItems = new Set(["sn:" + name]);
  afterSelectionChange();
}

function ungroup() {
  const groups = new Set(selectedGroups());
  state.supernodes = state.supernodes.filter((g) => !groups.has(g));
  state.selectedItems = new Set();
  afterSelectionChange();
}

function unpin() {
  const drop = new Set();
  for (const key of state.selectedItems) {
    const g = state.supernodes.find((s) => "sn:" + s[0] === key);
    (g ? g.slice(1) : [key]).forEach((id) => drop.add(id));
  }
  state.supernodes = state.supernodes.filter((g) => !state.selectedItems.has("sn:" + g[0]));
  state.pinned = state.pinned.filter((id) => !drop.has(id));
  state.selectedItems = new Set();
  afterSelectionChange();
}

// Groups suggested by `circuitscope supernodes`: one button each, accepting adds it.
function renderSuggestions(groups) {
  const box = $("suggestions");
  box.replaceChildren();
  const usable = (groups || []).filter((g) => g.members.some((id) => state.model.byId.has(id)));
  if (!usable.length) return;
  box.append("suggested: ");
  for (const g of usable) {
    const check = g.check ? (g.check.passed ? " (checked on the model: passed)" : " (checked on the model: failed)") : "";
    box.append(el("button", {
      class: "suggestion", text: `+ ${g.label} (${g.members.length})`,
      title: "add this suggested supernode" + check,
      onclick: () => acceptSuggestion(g),
    }));
  }
}

function acceptSuggestion(g) {
  const members = g.members.filter((id) => state.model.byId.has(id));
  let label = g.label || "suggested";
  while (state.supernodes.some((s) => s[0] === label)) label += "'";
  state.supernodes.push([label, ...members]);
  for (const id of members) if (!state.pinned.includes(id)) state.pinned.push(id);
  afterSelectionChange();
}

// --- saving and URL state -------------------------------------------------------------
async function save() {
  if (api.embedded) return setStatus("this file is a snapshot: saving needs `circuitscope serve`");
  const qParams = {
    pinnedIds: state.pinned, supernodes: state.supernodes, linkType: state.linkType,
    clickedId: state.clicked ? state.clicked.id : "", sg_pos: JSON.stringify(state.sgPos),
    pruningThreshold: state.threshold,
  };
  try {
    await api.postJson(`api/state/${state.gid}`, { qParams, labels: state.editedLabels });
    state.editedLabels = {};
    setStatus("saved");
  } catch (error) {
    showError("save failed: " + error.message);
  }
}

function writeHash() {
  const params = new URLSearchParams();
  params.set("g", String(state.gid));
  params.set("t", state.threshold.toFixed(2));
  params.set("link", state.linkType);
  if (state.clicked) params.set("clicked", state.clicked.id);
  if (state.pinned.length) params.set("pinned", state.pinned.join(","));
  if (state.compareWith !== null) params.set("cmp", String(state.compareWith));
  history.replaceState(null, "", "#" + params.toString());
}

function readHash() {
  return new URLSearchParams(location.hash.slice(1));
}

// --- interventions --------------------------------------------------------------------
function interventionTarget() {
  const groups = selectedGroups();
  if (groups.length === 1) return { name: `supernode “${groups[0][0]}”`, nodes: groups[0].slice(1) };
  const node = state.clicked;
  if (node && (node.kind === "feature" || node.kind === "error")) return { name: nodeTitle(node, state.labels), nodes: [node.id] };
  return null;
}

function renderIntervene() {
  const info = state.graphs[state.gid];
  $("intervene").hidden = !(info && info.interventions);
  const target = interventionTarget();
  $("intervene-target").textContent = target ? target.name : "(click a feature or select a supernode)";
}

async function runIntervention() {
  const target = interventionTarget();
  if (!target) return setStatus("click a feature or error node, or select a supernode");
  const op = $("intervene-op").value;
  const value = op === "ablate" ? 0 : Number($("intervene-value").value);
  const body = {
    interventions: [{ nodes: target.nodes, operation: op === "ablate" ? "set" : op, value }],
    freeze_attention: $("freeze-attention").checked,
    generate: Number($("generate").value) || 0,
  };
  const box = $("intervene-result");
  box.textContent = "running…";
  try {
    box.replaceChildren(resultTable(await api.postJson(`api/intervene/${state.gid}`, body)));
  } catch (error) {
    box.textContent = "intervention failed: " + error.message;
  }
}

function resultTable(result) {
  const { clean, intervened } = result.top_tokens;
  const table = el("table", { id: "intervention-table" },
    el("tr", {}, el("th", { text: "clean" }), el("th", { text: "p" }), el("th", { text: "intervened" }), el("th", { text: "p" })));
  clean.forEach((row, i) => table.append(el("tr", {},
    el("td", { text: showToken(row.token) }), el("td", { text: fmt(row.probability) }),
    el("td", { text: showToken(intervened[i].token) }), el("td", { text: fmt(intervened[i].probability) }))));
  const box = el("div", { "data-clean-top": String(clean[0].id), "data-intervened-top": String(intervened[0].id), id: "intervention-summary" }, table);
  if (result.generation) {
    box.append(el("div", { text: "clean: " + result.generation.clean }), el("div", { text: "steered: " + result.generation.steered }));
  }
  return box;
}

// --- the compare panel ----------------------------------------------------------------
function fillComparePicker() {
  const picker = $("compare-picker");
  picker.replaceChildren(el("option", { value: "", text: "—" }));
  for (const g of state.graphs) {
    if (g.id !== state.gid) picker.append(el("option", { value: String(g.id), text: g.name }));
  }
  picker.value = state.compareWith === null ? "" : String(state.compareWith);
}

// Compare the current graph with graph `other` (null or the current one: close the panel).
async function openComparison(other) {
  const ticket = ++compareTicket;
  state.compareWith = other === null || other === state.gid || !state.graphs[other] ? null : other;
  state.comparison = null;
  state.compareHighlight = new Set();
  $("compare-picker").value = state.compareWith === null ? "" : String(state.compareWith);
  const panel = $("compare");
  const wasHidden = panel.hidden;
  panel.hidden = state.compareWith === null;
  state.compareStatus = state.compareWith === null ? "none" : "loading";
  writeHash();
  if (state.compareWith === null) {
    if (!wasHidden) draw(); // the graph pane grew
    return;
  }
  const name = state.graphs[state.compareWith].name;
  const title = el("h3", { id: "compare-title" }, `compared with “${name}”`,
    el("button", { id: "compare-close", text: "close", title: "close the comparison", onclick: () => openComparison(null) }));
  panel.replaceChildren(title, el("p", { class: "hint", text: "comparing…" }));
  draw(); // the graph pane narrowed, or the highlight went
  try {
    const comparison = await api.loadComparison(state.gid, state.compareWith);
    if (ticket !== compareTicket || !state.model) return;
    state.comparison = comparison;
    const names = [state.graphs[state.gid].name, name];
    panel.replaceChildren(title, renderComparison(comparison, names, state.model, selectFeatures));
    state.compareStatus = "ready";
    markCompareRows(true);
  } catch (error) {
    if (ticket !== compareTicket) return;
    panel.replaceChildren(title, el("p", { id: "compare-error", text: "cannot compare: " + error.message }));
    state.compareStatus = "error";
  }
}

// Click the most influential node of the features `keys` ("layer/index") and outline
// every node of them.
function selectFeatures(keys) {
  const byFeature = featureNodes(state.model);
  const nodes = keys.flatMap((key) => byFeature.get(key) || []);
  if (!nodes.length) return setStatus("no node of this feature in this graph");
  const rank = (n) => (n.influenceValue === null ? Infinity : n.influenceValue);
  const best = nodes.reduce((a, b) => (rank(b) < rank(a) ? b : a));
  selectNode(best, nodes.map((n) => n.id));
}

// Mark the list's rows of the clicked node's feature (scroll to it when `reveal`).
function markCompareRows(reveal) {
  const node = state.clicked;
  const key = node && node.kind === "feature" ? featureKey(node.layer, featureIndex(node)) : null;
  let first = null;
  for (const tr of $("compare").querySelectorAll("tr[data-feature]")) {
    const on = tr.dataset.feature === key;
    tr.classList.toggle("current", on);
    if (on && !first) first = tr;
  }
  if (first && reveal) first.scrollIntoView({ block: "nearest" });
}

// --- loading --------------------------------------------------------------------------
function parsePositions(text) {
  try {
    const value = JSON.parse(text || "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

async function openGraph(gid, hash) {
  state.gid = gid;
  state.model = null;
  state.compareHighlight = new Set();
  compareTicket++; // a comparison of the previous graph is not shown
  $("error-box").hidden = true;
  let doc;
  try {
    doc = await api.loadDocument(gid);
    state.model = buildModel(doc);
  } catch (error) {
    $("side").replaceChildren();
    sizeCanvas($("base-canvas"), 1, 1);
    showError(`cannot open graph “${state.graphs[gid]?.name}”: ${error.message}`);
    $("compare").hidden = true;
    window.circuitscope.ready = true;
    return;
  }
  const q = doc.qParams || {};
  const meta = doc.metadata || {};
  state.labels = { ...(doc.labels || {}) };
  state.editedLabels = {};
  state.pinned = (q.pinnedIds || []).filter((id) => state.model.byId.has(id));
  state.supernodes = (q.supernodes || []).filter((g) => Array.isArray(g) && g.length > 1);
  state.sgPos = parsePositions(q.sg_pos);
  state.linkType = ["inputs", "outputs", "both"].includes(q.linkType) ? q.linkType : "both";
  state.threshold = Number(q.pruningThreshold ?? meta.node_threshold ?? 0.8);
  state.clicked = state.model.byId.get(q.clickedId) || null;
  state.selectedItems = new Set();
  if (hash) {
    if (hash.has("t")) state.threshold = Number(hash.get("t"));
    if (hash.has("link")) state.linkType = hash.get("link");
    if (hash.has("pinned")) state.pinned = hash.get("pinned").split(",").filter((id) => state.model.byId.has(id));
    if (hash.has("clicked")) state.clicked = state.model.byId.get(hash.get("clicked")) || null;
    if (hash.has("cmp")) state.compareWith = Number(hash.get("cmp"));
  }
  $("threshold").value = String(state.threshold);
  $("link-type").value = state.linkType;
  const logits = state.model.nodes.filter((n) => n.kind === "logit");
  $("targets").textContent = "targets: " + logits.map((n) => (n.clerp || `${n.id} p=${fmt(n.token_prob, 3)}`).replace(/^Output /, "")).join(", ");
  draw();
  renderSide();
  renderSubgraphPane();
  renderSuggestions(doc.suggestions);
  renderIntervene();
  fillComparePicker();
  openComparison(state.compareWith);
  window.circuitscope.ready = true;
}

async function start() {
  try {
    state.graphs = await api.listGraphs();
  } catch (error) {
    showError("cannot list graphs: " + error.message);
    return;
  }
  const picker = $("graph-picker");
  state.graphs.forEach((g) => picker.append(el("option", { value: String(g.id), text: g.name })));
  picker.hidden = state.graphs.length < 2;
  $("compare-label").hidden = state.graphs.length < 2;
  $("compare-picker").addEventListener("change", () => {
    const value = $("compare-picker").value;
    openComparison(value === "" ? null : Number(value));
  });
  picker.addEventListener("change", () => { window.circuitscope.ready = false; openGraph(Number(picker.value), null); });
  $("threshold").addEventListener("input", () => { state.threshold = Number($("threshold").value); draw(); writeHash(); });
  $("link-type").addEventListener("change", () => { state.linkType = $("link-type").value; draw(); writeHash(); });
  $("save").addEventListener("click", save);
  $("group").addEventListener("click", group);
  $("rename").addEventListener("click", rename);
  $("ungroup").addEventListener("click", ungroup);
  $("unpin").addEventListener("click", unpin);
  $("run-intervention").addEventListener("click", runIntervention);
  $("export-svg").addEventListener("click", () => exportSvg($("subgraph-svg")));
  $("export-png").addEventListener("click", () => exportPng($("subgraph-svg")));
  const canvas = $("base-canvas");
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; state.view && drawOverlay($("overlay-canvas").getContext("2d"), state.view, null); });
  canvas.addEventListener("click", click);
  select(canvas).call(zoom().scaleExtent([0.5, 40]).on("zoom", (event) => { state.t = event.transform; draw(); })).on("dblclick.zoom", null);
  window.addEventListener("resize", () => { draw(); renderSubgraphPane(); });
  const hash = readHash();
  const wanted = hash.has("g") ? Number(hash.get("g")) : 0;
  const gid = state.graphs[wanted] ? wanted : 0;
  picker.value = String(gid);
  await openGraph(gid, hash.toString() ? hash : null);
}

start();
