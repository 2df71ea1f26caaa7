// Where each visible node sits: x by token position (each column as wide as its busiest
// cell), y by layer (tokens at the bottom, logits at the top).

export const MARGIN = { left: 40, right: 20, top: 24, bottom: 54 };

export function computeLayout(model, visible, width, height) {
  const cells = new Map();
  for (const n of visible) {
    const key = n.row * 100000 + n.pos;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push(n);
  }
  const busiest = new Array(model.nTokens).fill(1);
  for (const [key, members] of cells) {
    const pos = key % 100000;
    busiest[pos] = Math.max(busiest[pos], members.length);
  }
  const weights = busiest.map((b) => Math.sqrt(b) + 1);
  const total = weights.reduce((a, b) => a + b, 0);
  const innerWidth = Math.max(50, width - MARGIN.left - MARGIN.right);
  const columns = [];
  let x = MARGIN.left;
  for (const w of weights) {
    const span = (innerWidth * w) / total;
    columns.push({ x0: x, x1: x + span });
    x += span;
  }
  const rows = model.nLayers + 2;
  const innerHeight = Math.max(50, height - MARGIN.top - MARGIN.bottom);
  const rowY = (row) => MARGIN.top + innerHeight - (row + 0.5) * (innerHeight / rows);
  const positions = new Map();
  for (const [key, members] of cells) {
    const pos = key % 100000;
    const column = columns[pos] || columns[columns.length - 1];
    members.sort((a, b) => (a.influenceValue ?? 0) - (b.influenceValue ?? 0) || a.index - b.index);
    const step = (column.x1 - column.x0) / members.length;
    members.forEach((n, i) => positions.set(n.id, [column.x0 + step * (i + 0.5), rowY(n.row)]));
  }
  return { positions, columns, rowY, rows };
}

// Radius by influence: the most influential nodes (small cumulative influence) are largest.
export function nodeRadius(node) {
  if (node.kind === "token" || node.kind === "logit") return 5;
  if (node.influenceValue === null) return 3.5;
  return 2.5 + 4 * (1 - Math.min(1, node.influenceValue));
}
