// Bundles the extension (and, with --tests, the unit tests) with esbuild.
//   node esbuild.mjs               development bundle with source maps
//   node esbuild.mjs --production  minified bundle for the .vsix
//   node esbuild.mjs --watch       rebuild on change
//   node esbuild.mjs --tests       bundle test/*.test.ts into dist-test/ for `node --test`
import * as esbuild from "esbuild";
import { readdirSync, rmSync } from "node:fs";

const production = process.argv.includes("--production");
const watch = process.argv.includes("--watch");
const tests = process.argv.includes("--tests");

const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
  logLevel: "warning",
};

if (tests) {
  rmSync("dist-test", { recursive: true, force: true });
  const entryPoints = readdirSync("test")
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => `test/${f}`);
  await esbuild.build({ ...common, entryPoints, outdir: "dist-test", sourcemap: "inline" });
} else {
  const options = {
    ...common,
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    minify: production,
    sourcemap: !production,
    sourcesContent: false,
  };
  if (watch) {
    const ctx = await esbuild.context(options);
    await ctx.watch();
  } else {
    rmSync("dist", { recursive: true, force: true });
    await esbuild.build(options);
  }
}
