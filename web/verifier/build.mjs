// `make verifier`: bundle the verifiers' JavaScript (pinned npm packages, no CDN) into the committed files
//   web/static/verify.js             the public verification page's script (served by `blockproof web`)
//   web/static/blockproof-verifier.html  the standalone verifier: one file, script and style inline
// Usage: node web/verifier/build.mjs [OUT_DIR]   (default web/static; tests build elsewhere and compare)
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "..", "static");
mkdirSync(out, { recursive: true });

const bundle = async (entry) => {
  const result = await build({ entryPoints: [join(here, entry)], bundle: true, format: "iife", minify: true,
                               target: "es2020", legalComments: "inline", write: false, logLevel: "warning" });
  return new TextDecoder().decode(result.outputFiles[0].contents);
};

const page = await bundle("page.js");
writeFileSync(join(out, "verify.js"), "// Built by `make verifier` from web/verifier/page.js; do not edit.\n" + page);

const script = (await bundle("standalone.js")).replaceAll("</script", "<\\/script");
const style = readFileSync(join(here, "..", "static", "verifier.css"), "utf8") +
  "body { font: 16px/1.45 system-ui, sans-serif; margin: 0; padding: 1rem; color: #1f2933; }\n" +
  "main { max-width: 46rem; margin: 0 auto; } .muted { color: #52606d; }\n" +
  "button { font: inherit; padding: .5rem 1.2rem; border-radius: 6px; border: 0; background: #2563eb; color: #fff; }\n";
const html = readFileSync(join(here, "standalone.html"), "utf8")
  .replace("/*STYLE*/", () => style.trimEnd()).replace("/*SCRIPT*/", () => script.trimEnd());
writeFileSync(join(out, "blockproof-verifier.html"), html);
