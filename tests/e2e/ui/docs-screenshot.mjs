// tests/e2e/ui/docs-screenshot.mjs: make docs/lab-page.png, the README's picture of the page.
//
// Against a running lab (UI_URL), it keeps a load of writes and reads on every store the
// lab lists in /lab.json (three, or four with --etcd) for LOAD_SECONDS (default 120) with
// the page open, so the charts have a shape, then runs the durability demo and takes a
// 1280-wide screenshot down to the WAL viewer.
//
//   walab lab --data-dir /tmp/lab-docs &     # then:
//   UI_URL=http://127.0.0.1:8000/ PROFILE_DIR=$(mktemp -d) node tests/e2e/ui/docs-screenshot.mjs
//
// SCREENSHOT=path writes it elsewhere than docs/lab-page.png (the README's picture, of a
// lab without --etcd).

import http from 'node:http';
import { chromium } from 'playwright-core';

const url = process.env.UI_URL;
const profile = process.env.PROFILE_DIR;
const out = process.env.SCREENSHOT || 'docs/lab-page.png';
const seconds = Number(process.env.LOAD_SECONDS || 120);
if (!url || !profile) {
  console.error('UI_URL and PROFILE_DIR must be set');
  process.exit(2);
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] || (await context.newPage());
page.on('crash', () => console.error(`the page crashed at ${new Date().toISOString()}`));
const backends = (await (await fetch(new URL('lab.json', url))).json()).backends.map((e) => e.backend);
await page.goto(url);
for (const b of backends) await page.waitForSelector(`#store-${b} .health[data-state="up"]`, { timeout: 60000 });

// The load comes from here, not from the page (Chromium's own fetch misbehaves after a
// minute or two of hundreds of requests a second): a few writers and readers per store,
// through the lab's proxy like the page.
console.log(`load for ${seconds} s`);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const call = (method, path, body) => new Promise((resolve) => {
  const req = http.request(new URL(path, url), { method, agent }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode));
  });
  req.on('error', (e) => resolve(String(e)));
  req.end(body);
});
const until = Date.now() + seconds * 1000;
const outcomes = {};
const worker = async (b, w) => {
  let i = 0;
  while (Date.now() < until) {
    i += 1;
    const key = `load-${w}-${i % 200}`;
    for (const got of [
      await call('POST', `/api/${b}/kv`, JSON.stringify({ key, value: { i } })),
      await call('GET', `/api/${b}/kv/${key}`),
      await call('GET', `/api/${b}/kv/${key}`),
    ]) outcomes[got] = (outcomes[got] || 0) + 1;
    await new Promise((r) => setTimeout(r, 40));
  }
};
await Promise.all(backends.flatMap((b) => [worker(b, 1), worker(b, 2)]));
console.log(`load answers: ${JSON.stringify(outcomes)}`);

console.log('durability demo');
await page.getByRole('button', { name: 'Run the durability demo' }).click();
await page.waitForSelector('#demo-results[data-state="done"]', { timeout: 90000 });
await page.click('#write-all');
await page.waitForTimeout(4500);
const wal = await page.locator('.wal-viewer').boundingBox();
await page.screenshot({ path: out, clip: { x: 0, y: 0, width: 1280, height: Math.round(wal.y + 330) }, fullPage: true });
console.log(`wrote ${out}`);
for (const b of backends) {
  const row = page.locator(`#demo-${b}`);
  console.log(`${b}: acknowledged ${await row.getAttribute('data-acked')}, came back ${await row.getAttribute('data-back')}`);
}
await context.close();
