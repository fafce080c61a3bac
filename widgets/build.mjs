// Bundles the browser modules into ../rico_lab/static/: voice_client.js (src/index.ts, one
// self-contained ES module, which anywidget loads as _esm), page.js (src/page.ts, the web
// page's script, which loads ./voice_client.js beside it rather than a copy of it) and
// player.js (src/player.ts, the player widget's _esm).
// CSS and the audio worklet's source come in as text. `--watch` rebuilds on every change;
// `--tests` compiles test/*.test.ts for `node --test` instead.

import { readdirSync } from "node:fs";

import * as esbuild from "esbuild";

const STATIC = "../rico_lab/static";
/** Where the compiled tests go: ignored by git with node_modules. */
const TESTS = "node_modules/.cache/tests";

const watch = process.argv.includes("--watch");

/** What every build shares. */
const common = {
  bundle: true,
  format: "esm",
  target: "es2020",
  loader: { ".css": "text", ".worklet.js": "text" },
  logLevel: watch ? "info" : "warning", // watching, each rebuild says so
};

/** page.ts imports the widget from ./index (typed); the page loads the notebook's bundle. */
const widgetBeside = {
  name: "widget-beside",
  setup(build) {
    build.onResolve({ filter: /^\.\/index$/ }, () => ({
      path: "./voice_client.js",
      external: true,
    }));
  },
};

const builds = process.argv.includes("--tests")
  ? [
      {
        ...common,
        entryPoints: readdirSync("test")
          .filter((name) => name.endsWith(".test.ts"))
          .map((name) => `test/${name}`),
        outdir: TESTS,
        outExtension: { ".js": ".mjs" },
        platform: "node",
      },
    ]
  : [
      { ...common, entryPoints: ["src/index.ts"], outfile: `${STATIC}/voice_client.js` },
      {
        ...common,
        entryPoints: ["src/page.ts"],
        outfile: `${STATIC}/page.js`,
        plugins: [widgetBeside],
      },
      { ...common, entryPoints: ["src/player.ts"], outfile: `${STATIC}/player.js` },
    ].map((options) => ({ ...options, minify: !watch }));

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
