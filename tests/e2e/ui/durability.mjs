// tests/e2e/ui/durability.mjs: the lab's page in headless Chromium, against a running lab.
//
// Loads the page, waits for the three stores to be up, runs the durability demo and asserts
// what the page reports per store: wal acknowledged N and got N back, memory got none back,
// sled acknowledged N (what it kept depends on its 500 ms background flush, so it is only
// reported). Then it writes keys so the charts and the WAL viewer have something to show,
// checks them, takes a screenshot, and checks the columns stack on a narrow screen. On the
// way: a lab that lists wal, memory and sled gets exactly today's three columns, each with
// the buttons its backend supports.
//
// Environment: UI_URL (the page, required), SCREENSHOT (PNG path, default
// ui-screenshot.png), N (keys per store, default 10); CHROMIUM, PROFILE_DIR and UI_ASSETS as
// lib.mjs says.

import { fail, ok, openBrowser, required, run } from './lib.mjs';

required('UI_URL', 'PROFILE_DIR');
const url = process.env.UI_URL;
const screenshot = process.env.SCREENSHOT || 'ui-screenshot.png';
const n = Number(process.env.N || 10);

// Chromium logs every non-2xx answer as "Failed to load resource": while a crashed server
// restarts the lab answers 502 (down) and the server 503 (recovering), as expected, and the
// page shows it. Anything else is a failure.
const opened = await openBrowser({ url, statuses: [502, 503] });
const { page } = opened;

