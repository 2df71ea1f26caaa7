// Builds the page into src/circuitscope/viewer/static/ (committed; CI rebuilds and compares).
// Deterministic: pinned esbuild and d3 versions (package-lock.json), no hashes, no dates.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../src/circuitscope/viewer/static/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "none",
  charset: "utf8",
  outfile: out + "app.js",
});
for (const name of ["index.html", "style.css"]) copyFileSync("src/" + name, out + name);
