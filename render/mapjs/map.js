// The interactive service map of `ktrace graph -o html` and `docs`'
// index.html. Built into map.bundle.js by scripts/build-map (esbuild, with
// cytoscape, cytoscape-dagre and dagre from npm) and embedded in ktrace.
//
// Everything shown comes from the JSON in #ktrace-data: names from traces
// are untrusted, so they reach the page only through textContent and
// attribute setters, never as HTML.
import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';

cytoscape.use(dagre);

const data = JSON.parse(document.getElementById('ktrace-data').textContent);

// clean spells out control, bidirectional and zero-width characters, as
// ktrace does on a terminal: they could reorder or hide the text around
// them (and some were seen to crash Chromium's text layout).
function clean(s) {
  return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = clean(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function ms(v) {
  if (!v) return '-';
  return v < 1 ? (v * 1000).toFixed(0) + ' µs' : v < 1000 ? v.toFixed(2) + ' ms' : (v / 1000).toFixed(2) + ' s';
}

function traceLink(id) {
  if (!data.ui) return el('code', id);
  return el('a', id, { href: data.ui.replace(/\/$/, '') + '/trace/' + id, target: '_blank', rel: 'noopener noreferrer' });
}

const elements = [];
for (const n of data.nodes) {
  elements.push({ group: 'nodes', data: { id: n.key, label: n.label, kind: n.kind, virtual: n.virtual ? 1 : 0 } });
}
const maxCount = Math.max(1, ...data.edges.map((e) => e.count));
data.edges.forEach((e, i) => {
  elements.push({
    group: 'edges',
    data: {
      id: 'e' + i, source: e.from, target: e.to, relation: e.relation, index: i,
      width: data.noStats ? 2 : 1 + 7 * Math.log1p(e.count) / Math.log1p(maxCount),
      label: (e.group ? e.group + ' · ' : '') + e.relation + (data.noStats ? '' : ' ×' + e.count),
    },
  });
});

const cy = cytoscape({
  container: document.getElementById('cy'),
  elements,
  wheelSensitivity: 0.3,
  style: [
    { selector: 'node', style: {
      label: 'data(label)', 'font-size': 11, 'text-valign': 'center', 'text-halign': 'center',
      'text-wrap': 'ellipsis', 'text-max-width': 150, width: 160, height: 34,
      'background-color': 'var(--node)', color: 'var(--text)', 'border-width': 1, 'border-color': 'var(--border)', shape: 'round-rectangle' } },
    { selector: 'node[kind = "topic"]', style: { shape: 'barrel', 'background-color': 'var(--topic)' } },
    { selector: 'node[kind = "database"]', style: { shape: 'round-tag' } },
    { selector: 'node[virtual = 1]', style: { 'border-style': 'dashed', 'background-opacity': 0.4 } },
    { selector: 'edge', style: {
      width: 'data(width)', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle',
      'line-color': 'var(--edge)', 'target-arrow-color': 'var(--edge)' } },
    { selector: 'edge[relation = "link"]', style: { 'line-style': 'dotted' } },
    { selector: 'edge[relation = "stitched"]', style: { 'line-style': 'dashed', 'line-color': '#d33', 'target-arrow-color': '#d33' } },
    { selector: 'edge[relation = "unverified"]', style: { 'line-style': 'dashed', 'line-color': '#999', 'target-arrow-color': '#999', 'color': '#888' } },
    { selector: '.faded', style: { opacity: 0.12 } },
    { selector: '.hidden', style: { display: 'none' } },
    { selector: '.marked', style: { 'border-width': 4, 'border-color': '#f90', 'line-color': '#f90', 'target-arrow-color': '#f90' } },
    { selector: ':selected', style: { 'border-width': 3, 'border-color': '#39f', 'overlay-opacity': 0.1 } },
  ],
  layout: { name: 'dagre', rankDir: 'LR', nodeSep: 20, rankSep: 90, animate: false },
});
// Cytoscape paints on a canvas, which does not resolve CSS variables:
// resolve them for the current theme and restyle.
function applyTheme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  cy.style()
    .selector('node').style({ 'background-color': v('--node'), color: v('--text'), 'border-color': v('--border') })
    .selector('node[kind = "topic"]').style({ 'background-color': v('--topic') })
    .selector('edge').style({ 'line-color': v('--edge'), 'target-arrow-color': v('--edge') })
    .selector('edge[relation = "stitched"]').style({ 'line-color': '#d33', 'target-arrow-color': '#d33' })
    .selector('edge[relation = "unverified"]').style({ 'line-color': '#999', 'target-arrow-color': '#999' })
    .selector('.marked').style({ 'border-color': '#f90', 'line-color': '#f90', 'target-arrow-color': '#f90' })
    .update();
}
applyTheme();

const details = document.getElementById('details');

function table(rows) {
  const t = el('table');
  for (const [k, v] of rows) {
    const tr = el('tr');
    tr.append(el('th', k));
    const td = el('td');
    if (v instanceof Node) td.append(v); else td.textContent = v;
    tr.append(td);
    t.append(tr);
  }
  return t;
}

function showNode(n) {
  details.replaceChildren(el('h2', n.label));
  const counts = data.noStats ? [] : [['spans', n.spans], ['errors', n.errors]];
  details.append(table([
    ['kind', n.kind], ...counts,
    ['instances', (n.instances || []).join(', ') || '-'],
    ['partitions', (n.partitions || []).join(', ') || '-'],
    ['consumer groups', (n.groups || []).join(', ') || '-'],
  ]));
}

function showEdge(e) {
  details.replaceChildren(el('h2', e.fromLabel + ' → ' + e.toLabel, { 'data-edge': e.relation }));
  const rows = [['kind', e.kind], ['relation', e.relation], ['consumer group', e.group || '-']];
  if (!data.noStats) {
    rows.push(['records', e.count], ['errors', e.errors], ['p50', ms(e.p50_ms)], ['p95', ms(e.p95_ms)], ['p99', ms(e.p99_ms)]);
  }
  if (e.continuity !== undefined && e.continuity !== null) rows.push(['continuity', (e.continuity * 100).toFixed(1) + '% of the hop continue the trace']);
  details.append(table(rows));
  if (e.examples && e.examples.length) {
    details.append(el('h3', 'Example traces'));
    const ul = el('ul', null, { class: 'examples' });
    for (const id of e.examples) { const li = el('li'); li.append(traceLink(id)); ul.append(li); }
    details.append(ul);
  }
}

cy.on('tap', 'node', (ev) => showNode(data.nodes.find((n) => n.key === ev.target.id())));
cy.on('tap', 'edge', (ev) => showEdge(data.edges[ev.target.data('index')]));
cy.on('mouseover', 'node, edge', (ev) => { document.getElementById('cy').title = clean(ev.target.data('label')); });

function mark(keys) {
  cy.elements().removeClass('marked');
  for (const k of keys) {
    const n = cy.getElementById(k);
    if (n.nonempty()) n.addClass('marked');
  }
  const marked = cy.nodes('.marked');
  marked.edgesWith(marked).addClass('marked');
  if (marked.nonempty()) cy.animate({ fit: { eles: marked, padding: 80 }, duration: 200 });
}

function list(id, items, text) {
  const ul = document.getElementById(id);
  if (!items.length) { ul.append(el('li', 'none found')); return; }
  for (const it of items) {
    const li = el('li');
    const b = el('button', text(it), { type: 'button' });
    b.addEventListener('click', () => mark(it.nodes));
    li.append(b);
    ul.append(li);
  }
}
list('breaks', data.breaks, (b) => b.rule + ': ' + b.where);
list('spof', data.spof, (s) => s.node + ' — ' + s.risks + ' (blast radius ' + s.blast + ')');
if (data.noStats) document.querySelector('.legend').textContent = 'topics are barrels · red dashed: trace context lost · dotted: span link';

const search = document.getElementById('search');
const peers = document.getElementById('peers');
function filter() {
  const q = search.value.trim().toLowerCase();
  cy.batch(() => {
    cy.elements().removeClass('faded hidden');
    if (!peers.checked) cy.nodes('[virtual = 1]').addClass('hidden');
    if (q) {
      const hit = cy.nodes().filter((n) => n.data('label').toLowerCase().includes(q) || n.id().toLowerCase().includes(q));
      const keep = hit.union(hit.connectedEdges()).union(hit.connectedEdges().connectedNodes());
      cy.elements().difference(keep).addClass('faded');
    }
  });
  document.body.dataset.matches = q ? String(cy.nodes().filter((n) => !n.hasClass('faded')).length) : '';
}
search.addEventListener('input', filter);
peers.addEventListener('change', filter);
document.getElementById('theme').addEventListener('click', () => {
  const dark = document.documentElement.dataset.theme !== 'dark';
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  applyTheme();
});
filter();
// A page ktrace serve serves reloads when the graph behind it changed.
if (data.live) {
  setInterval(async () => {
    try {
      const r = await fetch('data.json', { cache: 'no-store' });
      const fresh = await r.json();
      if (fresh.version !== data.version) location.reload();
    } catch (e) {
      document.body.dataset.stale = '1';
    }
  }, data.live * 1000);
}
window.ktraceMap = cy; // for tests and the curious
document.body.dataset.ready = '1';
