// tests/e2e/ui/etcd.mjs: the page against a real `walab lab --etcd` (a three-member etcd
// cluster and the etcd backend beside wal, memory and sled), no stand-in.
//
// Checks: four columns from /lab.json, all "Up", the etcd column's title, buttons and
// facts; its members etcd-1..3 all healthy with exactly one leader, as the server's own
// /admin/stats says. The durability demo over the four stores: wal and etcd keep every
// acknowledged key, memory none. Then the issue's demo, kill the leader while writing: a
// writer in this script keeps writing to the etcd store through the lab while the page's
// "Kill the leader member" button is pressed, and the page's "Write keys to all four" runs
// at once (during the election); the column then shows another leader in a higher raft
// term, the killed member back and healthy, and a second "Write keys to all four" after
// the election gets every write acknowledged by etcd; every key etcd acknowledged (the
// page's and the writer's) is there. No console errors beyond the 502/503 of a store
// restarting or electing. Leaves a screenshot of the four columns after all that.
//
// Environment: UI_URL (the page, required), SCREENSHOT (PNG path, default ui-etcd.png),
// N (keys per store, default 10); CHROMIUM, PROFILE_DIR and UI_ASSETS as lib.mjs says.

import { fail, ok, openBrowser, required, run, statusAndHistory, waitFor } from './lib.mjs';

required('UI_URL', 'PROFILE_DIR');
const url = process.env.UI_URL;
const screenshot = process.env.SCREENSHOT || 'ui-etcd.png';
const n = Number(process.env.N || 10);
const MEMBERS = ['etcd-1', 'etcd-2', 'etcd-3'];

// 502 while a crashed server restarts (the lab's proxy), 503 from a server recovering or
// from the etcd store while its cluster has no leader (a write that cannot commit).
const opened = await openBrowser({ url, statuses: [502, 503] });
const { page } = opened;

