// Where the page's data comes from: the server's /api, or the JSON embedded by
// `circuitscope export-html` (then nothing is requested at all).

const embeddedNode = document.getElementById("embedded-graph");
export const embedded = embeddedNode ? JSON.parse(embeddedNode.textContent) : null;

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch (error) {
    throw new Error(`${url}: the server answered ${response.status} without JSON`);
  }
  if (!response.ok) throw new Error(body.error || `${url}: ${response.status}`);
  return body;
}

export async function listGraphs() {
  if (embedded) return [{ id: 0, name: embedded.name, cards: Object.keys(embedded.cards).length > 0, interventions: false }];
  return getJson("api/graphs");
}

export async function loadDocument(id) {
  if (embedded) return embedded.document;
  return getJson(`api/graph/${id}`);
}

export async function loadCard(id, layer, index) {
  if (embedded) {
    const card = embedded.cards[`${layer}/${index}`];
    if (!card) throw new Error("no card for this feature in the file");
    return card;
  }
  return getJson(`api/feature/${id}/${layer}/${index}`);
}

// The comparison of graph `id` (A) with graph `other` (B): graph/compare.py's JSON.
export async function loadComparison(id, other) {
  if (embedded) throw new Error("comparing graphs needs `circuitscope serve`");
  return getJson(`api/compare/${id}/${other}`);
}

export async function postJson(url, body) {
  return getJson(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}
