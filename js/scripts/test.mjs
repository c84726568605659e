// `npm test`: bundle test/*.test.ts with esbuild into .test-build/ and run
// them with node's built-in test runner (node 20 cannot run TypeScript itself).
// `--bench`: the same for bench/*.bench.ts, run as plain scripts.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bench = process.argv.includes("--bench");
const dir = bench ? "bench" : "test";
const suffix = bench ? ".bench.ts" : ".test.ts";
const only = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const entries = readdirSync(path.join(root, dir))
  .filter((f) => f.endsWith(suffix))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .map((f) => path.join(dir, f));
const outdir = path.join(root, ".test-build", dir);
rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: entries,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node18",
  packages: "external",
  sourcemap: "inline",
  outdir,
  outExtension: { ".js": ".mjs" },
  logLevel: "warning",
});
const built = entries.map((e) => path.join(outdir, path.basename(e).replace(/\.ts$/, ".mjs")));
const args = bench ? built.flatMap((f) => [f]) : ["--enable-source-maps", "--test", ...built];
let status = 0;
if (bench) {
  for (const file of built) {
    const r = spawnSync(process.execPath, ["--enable-source-maps", file], { stdio: "inherit", cwd: root });
    status ||= r.status ?? 1;
  }
} else {
  const r = spawnSync(process.execPath, args, { stdio: "inherit", cwd: root });
  status = r.status ?? 1;
}
process.exit(status);
