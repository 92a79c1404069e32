// Drives the interactive map (a page `ktrace graph -o html` wrote) in
// Debian's Chromium through playwright-core, and prints what it saw as one
// JSON object for the Go test to judge. Arguments: the page, the
// screenshot to save, a search term. Run with NODE_PATH pointing at the
// node_modules scripts/install-browser-tools prints.
const { chromium } = require('playwright-core');
const path = require('path');
const fs = require('fs');

(async () => {
  const [page_, shot, term] = process.argv.slice(2);
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'ktrace-chromium-'));
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const out = { requests: [], console: [], dialogs: [] };
  try {
    const page = await browser.newPage();
    page.on('request', (r) => { if (!/^(file|data|about|blob):/.test(r.url())) out.requests.push(r.url()); });
    page.on('console', (m) => { if (m.type() === 'error') out.console.push(m.text()); });
    page.on('pageerror', (e) => out.console.push(String(e)));
    page.on('dialog', async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
    const t0 = Date.now();
    await page.goto('file://' + path.resolve(page_));
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
    out.loadMs = Date.now() - t0;
    out.nodes = await page.evaluate(() => window.ktraceMap.nodes().length);
    out.edges = await page.evaluate(() => window.ktraceMap.edges().length);
    // The broken hops, as drawn.
    out.broken = await page.evaluate(() => window.ktraceMap.edges().filter((e) => e.style('line-style') === 'dashed')
      .map((e) => ({ from: e.data('source'), to: e.data('target'), color: e.style('line-color') })));
    // Click the join's output hop where it is drawn.
    const at = await page.evaluate(() => {
      const e = window.ktraceMap.edges().filter((e) => e.data('source') === 'service:stargazers-join' && e.data('target') === 'topic:stargazers-results');
      if (e.empty()) return null;
      const p = e.renderedMidpoint();
      const box = document.getElementById('cy').getBoundingClientRect();
      return { x: box.left + p.x, y: box.top + p.y };
    });
    if (at) {
      await page.mouse.click(at.x, at.y);
      await page.waitForTimeout(200);
      out.clicked = await page.evaluate(() => ({
        title: document.querySelector('#details h2')?.textContent,
        relation: document.querySelector('#details h2')?.getAttribute('data-edge'),
        links: [...document.querySelectorAll('#details .examples a')].map((a) => a.href),
      }));
    }
    // Search.
    const t1 = Date.now();
    await page.fill('#search', term);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    out.searchMs = Date.now() - t1;
    out.search = await page.evaluate(() => ({
      matches: document.body.dataset.matches,
      faded: window.ktraceMap.nodes('.faded').length,
    }));
    await page.fill('#search', '');
    // The side panel's first break highlights its place.
    const b = await page.$('#breaks button');
    if (b) {
      await b.click();
      await page.waitForTimeout(300);
      out.marked = await page.evaluate(() => window.ktraceMap.nodes('.marked').map((n) => n.id()));
    }
    out.pwned = await page.evaluate(() => typeof window.__pwned !== 'undefined' || document.querySelectorAll('img, iframe, object').length);
    await page.click('#theme');
    // Let the restyle finish first: a zoom during it was seen to crash
    // headless Chromium's renderer (software GL) now and then.
    await page.waitForTimeout(500);
    await page.evaluate(() => window.ktraceMap.fit(undefined, 40));
    await page.waitForTimeout(100);
    await page.screenshot({ path: shot });
    out.ok = true;
  } catch (e) {
    out.error = String(e);
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
})();
