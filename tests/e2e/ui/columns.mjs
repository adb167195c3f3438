// tests/e2e/ui/columns.mjs: the page builds its columns from /lab.json.
//
// Against a running lab (wal, memory, sled), with /lab.json as the lab serves it when it
// runs a fourth backend: this script adds an `etcd` entry carrying "title" and "supports",
// gives memory a title of its own, and answers /api/etcd/... itself with a small stand-in for the etcd-backed server: /health, /admin/stats with its cluster (members,
// leader, raft term and index, health), /metrics, /kv, /admin/wal (revisions, no times),
// /admin/checkpoint (a compaction) and /admin/crash in the modes process, leader and
// all-members. It checks the fourth column: its title, its members and leader, only the
// buttons it supports (no power loss), each crash mode sent as asked; the log viewer's
// choice between the two logs; four columns side by side at 1280 px; the durability demo
// over all four; and that the real three columns are unchanged.
//
// Environment: UI_URL (the page, required), SCREENSHOT (PNG path, default
// ui-columns.png); CHROMIUM, PROFILE_DIR and UI_ASSETS as lib.mjs says.

import { fail, ok, openBrowser, required, run, statusAndHistory, waitFor } from './lib.mjs';

required('UI_URL', 'PROFILE_DIR');
const url = process.env.UI_URL;
const screenshot = process.env.SCREENSHOT || 'ui-columns.png';

const ETCD = {
  backend: 'etcd',
  port: 8004,
  url: 'http://127.0.0.1:8004',
  title: 'etcd 3.4 through its JSON gateway: three members, Raft',
  // As the lab's catalog writes it: a power loss would be one of the crash modes.
  supports: { log: true, checkpoint: true, crash_modes: ['process', 'leader', 'all-members'] },
};
const MEMORY_TITLE = 'A map in memory (title from /lab.json)';
// The lab's own entries, as /lab.json served them.
const served = {};

// The stand-in etcd-backed server.
const fake = {
  pid: 4242,
  restarts: 0,
  started: Date.now(),
  term: 2,
  index: 100,
  leader: 'etcd-2',
  down: new Set(),
  keys: new Map(),
  crashes: [],
};
function stats() {
  const members = ['etcd-1', 'etcd-2', 'etcd-3'].map((name, i) => ({
    name,
    id: `8e9e05c52164694${i}`,
    client_url: `http://127.0.0.1:${23790 + i * 10}`,
    healthy: !fake.down.has(name),
    is_leader: name === fake.leader,
    ...(fake.down.has(name) ? { error: 'connection refused' } : {}),
  }));
  return {
    backend: 'etcd',
    durability: { summary: 'fsynced to the Raft log of a majority of 3 members before acknowledged', survives_power_loss: true, survives_process_crash: true },
    item_count: fake.keys.size,
    pid: fake.pid,
    restarts: fake.restarts,
    uptime_seconds: (Date.now() - fake.started) / 1000,
    recovered_entries: 0,
    wal_enabled: true,
    size_on_disk_bytes: 20480,
    etcd: { leader: fake.leader, raft_term: fake.term, raft_index: fake.index, members },
  };
}
const json = (route, body, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });

