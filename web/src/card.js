// A feature card (circuit-tracer's feature JSON): top examples with per-token shading,
// examples by quantile, top and bottom logits, the input tokens that drive it most
// (circuitscope's `top_input_tokens`, when the card has them), density and the
// activation's place in the histogram.

import { el, fmt, showToken, svgEl } from "./dom.js";

export function renderCard(card, activation) {
  const box = el("div", { class: "card" });
  const top = (card.examples_quantiles || [])[0];
  box.append(el("h4", { text: "top activations" }));
  const topList = el("div", { id: "top-examples" });
  for (const example of (top && top.examples) || []) topList.append(renderExample(example, card.act_max));
  box.append(topList);
  for (const quantile of (card.examples_quantiles || []).slice(1)) {
    const details = el("details", {}, el("summary", { text: quantile.quantile_name }));
    for (const example of quantile.examples || []) details.append(renderExample(example, card.act_max));
    box.append(details);
  }
  box.append(
    el("div", { class: "logit-list" },
      logitColumn("top logits", card.top_logits, card.top_logit_values, "pos"),
      logitColumn("bottom logits", card.bottom_logits, card.bottom_logit_values, "neg")),
  );
  if (Array.isArray(card.top_input_tokens) && card.top_input_tokens.length) {
    box.append(el("h4", { text: "top input tokens" }));
    box.append(el("div", { id: "input-tokens" }, ...card.top_input_tokens.map((token, i) => {
      const values = card.top_input_token_values;
      const title = values && values[i] !== undefined ? `direct score ${fmt(values[i], 3)}` : "";
      return el("span", { class: "input-token", text: showToken(token), title });
    })));
  }
  box.append(el("h4", { text: "density" }));
  box.append(el("div", {
    text: `active on ${fmt(100 * Number(card.activation_frequency), 3)}% of tokens; ` +
      `activation range ${fmt(card.act_min, 2)} – ${fmt(card.act_max, 2)}`,
  }));
  if (Array.isArray(card.histogram) && card.histogram.length) box.append(histogram(card, activation));
  return box;
}

function renderExample(example, actMax) {
  const line = el("div", { class: "example" });
  const acts = example.tokens_acts_list || [];
  (example.tokens || []).forEach((token, i) => {
    const a = Number(acts[i]) || 0;
    const strength = actMax > 0 ? Math.max(0, Math.min(1, a / actMax)) : 0;
    const span = el("span", { text: showToken(token), title: `activation ${fmt(a)}` });
    if (strength > 0) span.style.background = `rgba(234,88,12,${(0.1 + 0.8 * strength).toFixed(3)})`;
    if (i === example.train_token_ind) span.className = "peak";
    line.append(span);
  });
  return line;
}

function logitColumn(title, tokens, values, cls) {
  const column = el("div", {}, el("h4", { text: title }));
  (tokens || []).forEach((token, i) => {
    const value = values && values[i] !== undefined ? " " + fmt(values[i], 2) : "";
    column.append(el("div", { class: cls, text: showToken(token) + value }));
  });
  return column;
}

function histogram(card, activation) {
  const width = 340, height = 60, bins = card.histogram;
  const most = Math.max(...bins.map(Number), 1);
  const svg = svgEl("svg", { width, height, id: "histogram" });
  const barWidth = width / bins.length;
  bins.forEach((count, i) => {
    const h = (Number(count) / most) * (height - 10);
    svg.append(svgEl("rect", { x: i * barWidth, y: height - h, width: barWidth - 1, height: h, fill: "#9db4d3" }));
  });
  const span = Number(card.act_max) - Number(card.act_min);
  if (activation !== null && activation !== undefined && span > 0) {
    const x = Math.max(0, Math.min(1, (activation - card.act_min) / span)) * width;
    svg.append(svgEl("line", { x1: x, x2: x, y1: 0, y2: height, stroke: "#c2410c", "stroke-width": 2, id: "histogram-marker" }));
  }
  return svg;
}