await run('durability', opened, screenshot, async () => {
  console.log(`== load ${url}`);
  await page.goto(url, { waitUntil: 'load' });
  for (const b of ['wal', 'memory', 'sled']) {
    await page.waitForSelector(`#store-${b} .health[data-state="up"]`, { timeout: 30000 });
  }
  ok('all three columns say "Up"');
  const columns = await page.$$eval('#columns > .store', (els) => els.map((e) => e.dataset.backend));
  if (JSON.stringify(columns) !== '["wal","memory","sled"]') fail(`the columns are ${JSON.stringify(columns)}`);
  ok('the columns come from /lab.json: wal, memory, sled, in its order');
  const buttons = {};
  for (const b of columns) {
    buttons[b] = await page.$$eval(`#store-${b} .buttons button`,
      (bs) => bs.map((x) => x.textContent.replace(/\s+/g, ' ').trim()));
  }
  const want = {
    wal: ['Crash the wal store (process)', 'Power loss the wal store', 'Checkpoint the wal store', 'Clear the wal store'],
    memory: ['Crash the memory store (process)', 'Clear the memory store'],
    sled: ['Crash the sled store (process)', 'Flush the sled store', 'Clear the sled store'],
  };
  if (JSON.stringify(buttons) !== JSON.stringify(want)) fail(`the columns' buttons are ${JSON.stringify(buttons)}`);
  ok('each column offers what its backend supports: power loss and checkpoint on wal, flush on sled, neither on memory');
  const words = await page.evaluate(() => ({
    all: document.getElementById('write-all').textContent,
    powerLoss: document.getElementById('power-loss-label').textContent,
    title: document.title,
    viewer: !document.getElementById('log-viewer').hidden && document.getElementById('log-choice').hidden,
  }));
  if (words.all !== 'Write keys to all three' || words.title !== 'walab lab: three stores side by side'
    || words.powerLoss !== 'Crash the WAL with a power loss (the others crash as a process)' || !words.viewer) {
    fail(`the page's words for three stores: ${JSON.stringify(words)}`);
  }
  ok('the page speaks of three stores, the WAL\'s power loss and one log viewer, as before');
  const facts = await page.evaluate(() => Object.fromEntries(['wal', 'memory', 'sled'].map((b) => [b,
    [...document.querySelectorAll(`#store-${b} .facts > div`)].filter((d) => !d.hidden).map((d) => d.querySelector('dt').textContent)])));
  const wantFacts = {
    wal: ['Keys stored', 'Restarts by the lab', 'Process id, up for', 'Log on disk', 'Records since checkpoint', 'fsync'],
    memory: ['Keys stored', 'Restarts by the lab', 'Process id, up for'],
    sled: ['Keys stored', 'Restarts by the lab', 'Process id, up for', 'On disk', 'Flush'],
  };
  if (JSON.stringify(facts) !== JSON.stringify(wantFacts)) fail(`the columns' facts are ${JSON.stringify(facts)}`);
  ok('each column shows the facts its /admin/stats carries');
  const promise = await page.textContent('#store-wal [data-field="promise"]');
  if (!/fdatasync|fsync/.test(promise)) fail(`the wal column's promise is "${promise}"`);
  ok(`the wal column shows its promise: "${promise.trim()}"`);

  console.log(`== durability demo with ${n} keys`);
  await page.fill('#n', String(n));
  await page.getByRole('button', { name: 'Run the durability demo' }).click();
  await page.waitForSelector('#demo-results[data-state="done"]', { timeout: 90000 });
  const rows = {};
  for (const b of ['wal', 'memory', 'sled']) {
    const row = page.locator(`#demo-${b}`);
    rows[b] = {
      acked: Number(await row.getAttribute('data-acked')),
      back: Number(await row.getAttribute('data-back')),
      why: (await row.locator('.why').textContent()).trim(),
    };
    console.log(`   ${b}: acknowledged ${rows[b].acked}, came back ${rows[b].back}: ${rows[b].why}`);
  }
  if (rows.wal.acked !== n || rows.wal.back !== n) fail(`wal: ${JSON.stringify(rows.wal)}`);
  ok(`wal: acknowledged ${n}, all ${n} came back`);
  if (rows.memory.acked !== n || rows.memory.back !== 0) fail(`memory: ${JSON.stringify(rows.memory)}`);
  ok(`memory: acknowledged ${n}, none came back`);
  if (rows.sled.acked !== n || rows.sled.back < 0 || rows.sled.back > n) fail(`sled: ${JSON.stringify(rows.sled)}`);
  ok(`sled: acknowledged ${n}, ${rows.sled.back} came back (its 500 ms background flush decides)`);
  const status = await page.textContent('#status');
  if (!status.includes('Durability demo done')) fail(`the status line says "${status}"`);
  ok('the status line (aria-live) reports the result');
  const restarts = await page.textContent('#store-wal [data-field="restarts"]');
  if (Number(restarts) < 1) fail(`the wal column shows ${restarts} restarts after a crash`);
  ok(`the wal column counts the restart (${restarts})`);

  console.log('== charts and the WAL viewer');
  // The demo's writes died with the crashed processes' counters; write again so the
  // charts have two scrapes of the same process with writes in between.
  await page.getByRole('button', { name: 'Write keys to all three' }).click();
  await page.waitForFunction(
    () => /p50 .*p99/.test(document.querySelector('#store-wal [data-field="write-now"]').textContent),
    null,
    { timeout: 20000 },
  ).catch(async (e) => {
    const said = await page.textContent('#store-wal [data-field="write-now"]');
    const status = await page.textContent('#status');
    fail(`the wal write-latency chart never showed numbers: "${said}" (status: "${status}"): ${e.message}`);
  });
  const writeNow = await page.textContent('#store-wal [data-field="write-now"]');
  ok(`the wal write-latency chart has numbers: "${writeNow}"`);
  await page.waitForFunction(
    () => document.querySelectorAll('#wal-table tbody tr').length > 0,
    null,
    { timeout: 10000 },
  );
  const walRows = await page.locator('#wal-table tbody tr').count();
  const firstOp = await page.textContent('#wal-table tbody tr:first-child td:nth-child(2)');
  ok(`the WAL viewer lists ${walRows} records (newest: ${firstOp})`);
  const recovery = await page.textContent('#store-wal [data-field="recovery"]');
  if (!/Replayed \d+ log record/.test(recovery)) fail(`the wal column's last recovery says "${recovery}"`);
  ok(`the wal column shows its last recovery: "${recovery.trim()}"`);

  // Side by side at 1280x800.
  const boxes = async () => Promise.all(['wal', 'memory', 'sled'].map((b) => page.locator(`#store-${b}`).boundingBox()));
  let [w, m, s] = await boxes();
  if (!(Math.abs(w.y - m.y) < 2 && Math.abs(m.y - s.y) < 2 && w.x < m.x && m.x < s.x)) {
    fail(`at 1280x800 the columns are not side by side: ${JSON.stringify([w, m, s])}`);
  }
  ok('at 1280x800 the three columns stand side by side');
  await page.waitForTimeout(2500); // one more metrics scrape, so the screenshot's charts are current
  await page.screenshot({ path: screenshot, fullPage: true });
  ok(`screenshot: ${screenshot}`);

  // Stacked on a narrow screen, with nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  [w, m, s] = await boxes();
  if (!(w.y < m.y && m.y < s.y && Math.abs(w.x - m.x) < 2)) {
    fail(`at 390 px the columns do not stack: ${JSON.stringify([w, m, s])}`);
  }
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) fail(`at 390 px the page is ${overflow} px wider than the screen`);
  ok('at 390 px wide the columns stack and nothing overflows');

  // Every button has a name a screen reader can say, and each store's buttons differ.
  const names = await page.$$eval('button', (bs) => bs.map((b) => b.textContent.replace(/\s+/g, ' ').trim()));
  if (names.some((x) => !x)) fail(`a button has no name: ${JSON.stringify(names)}`);
  if (new Set(names).size !== names.length) fail(`two buttons share a name: ${JSON.stringify(names)}`);
  ok(`${names.length} buttons, each with its own name`);

});
