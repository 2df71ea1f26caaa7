// The graph as the page uses it: nodes with a kind, a row and a column; links indexed
// both ways, each with its share of the target's total |input|.

const KINDS = {
  "cross layer transcoder": "feature",
  "mlp reconstruction error": "error",
  embedding: "token",
  logit: "logit",
};

export function nodeKind(node) {
  if (KINDS[node.feature_type]) return KINDS[node.feature_type];
  if (node.layer === "E") return "token";
  return node.is_target_logit !== undefined && String(node.node_id).startsWith("L") ? "logit" : "feature";
}

// The feature index within its layer: node ids are `{layer}_{index}_{pos}` (ours and circuit-tracer's).
export function featureIndex(node) {
  return Number(String(node.node_id).split("_")[1]);
}

export function buildModel(doc) {
  const nodes = doc.nodes.map((raw, index) => {
    const kind = nodeKind(raw);
    const layer = kind === "token" ? -1 : Number(raw.layer);
    return { ...raw, index, id: raw.node_id, kind, layer, pos: Number(raw.ctx_idx), inputs: [], outputs: [] };
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const featureLayers = nodes.filter((n) => n.kind === "feature" || n.kind === "error").map((n) => n.layer);
  const info = (doc.metadata && doc.metadata.info) || {};
  const nLayers = info.n_layers !== undefined ? Number(info.n_layers) : Math.max(0, ...featureLayers) + 1;
  const featureLabels = doc.featureLabels || {};
  for (const n of nodes) {
    if (n.kind === "feature") n.cardLabel = featureLabels[`${n.layer}/${featureIndex(n)}`] || "";
    n.row = n.kind === "token" ? 0 : n.kind === "logit" ? nLayers + 1 : n.layer + 1;
    n.influenceValue = n.influence === null || n.influence === undefined ? null : Number(n.influence);
  }
  const links = [];
  for (const raw of doc.links) {
    const source = byId.get(raw.source), target = byId.get(raw.target);
    if (!source || !target) continue;
    const link = { source, target, weight: Number(raw.weight), share: 0 };
    links.push(link);
    source.outputs.push(link);
    target.inputs.push(link);
  }
  for (const n of nodes) {
    const total = n.inputs.reduce((sum, l) => sum + Math.abs(l.weight), 0);
    for (const l of n.inputs) l.share = total > 0 ? Math.abs(l.weight) / total : 0;
  }
  const nTokens = Math.max(
    (doc.metadata.prompt_tokens || []).length,
    1 + Math.max(0, ...nodes.map((n) => n.pos)),
  );
  return { doc, nodes, byId, links, nLayers, nTokens, tokens: doc.metadata.prompt_tokens || [] };
}

// Nodes shown at a pruning threshold: tokens and logits always; others while their
// cumulative influence is within the threshold (nodes without influence always).
export function visibleNodes(model, threshold, alwaysShow) {
  return model.nodes.filter(
    (n) =>
      n.kind === "token" || n.kind === "logit" || n.influenceValue === null ||
      n.influenceValue <= threshold + 1e-12 || alwaysShow.has(n.id),
  );
}

// A node's name: the label set in the page, else its feature's label from the cards,
// else the graph's own description.
export function nodeTitle(node, labels) {
  if (labels[node.id]) return labels[node.id];
  if (node.cardLabel) return node.cardLabel;
  if (node.clerp) return node.clerp;
  if (node.kind === "error") return `error L${node.layer}`;
  if (node.kind === "feature") return `L${node.layer} feature ${featureIndex(node)}`;
  return node.id;
}
