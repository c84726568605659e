// Bundle the widget: src/widget.ts -> ../jupyter_streamchat/static/widget.js
// (one minified ESM file, the anywidget `_esm`) and src/widget.css ->
// static/widget.css (the `_css`).  `--watch` rebuilds on change;
// `--sourcemap` adds an inline source map.
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const outdir = path.resolve(root, "../jupyter_streamchat/static");
const watch = process.argv.includes("--watch");
const sourcemap = process.argv.includes("--sourcemap") ? "inline" : false;

const options = {
  absWorkingDir: root,
  entryPoints: { widget: "src/widget.ts" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap,
  legalComments: "none",
  outdir,
  logLevel: "warning",
};
const css = {
  absWorkingDir: root,
  entryPoints: { widget: "src/widget.css" },
  bundle: true,
  minify: true,
  outdir,
  logLevel: "warning",
};

if (watch) {
  const contexts = await Promise.all([esbuild.context(options), esbuild.context(css)]);
  await Promise.all(contexts.map((c) => c.watch()));
  console.log(`watching; writing to ${outdir}`);
} else {
  await Promise.all([esbuild.build(options), esbuild.build(css)]);
  for (const name of ["widget.js", "widget.css"]) {
    const bytes = readFileSync(path.join(outdir, name));
    const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(`${name}: ${kib(bytes.length)} (gzip ${kib(gzipSync(bytes).length)})`);
  }
}
