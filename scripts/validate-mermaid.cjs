// Parses Mermaid diagrams with Mermaid's own parser; exits 1 naming each
// one that does not parse. Each argument is a file holding one diagram, or
// Markdown whose ```mermaid blocks are parsed. Run with NODE_PATH pointing
// at the node_modules scripts/install-docs-tools prints.
const fs = require('fs');
(async () => {
  const { JSDOM } = require('jsdom');
  const dom = new JSDOM('<!doctype html><html><body></body></html>');
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  const { default: mermaid } = await import(require.resolve('mermaid'));
  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const text = fs.readFileSync(f, 'utf8');
    let diagrams = [text];
    if (f.endsWith('.md')) {
      diagrams = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map(m => m[1]);
    }
    for (const [i, d] of diagrams.entries()) {
      try {
        await mermaid.parse(d);
        console.log(`${f}#${i}: valid`);
      } catch (e) {
        bad++;
        console.error(`${f}#${i}: ${String(e.message).split('\n').slice(0, 3).join(' ')}`);
      }
    }
  }
  process.exit(bad ? 1 : 0);
})();