// The lab's API, from this script (not the page): through the lab's proxy, as the page.
async function api(method, path, body) {
  const reply = await fetch(new URL(path.replace(/^\//, ''), url), {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await reply.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) {
    json = null;
  }
  return { status: reply.status, json, text };
}

async function keysUnder(backend, prefix) {
  const reply = await api('GET', `/api/${backend}/kv?prefix=${encodeURIComponent(prefix)}`);
  if (reply.status !== 200 || !reply.json) fail(`GET /api/${backend}/kv?prefix=${prefix} answered ${reply.status}: ${reply.text}`);
  return new Set(Object.keys(reply.json.data));
}

// What the etcd column shows.
const column = () => page.evaluate(() => {
  const root = document.getElementById('store-etcd');
  return {
    health: root.querySelector('.health').dataset.state,
    leader: root.querySelector('[data-field="etcd-leader"]').textContent,
    members: [...root.querySelectorAll('[data-field="etcd-members"] li')].map((li) => ({
      name: li.dataset.member, state: li.dataset.state, text: li.textContent.trim(),
    })),
  };
});
const describeColumn = (c) => `leader "${c.leader}"; members ${c.members.map((m) => m.text).join(', ')}`;
// "etcd-2 (term 3, index 120)" -> {name, term, index}
function leaderOf(c) {
  const m = /^(\S+) \(term (\d+), index (\d+)\)$/.exec(c.leader);
  return m ? { name: m[1], term: Number(m[2]), index: Number(m[3]) } : null;
}
// Three members, each healthy, exactly one the leader, and the leader line naming it.
const settledClusterShown = () => {
  const root = document.getElementById('store-etcd');
  const items = [...root.querySelectorAll('[data-field="etcd-members"] li')];
  const leaders = items.filter((li) => li.dataset.state === 'leader');
  const leader = root.querySelector('[data-field="etcd-leader"]').textContent;
  return items.length === 3 && items.every((li) => li.dataset.state !== 'down') && leaders.length === 1
    && leader.startsWith(`${leaders[0].dataset.member} (term `)
    && JSON.stringify(items.map((li) => li.dataset.member)) === '["etcd-1","etcd-2","etcd-3"]';
};
const describeEtcd = () => {
  const root = document.getElementById('store-etcd');
  return `leader "${root.querySelector('[data-field="etcd-leader"]').textContent}"; members `
    + `${[...root.querySelectorAll('[data-field="etcd-members"] li')].map((li) => `${li.dataset.state} ${li.textContent.trim()}`).join(', ')}`;
};

// "Write keys to all four" and what the status line then says: prefix and acknowledged per store.
async function writeAllFromThePage() {
  await page.getByRole('button', { name: 'Write keys to all four' }).click();
  await waitFor(page, 'the status line reports the writes',
    () => /^Wrote \S+-1…\d+ in \d+ ms; acknowledged: /.test(document.getElementById('status').textContent),
    null, 60000, statusAndHistory);
  const status = await page.textContent('#status');
  const prefix = /^Wrote (\S+)-1…/.exec(status)[1];
  const acked = {};
  for (const m of status.matchAll(/(wal|memory|sled|etcd) (\d+)/g)) acked[m[1]] = Number(m[2]);
  return { status, prefix, acked };
}

// Writes to the etcd store, one after another, through the lab, until stopped: each
// answer with its time, as the runbook's replication exercise does with curl.
function writer(backend, prefix) {
  const log = [];
  let stop = false;
  const done = (async () => {
    for (let i = 1; !stop; i++) {
      const key = `${prefix}-${i}`;
      const sent = Date.now();
      let status;
      try {
        status = (await api('POST', `/api/${backend}/kv`, { key, value: { i } })).status;
      } catch (e) {
        status = String(e);
      }
      log.push({ key, sent, at: Date.now(), status });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return { log, stop: async () => { stop = true; await done; } };
}

await run('etcd', opened, screenshot, async () => {
  console.log(`== load ${url} (a real walab lab --etcd)`);
  const lab = (await api('GET', '/lab.json')).json;
  const entry = lab.backends.find((e) => e.backend === 'etcd');
  if (!entry) fail(`/lab.json lists no etcd backend: ${JSON.stringify(lab)}`);
  await page.goto(url, { waitUntil: 'load' });
  for (const b of ['wal', 'memory', 'sled', 'etcd']) {
    await page.waitForSelector(`#store-${b} .health[data-state="up"]`, { timeout: 60000 });
  }
  const columns = await page.$$eval('#columns > .store', (els) => els.map((e) => e.dataset.backend));
  if (JSON.stringify(columns) !== '["wal","memory","sled","etcd"]') fail(`the columns are ${JSON.stringify(columns)}`);
  ok('four columns, in /lab.json\'s order, all "Up"');
  const head = await page.evaluate(() => ({
    title: document.title,
    what: document.querySelector('#store-etcd .what').textContent,
    port: document.querySelector('#store-etcd .port').textContent,
    all: document.getElementById('write-all').textContent,
  }));
  if (head.title !== 'walab lab: four stores side by side' || head.all !== 'Write keys to all four'
    || head.what !== entry.title || head.port !== `:${entry.port}`) {
    fail(`the page's words for the etcd lab: ${JSON.stringify(head)} (the lab's entry: ${JSON.stringify(entry)})`);
  }
  ok(`the etcd column: ":${entry.port}", "${head.what}"; the page speaks of four stores`);
  const buttons = await page.$$eval('#store-etcd .buttons button', (bs) => bs.map((x) => x.textContent.replace(/\s+/g, ' ').trim()));
  const want = ['Crash the etcd store (process)', 'Kill the leader member the etcd store', 'Kill all members the etcd store',
    'Checkpoint the etcd store', 'Clear the etcd store'];
  if (JSON.stringify(buttons) !== JSON.stringify(want)) fail(`the etcd column's buttons are ${JSON.stringify(buttons)}`);
  ok('the etcd column offers: process crash, kill the leader member, kill all members, checkpoint, clear (no power loss)');

  console.log('== the cluster in the etcd column');
  await waitFor(page, 'the etcd column shows etcd-1..3 healthy and one leader', settledClusterShown, null, 30000, describeEtcd);
  let shown = await column();
  const stats = (await api('GET', '/api/etcd/admin/stats')).json;
  const first = leaderOf(shown);
  if (!first) fail(`the leader line reads "${shown.leader}"`);
  if (first.name !== stats.etcd.leader) fail(`the column says ${first.name} leads, /admin/stats says ${stats.etcd.leader}`);
  ok(`${describeColumn(shown)} (as /admin/stats says)`);
  const promise = (await page.textContent('#store-etcd [data-field="promise"]')).trim();
  if (promise !== stats.durability.summary) fail(`the etcd column's promise: "${promise}"`);
  const facts = await page.$$eval('#store-etcd .facts > div', (ds) => ds.filter((d) => !d.hidden).map((d) => d.querySelector('dt').textContent));
  for (const f of ['Keys stored', 'Server restarts by the lab', 'Server process id, up for', 'Leader', 'Members']) if (!facts.includes(f)) fail(`the etcd column's facts are ${JSON.stringify(facts)}`);
  ok(`the etcd column shows its promise and the facts ${facts.join(', ')}`);

  console.log(`== the durability demo over four stores, ${n} keys each`);
  await page.fill('#n', String(n));
  await page.getByRole('button', { name: 'Run the durability demo' }).click();
  await page.waitForSelector('#demo-results[data-state="done"]', { timeout: 120000 });
  const rows = {};
  for (const b of columns) {
    const row = page.locator(`#demo-${b}`);
    rows[b] = {
      acked: Number(await row.getAttribute('data-acked')),
      back: Number(await row.getAttribute('data-back')),
      why: (await row.locator('.why').textContent()).trim(),
    };
    console.log(`   ${b}: acknowledged ${rows[b].acked}, came back ${rows[b].back}: ${rows[b].why}`);
  }
  if (rows.wal.acked !== n || rows.wal.back !== n) fail(`wal: ${JSON.stringify(rows.wal)}`);
  if (rows.memory.acked !== n || rows.memory.back !== 0) fail(`memory: ${JSON.stringify(rows.memory)}`);
  if (rows.sled.acked !== n) fail(`sled: ${JSON.stringify(rows.sled)}`);
  if (rows.etcd.acked !== n || rows.etcd.back !== n || !/^All back: /.test(rows.etcd.why)) fail(`etcd: ${JSON.stringify(rows.etcd)}`);
  ok(`the demo: wal and etcd kept all ${n} acknowledged keys, memory none, sled ${rows.sled.back}`);
  await waitFor(page, 'the etcd column counts its server\'s restart',
    () => Number(document.querySelector('#store-etcd [data-field="restarts"]').textContent) >= 1, null, 10000);
  await waitFor(page, 'the cluster is as before after the server\'s crash', settledClusterShown, null, 10000, describeEtcd);
  ok('the etcd column counts its server\'s restart ("Server restarts by the lab"); the cluster did not notice');

  console.log('== kill the leader while writing');
  shown = await column();
  const before = leaderOf(shown);
  const bg = writer('etcd', `during-${Date.now()}`);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // writes acknowledged before the kill
  // What the column shows, every 100 ms, from the kill until it settles again.
  const seen = [];
  let sampling = true;
  const sampler = (async () => {
    const t0 = Date.now();
    while (sampling) {
      const c = await column().catch(() => null);
      if (c) {
        const line = `${c.health}; ${describeColumn(c)}`;
        if (!seen.length || seen.at(-1).line !== line) seen.push({ ms: Date.now() - t0, line, leader: c.leader });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  const killedAt = Date.now();
  await page.getByRole('button', { name: 'Kill the leader member the etcd store' }).click();
  await waitFor(page, 'the status line reports the leader killed',
    () => /^etcd: killed the leader, etcd-\d/.test(document.getElementById('status').textContent), null, 15000, statusAndHistory);
  const said = await page.textContent('#status');
  const killed = /^etcd: killed the leader, (etcd-\d)/.exec(said)[1];
  if (killed !== before.name) fail(`the column showed ${before.name} leading, and ${killed} was killed`);
  ok(`"Kill the leader member" killed ${killed}, the leader the column showed: "${said}"`);

  // The page's own writes, at once: they meet the election.
  const during = await writeAllFromThePage();
  console.log(`   the page's writes during the election: ${during.status}`);
  for (const b of ['wal', 'memory', 'sled']) {
    if (during.acked[b] !== n) fail(`"Write keys to all four" during the election: ${b} acknowledged ${during.acked[b]} of ${n}`);
  }
  if (!(during.acked.etcd >= 1)) fail(`"Write keys to all four" during the election: etcd acknowledged none: ${during.status}`);
  ok(`the page's writes during the election: etcd acknowledged ${during.acked.etcd} of ${n}; the other three all ${n}`);

  // Raft promises a leader in a higher term; which member wins is the election's to choose
  // (the killed one, back within a second, may win a later one), so the check is the term.
  await waitFor(page, 'the etcd column shows a leader in a higher term',
    (b) => {
      const m = /^(\S+) \(term (\d+),/.exec(document.querySelector('#store-etcd [data-field="etcd-leader"]').textContent);
      return m && Number(m[2]) > b.term;
    }, before, 30000, describeEtcd);
  await waitFor(page, 'the killed member is back, all three healthy, one leader', settledClusterShown, null, 30000, describeEtcd);
  shown = await column();
  const after = leaderOf(shown);
  if (!(after.term > before.term)) {
    fail(`after the election the column shows ${describeColumn(shown)} (before: ${before.name}, term ${before.term})`);
  }
  ok(`after the election: ${after.name} leads in term ${after.term} (was ${before.name}, term ${before.term}); ${killed} is back: ${describeColumn(shown)}`);

  // Writes through the page after the election: every one acknowledged.
  const later = await writeAllFromThePage();
  for (const b of columns) {
    if (later.acked[b] !== n) fail(`"Write keys to all four" after the election: ${later.status}`);
  }
  ok(`the page's writes after the election: all four acknowledged ${n} of ${n}`);
  // Let the writer go on until it has 10 writes sent after the kill acknowledged.
  for (let waited = 0; waited < 20000; waited += 100) {
    if (bg.log.filter((w) => w.status === 200 && w.sent > killedAt).length >= 10) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await bg.stop();
  sampling = false;
  await sampler;
  console.log('   the etcd column from the kill on (ms: health; leader; members):');
  for (const s of seen) console.log(`     +${s.ms} ${s.line}`);
  // A leader with its term and index; between leaders, only the term (the index is a leader's).
  const odd = seen.filter((s) => !/^etcd-\d \(term \d+, index [1-9]\d*\)$|^none: an election is under way \(term \d+\)$/.test(s.leader));
  if (odd.length) fail(`the leader line read ${JSON.stringify(odd.map((s) => s.leader))}`);
  ok(`the leader line read right throughout${seen.some((s) => s.leader.startsWith('none')) ? ', the election included' : ' (no leaderless moment caught this time)'}`);

  // What the writer saw: answered throughout, acknowledged again after the election.
  const acks = bg.log.filter((w) => w.status === 200);
  const failed = bg.log.filter((w) => w.status !== 200);
  const ackedAfter = acks.filter((w) => w.sent > killedAt);
  let stall = 0;
  for (let i = 1; i < acks.length; i++) stall = Math.max(stall, acks[i].at - acks[i - 1].at);
  console.log(`   the writer: ${bg.log.length} writes, ${acks.length} acknowledged (${ackedAfter.length} sent after the kill), `
    + `${failed.length} not (${[...new Set(failed.map((w) => w.status))].join(', ') || 'none'}); longest time between two acknowledgements ${stall} ms`);
  if (ackedAfter.length < 10) fail(`the writer: only ${ackedAfter.length} writes sent after the kill were acknowledged`);
  ok(`the etcd store kept answering: ${ackedAfter.length} writes sent after the kill acknowledged, the longest stall ${stall} ms`);

  // Every key etcd acknowledged is there: the writer's, and the page's before and after.
  const kept = await keysUnder('etcd', bg.log[0].key.replace(/-1$/, '-'));
  const lost = acks.filter((w) => !kept.has(w.key));
  if (lost.length) fail(`the etcd store lost ${lost.length} acknowledged writes: ${lost.map((w) => w.key).join(', ')}`);
  for (const w of [during, later]) {
    const present = await keysUnder('etcd', `${w.prefix}-`);
    if (present.size < w.acked.etcd) fail(`the page's ${w.prefix}: etcd acknowledged ${w.acked.etcd}, holds ${present.size}`);
  }
  ok(`etcd holds every key it acknowledged: the writer's ${acks.length}, the page's ${during.acked.etcd} + ${later.acked.etcd}`);

  // Four columns side by side, nothing wider than the screen, one name per button.
  const boxes = await Promise.all(columns.map((b) => page.locator(`#store-${b}`).boundingBox()));
  if (!boxes.every((box, i) => Math.abs(box.y - boxes[0].y) < 2 && (i === 0 || box.x > boxes[i - 1].x))) {
    fail(`at 1280x800 the four columns are not side by side: ${JSON.stringify(boxes)}`);
  }
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) fail(`the page is ${overflow} px wider than the screen`);
  const names = await page.$$eval('button', (bs) => bs.map((b) => b.textContent.replace(/\s+/g, ' ').trim()));
  if (new Set(names).size !== names.length) fail(`two buttons share a name: ${JSON.stringify(names)}`);
  ok(`at 1280x800 the four columns stand side by side; ${names.length} buttons, each with its own name`);
  await page.waitForTimeout(2500); // one more metrics scrape, so the screenshot's charts are current
  await page.screenshot({ path: screenshot, fullPage: true });
  ok(`screenshot: ${screenshot}`);
});