async function intercept(route, target) {
  if (target.pathname === '/lab.json') {
    const reply = await route.fetch();
    const lab = await reply.json();
    for (const e of lab.backends) {
      if (e.backend === 'memory') e.title = MEMORY_TITLE;
      served[e.backend] = e;
    }
    lab.backends.push(ETCD);
    await json(route, lab);
    return true;
  }
  if (!target.pathname.startsWith('/api/etcd/')) return false;
  const path = target.pathname.slice('/api/etcd'.length);
  const method = route.request().method();
  if (path === '/health') await json(route, { status: 'ok', backend: 'etcd' });
  else if (path === '/admin/stats') await json(route, stats());
  else if (path === '/metrics') {
    await route.fulfill({ status: 200, contentType: 'text/plain; version=0.0.4', body: `walab_process_restarts_total{backend="etcd"} ${fake.restarts}\n` });
  } else if (path === '/admin/crash' && method === 'POST') {
    const mode = target.searchParams.get('mode');
    fake.crashes.push(mode);
    if (mode === 'process') {
      await json(route, { status: 'crashing', mode: 'process', items_in_memory: fake.keys.size, note: 'the data is in etcd: nothing this server held is lost' });
      // The lab restarts the walab server: a new process, one more restart.
      setTimeout(() => { fake.pid += 1; fake.restarts += 1; fake.started = Date.now(); }, 150);
    } else if (mode === 'leader') {
      // Without a note: the page says what was killed by itself.
      const killed = fake.leader;
      await json(route, { status: 'crashed', mode: 'leader', backend: 'etcd', items: fake.keys.size, killed_members: [killed] });
      fake.down.add(killed);
      fake.leader = 'etcd-1';
      fake.term += 1;
    } else if (mode === 'all-members') {
      await json(route, {
        status: 'crashed', mode: 'all-members', backend: 'etcd', items: fake.keys.size, killed_members: ['etcd-1', 'etcd-2', 'etcd-3'],
        note: 'killed every member: writes fail until the lab has restarted a majority, then every acknowledged write is back from their logs',
      });
    } else {
      await json(route, { error: 'invalid_query', detail: `unknown crash mode '${mode}'` }, 400);
    }
  } else if (path === '/kv' && method === 'POST') {
    const body = JSON.parse(route.request().postData());
    fake.keys.set(body.key, body.value);
    fake.index += 1;
    await json(route, { key: body.key, value: body.value, sequence: fake.index });
  } else if (path === '/kv' && method === 'GET') {
    const prefix = target.searchParams.get('prefix') || '';
    const data = Object.fromEntries([...fake.keys].filter(([k]) => k.startsWith(prefix)));
    await json(route, { data, count: Object.keys(data).length });
  } else if (path === '/admin/wal') {
    const entries = [...fake.keys].map(([key, value], i) => ({ sequence: 101 + i, operation: 'SET', key, value, timestamp: null }));
    await json(route, { wal_enabled: true, entries, count: entries.length, total: entries.length });
  } else if (path === '/admin/checkpoint' && method === 'POST') {
    await json(route, {
      status: 'checkpoint created', entries_truncated: 0, sequence: fake.index, duration_ms: 1.5,
      note: `etcd compacted its key history up to revision ${fake.index}`,
    });
  } else if (path === '/admin/clear' && method === 'POST') {
    fake.keys.clear();
    await json(route, { status: 'cleared', items: 0 });
  } else {
    await json(route, { error: 'not_found', detail: `the stand-in has no ${method} ${path}` }, 404);
  }
  return true;
}

const opened = await openBrowser({ url, statuses: [502, 503], intercept });
const { page } = opened;

const buttonsOf = (b) => page.$$eval(`#store-${b} .buttons button`,
  (bs) => bs.map((x) => x.textContent.replace(/\s+/g, ' ').trim()));

