// Validates AsyncAPI documents with the official parser (@asyncapi/parser);
// exits 1 naming each invalid file. Run with NODE_PATH pointing at the
// node_modules scripts/install-docs-tools prints.
const { Parser } = require('@asyncapi/parser');
const fs = require('fs');
(async () => {
  const parser = new Parser();
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(f, 'utf8'));
    const errors = diagnostics.filter(d => d.severity === 0);
    if (!document || errors.length) {
      bad++;
      console.error(f + ': ' + errors.map(e => e.message + ' at ' + e.path.join('.')).join('; '));
    } else {
      console.log(f + ': valid');
    }
  }
  process.exit(bad ? 1 : 0);
})();
