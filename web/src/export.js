// Export the subgraph pane as an SVG file or a PNG image (drawn from the same SVG).

export function subgraphSvgText(svgNode) {
  const copy = svgNode.cloneNode(true);
  const width = svgNode.clientWidth || 800, height = svgNode.clientHeight || 220;
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("width", width);
  copy.setAttribute("height", height);
  copy.setAttribute("font-family", "sans-serif");
  copy.insertBefore(rect(width, height), copy.firstChild);
  return new XMLSerializer().serializeToString(copy);
}

function rect(width, height) {
  const background = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  background.setAttribute("width", width);
  background.setAttribute("height", height);
  background.setAttribute("fill", "#fff");
  return background;
}

function download(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

export function exportSvg(svgNode) {
  const blob = new Blob([subgraphSvgText(svgNode)], { type: "image/svg+xml" });
  const url = URL.createObjectURL(blob);
  download(url, "subgraph.svg");
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// The subgraph as a PNG data URL (twice the pane's size), drawn from its SVG.
export function subgraphPngUrl(svgNode, scale = 2) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = image.width * scale;
      canvas.height = image.height * scale;
      const ctx = canvas.getContext("2d");
      ctx.scale(scale, scale);
      ctx.drawImage(image, 0, 0);
      resolve(canvas.toDataURL("image/png"));
    };
    image.onerror = () => reject(new Error("the subgraph SVG did not render"));
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(subgraphSvgText(svgNode));
  });
}

export async function exportPng(svgNode) {
  download(await subgraphPngUrl(svgNode), "subgraph.png");
}
