// Tokenise .team files with the engine VS Code uses (vscode-textmate on vscode-oniguruma) and print, for each
// file, every line's tokens as [text, scopes...] in JSON: the golden form tests/test_editors.py compares.
// Usage: node tokenize.js GRAMMAR.json FILE...
"use strict";
const fs = require("fs");
const path = require("path");
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

async function main() {
  const [grammarPath, ...files] = process.argv.slice(2);
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => scopeName === "source.team"
      ? textmate.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath)
      : null,
  });
  const grammar = await registry.loadGrammar("source.team");
  const out = {};
  for (const file of files) {
    let stack = textmate.INITIAL;
    out[file] = fs.readFileSync(file, "utf8").split(/\r?\n/).map((line) => {
      const result = grammar.tokenizeLine(line, stack);
      stack = result.ruleStack;
      return result.tokens
        .map((t) => [line.slice(t.startIndex, t.endIndex), ...t.scopes.slice(1)])
        .filter((t) => t.length > 1);  // keep the tokens that carry a scope beyond source.team
    });
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

main().catch((err) => { console.error(err); process.exit(1); });