await run('columns', opened, screenshot, async () => {
  console.log(`== load ${url} with a fourth backend in /lab.json`);
  await page.goto(url, { waitUntil: 'load' });
  for (const b of ['wal', 'memory', 'sled', 'etcd']) {
    await page.waitForSelector(`#store-${b} .health[data-state="up"]`, { timeout: 30000 });
  }
  const columns = await page.$$eval('#columns > .store', (els) => els.map((e) => e.dataset.backend));
  if (JSON.stringify(columns) !== '["wal","memory","sled","etcd"]') fail(`the columns are ${JSON.stringify(columns)}`);
  ok('four columns, in /lab.json\'s order, all "Up"');
  const titles = await page.$$eval('#columns .what', (els) => els.map((e) => e.textContent));
  const expected = [served.wal && served.wal.title, MEMORY_TITLE, served.sled && served.sled.title, ETCD.title];
  if (JSON.stringify(titles) !== JSON.stringify(expected)) {
    fail(`the columns' titles are ${JSON.stringify(titles)}`);
  }
  ok('each column\'s title comes from /lab.json');
  if ((await page.textContent('#store-etcd .port')) !== ':8004') fail('the etcd column does not show :8004');

  const etcdButtons = await buttonsOf('etcd');
  const want = ['Crash the etcd store (process)', 'Kill the leader member the etcd store', 'Kill all members the etcd store',
    'Checkpoint the etcd store', 'Clear the etcd store'];
  if (JSON.stringify(etcdButtons) !== JSON.stringify(want)) fail(`the etcd column's buttons are ${JSON.stringify(etcdButtons)}`);
  ok(`the etcd column offers what it supports: ${etcdButtons.map((x) => x.replace(' the etcd store', '')).join(', ')}`);
  if ((await buttonsOf('wal')).length !== 4 || (await buttonsOf('memory')).length !== 2 || (await buttonsOf('sled')).length !== 3) {
    fail('the wal, memory and sled columns changed their buttons');
  }
  ok('the wal, memory and sled columns keep their buttons');
  const words = await page.evaluate(() => ({
    all: document.getElementById('write-all').textContent,
    powerLoss: document.getElementById('power-loss-label').textContent,
  }));
  if (words.all !== 'Write keys to all four' || words.powerLoss !== 'Crash the WAL with a power loss (the others crash as a process)') {
    fail(`the page's words for four stores: ${JSON.stringify(words)}`);
  }
  ok('the page speaks of four stores; the power loss is still the WAL\'s alone');

  console.log('== the cluster in the etcd column');
  await waitFor(page, 'the etcd column lists three members',
    () => document.querySelectorAll('#store-etcd [data-field="etcd-members"] li').length === 3, null, 10000);
  const cluster = async () => page.evaluate(() => ({
    leader: document.querySelector('#store-etcd [data-field="etcd-leader"]').textContent,
    members: [...document.querySelectorAll('#store-etcd [data-field="etcd-members"] li')].map((li) => `${li.dataset.state} ${li.textContent.trim()}`),
    recovery: document.querySelector('#store-etcd [data-field="recovery"]').textContent,
  }));
  let c = await cluster();
  if (c.leader !== 'etcd-2 (term 2, index 100)') fail(`the leader reads "${c.leader}"`);
  if (JSON.stringify(c.members) !== '["up etcd-1: healthy","leader etcd-2: leader","up etcd-3: healthy"]') fail(`members: ${JSON.stringify(c.members)}`);
  ok(`leader "${c.leader}"; members ${c.members.join(', ')}`);

  await page.getByRole('button', { name: 'Kill the leader member the etcd store' }).click();
  await waitFor(page, 'the status line reports the leader killed',
    () => /^etcd: crash mode leader: killed etcd-2; the lab restarts what was killed\.$/.test(document.getElementById('status').textContent),
    null, 10000, statusAndHistory);
  await waitFor(page, 'the etcd column shows the new leader and etcd-2 down',
    () => document.querySelector('#store-etcd [data-member="etcd-2"]').dataset.state === 'down'
      && document.querySelector('#store-etcd [data-member="etcd-1"]').dataset.state === 'leader', null, 10000);
  c = await cluster();
  ok(`"Kill the leader member" sent mode=leader; now leader "${c.leader}", members ${c.members.join(', ')}`);
  await page.getByRole('button', { name: 'Kill all members the etcd store' }).click();
  await waitFor(page, 'the status line reports all members killed',
    () => /^etcd: killed every member: writes fail until the lab has restarted a majority, then every acknowledged write is back from their logs\.$/
      .test(document.getElementById('status').textContent),
    null, 10000, statusAndHistory);
  if (JSON.stringify(fake.crashes) !== '["leader","all-members"]') fail(`the stand-in was asked ${JSON.stringify(fake.crashes)}`);
  ok('"Kill all members" sent mode=all-members, and the status line gives the server\'s note');
  await page.getByRole('button', { name: 'Checkpoint the etcd store' }).click();
  await waitFor(page, 'the status line reports the compaction',
    () => /^etcd: etcd compacted its key history up to revision \d+$/.test(document.getElementById('status').textContent),
    null, 10000, statusAndHistory);
  ok('"Checkpoint" on etcd gives the server\'s note');

  console.log('== the durability demo over four stores');
  await page.fill('#n', '5');
  await page.getByRole('button', { name: 'Run the durability demo' }).click();
  await page.waitForSelector('#demo-results[data-state="done"]', { timeout: 90000 });
  const row = page.locator('#demo-etcd');
  const etcd = { acked: await row.getAttribute('data-acked'), back: await row.getAttribute('data-back'), why: await row.locator('.why').textContent() };
  if (etcd.acked !== '5' || etcd.back !== '5' || !/^All back: /.test(etcd.why)) fail(`the demo's etcd row: ${JSON.stringify(etcd)}`);
  ok(`the demo's etcd row: acknowledged 5, 5 came back: "${etcd.why}"`);
  const wal = await page.locator('#demo-wal').getAttribute('data-back');
  if (wal !== '5') fail(`the demo's wal row: ${wal} came back`);
  ok('the demo\'s wal row: all 5 came back');
  if (fake.crashes.at(-1) !== 'process') fail(`the demo crashed etcd with mode ${fake.crashes.at(-1)}`);
  await waitFor(page, 'the etcd column counts its restart',
    () => document.querySelector('#store-etcd [data-field="restarts"]').textContent === '1', null, 10000);
  ok('the demo crashed the etcd store as a process, and its column counts the restart');

  console.log('== the log viewer: two backends keep a log');
  const choice = await page.$$eval('#log-choice input', (els) => els.map((e) => `${e.value}${e.checked ? '*' : ''}`));
  if (JSON.stringify(choice) !== '["wal*","etcd"]') fail(`the log viewer offers ${JSON.stringify(choice)}`);
  await page.getByRole('radio', { name: 'etcd' }).check();
  await waitFor(page, 'the viewer lists the etcd store\'s 5 revisions',
    () => document.querySelectorAll('#wal-table tbody tr').length === 5, null, 10000,
    () => document.getElementById('wal-summary').textContent);
  const first = await page.$$eval('#wal-table tbody tr:first-child td', (tds) => tds.map((td) => td.textContent));
  if (first[0] !== '105' || first[4] !== '–') fail(`the newest etcd record reads ${JSON.stringify(first)}`);
  const hint = await page.textContent('#log-hint');
  if (!/revision/.test(hint)) fail(`the hint over etcd's log: "${hint}"`);
  ok(`the viewer shows etcd's log when asked (newest: #${first[0]}, no time), with its own hint`);
  await page.getByRole('radio', { name: 'wal' }).check();
  await waitFor(page, 'the viewer is back on the wal',
    () => /since the last checkpoint/.test(document.getElementById('wal-summary').textContent), null, 10000,
    () => document.getElementById('wal-summary').textContent);
  ok('and the WAL\'s again');

  const boxes = await Promise.all(columns.map((b) => page.locator(`#store-${b}`).boundingBox()));
  if (!boxes.every((box, i) => Math.abs(box.y - boxes[0].y) < 2 && (i === 0 || box.x > boxes[i - 1].x))) {
    fail(`at 1280x800 the four columns are not side by side: ${JSON.stringify(boxes)}`);
  }
  ok('at 1280x800 the four columns stand side by side');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) fail(`the page is ${overflow} px wider than the screen`);
  const names = await page.$$eval('button', (bs) => bs.map((b) => b.textContent.replace(/\s+/g, ' ').trim()));
  if (new Set(names).size !== names.length) fail(`two buttons share a name: ${JSON.stringify(names)}`);
  ok(`${names.length} buttons, each with its own name`);
  await page.screenshot({ path: screenshot, fullPage: true });
  ok(`screenshot: ${screenshot}`);
});
