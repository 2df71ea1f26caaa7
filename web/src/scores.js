// Replacement and completeness scores of a selection: a port of circuitscope's
// graph/scores.py (`graph_scores`) applied to the graph in which every feature
// outside the selection counts as an error node (viewer/subgraph_scores.py builds
// that graph in Python; the browser tests check both give the same numbers).
//
// Rows of the normalised |edge| matrix are the selected features and the logits;
// columns are every non-logit node. Influence is the logit-probability-weighted sum
// over paths, walked from the logits through the selected features.

export function selectionScores(model, selectedIds) {
  const selected = (n) => n.kind === "feature" && selectedIds.has(n.id);
  const errorLike = (n) => n.kind === "error" || (n.kind === "feature" && !selected(n));
  const rowOf = new Map();
  for (const n of model.nodes) {
    if (selected(n) || n.kind === "logit") rowOf.set(n.id, normalisedRow(n));
  }
  const logits = model.nodes.filter((n) => n.kind === "logit");
  let current = new Map();
  for (const logit of logits) addRow(current, rowOf.get(logit.id), Number(logit.token_prob) || 0);
  const total = new Map(current);
  for (let step = 0; step <= model.nodes.length; step++) {
    const next = new Map();
    let any = false;
    for (const [id, value] of current) {
      const node = model.byId.get(id);
      if (value === 0 || !selected(node)) continue;
      addRow(next, rowOf.get(id), value);
      any = true;
    }
    if (!any) break;
    for (const [id, value] of next) total.set(id, (total.get(id) || 0) + value);
    current = next;
  }
  let tokenInfluence = 0, errorInfluence = 0;
  for (const [id, value] of total) {
    const node = model.byId.get(id);
    if (node.kind === "token") tokenInfluence += value;
    else if (errorLike(node)) errorInfluence += value;
  }
  const sourceTotal = tokenInfluence + errorInfluence;
  const replacement = sourceTotal > 0 ? tokenInfluence / sourceTotal : 1;
  let weighted = 0, weightTotal = 0;
  for (const n of model.nodes) {
    if (!rowOf.has(n.id)) continue;
    const row = rowOf.get(n.id);
    if (!row.length) continue;
    const weight = n.kind === "logit" ? Number(n.token_prob) || 0 : total.get(n.id) || 0;
    let errorShare = 0;
    for (const [source, a] of row) if (errorLike(source)) errorShare += a;
    weighted += (1 - errorShare) * weight;
    weightTotal += weight;
  }
  const completeness = weightTotal > 0 ? weighted / weightTotal : 1;
  return { replacement, completeness };
}

function normalisedRow(node) {
  let sum = 0;
  for (const l of node.inputs) sum += Math.abs(l.weight);
  if (!(sum > 0)) return [];
  return node.inputs.filter((l) => l.weight !== 0).map((l) => [l.source, Math.abs(l.weight) / sum]);
}

function addRow(into, row, factor) {
  if (!factor) return;
  for (const [source, a] of row) into.set(source.id, (into.get(source.id) || 0) + factor * a);
}
