// tests/e2e/ui/token.mjs: the page against a lab started with ADMIN_TOKEN.
//
// Before the token is typed the admin calls answer 401 and the page says, next to the token
// field, what to do; a server crashed behind the page's back (here by this script, with the
// token) is still seen restarting, through its walab_process_restarts_total on /metrics,
// since /admin/stats is closed to the page; the page's own crash and checkpoint buttons get
// 401. Once the token is typed they work, and the token sits in the tab's sessionStorage
// only: not in localStorage, not in a cookie, not in the URL; a reload keeps it, a new tab
// does not have it.
//
// Environment: UI_URL (the page, required), ADMIN_TOKEN (the lab's, required), SCREENSHOT
// (PNG path of a failure, default ui-token.png); CHROMIUM, PROFILE_DIR and UI_ASSETS as
// lib.mjs says.

import { fail, ok, openBrowser, required, run, statusAndHistory, waitFor } from './lib.mjs';

required('UI_URL', 'PROFILE_DIR', 'ADMIN_TOKEN');
const url = process.env.UI_URL;
const token = process.env.ADMIN_TOKEN;
const screenshot = process.env.SCREENSHOT || 'ui-token.png';
const TOKEN_KEY = 'walab-lab.admin-token';

// 401 until the token is typed; 502 and 503 while a crashed server restarts.
const opened = await openBrowser({ url, statuses: [401, 502, 503] });
const { context, page } = opened;

const historyHas = (page, pattern) => waitFor(page, `the page reports /${pattern}/`,
  (p) => [document.getElementById('status').textContent,
    ...[...document.querySelectorAll('#history li')].map((li) => li.textContent.replace(/^\S+\s+/, ''))]
    .some((t) => new RegExp(p).test(t)),
  pattern, 20000, statusAndHistory);

async function crashBehindThePage(backend) {
  const reply = await fetch(new URL(`api/${backend}/admin/crash`, url), {
    method: 'POST', headers: { Authorization: `Bearer ${token}` },
  });
  if (reply.status !== 200) fail(`POST /api/${backend}/admin/crash with the token answered ${reply.status}`);
}

await run('token', opened, screenshot, async () => {
  console.log(`== load ${url} (the lab runs with ADMIN_TOKEN)`);
  await page.goto(url, { waitUntil: 'load' });
  for (const b of ['wal', 'memory', 'sled']) {
    await page.waitForSelector(`#store-${b} .health[data-state="up"]`, { timeout: 30000 });
  }
  ok('all three columns say "Up" (/health needs no token)');
  await page.waitForSelector('#token-say[data-state="refused"]:not([hidden])', { timeout: 10000 });
  const said = await page.textContent('#token-say');
  if (!/this lab needs its ADMIN_TOKEN: paste it here/i.test(said)) fail(`next to the token field: "${said}"`);
  ok(`next to the token field: "${said}"`);
  const described = await page.getAttribute('#token', 'aria-describedby');
  if (!described.split(' ').includes('token-say')) fail(`the field is described by "${described}"`);
  ok('the field is described by that message (a screen reader reads it with the field)');

  console.log('== a restart seen through walab_process_restarts_total');
  // /admin/stats answers the page 401, so the restart count can only come from /metrics.
  await waitFor(page, 'the wal column shows its restart count from /metrics',
    () => /^\d+$/.test(document.querySelector('#store-wal [data-field="restarts"]').textContent), null, 10000,
    () => document.querySelector('#store-wal [data-field="restarts"]').textContent);
  const before = Number(await page.textContent('#store-wal [data-field="restarts"]'));
  const pid = await page.textContent('#store-wal [data-field="pid"]');
  if (pid !== '…') fail(`the wal column shows a pid ("${pid}") though /admin/stats is closed to the page`);
  ok(`the wal column shows its restart count (${before}) from /metrics (its stats, pid included, are closed to the page)`);
  await crashBehindThePage('wal');
  const after = before + 1;
  await historyHas(page, `wal: the lab restarted it \\(restart ${after}; walab_process_restarts_total went from ${before} to ${after}\\)`);
  const restarts = await page.textContent('#store-wal [data-field="restarts"]');
  if (restarts !== String(after)) fail(`the wal column shows ${restarts} restarts`);
  ok(`crashed behind the page, wal is reported restarted through walab_process_restarts_total (${before} to ${after})`);

  console.log('== the buttons without the token');
  await page.getByRole('button', { name: 'Crash the wal store (process)' }).click();
  await historyHas(page, 'wal: could not crash it: 401: this lab needs its ADMIN_TOKEN');
  ok('"Crash" answers 401 and the status line says to paste the token');
  await page.getByRole('button', { name: 'Checkpoint the wal store' }).click();
  await historyHas(page, 'wal: checkpoint failed: 401');
  ok('"Checkpoint" answers 401');
  const summary = await page.textContent('#wal-summary');
  if (!/ADMIN_TOKEN/.test(summary)) fail(`the log viewer says "${summary}"`);
  ok(`the log viewer says why it is empty: "${summary}"`);

  console.log('== a wrong token, and one no header can carry');
  await page.fill('#token', `${token}-wrong`);
  await waitFor(page, 'the page says the stores refused the token',
    () => /refused this token \(401\)/.test(document.getElementById('token-say').textContent), null, 10000,
    () => document.getElementById('token-say').textContent);
  ok(`a wrong token: "${await page.textContent('#token-say')}"`);
  await page.fill('#token', 'caf\u00e9');
  await page.waitForSelector('#token-say[data-state="unsendable"]', { timeout: 5000 });
  await page.waitForTimeout(1500); // a poll or two with it in the field
  if (!(await page.isHidden('#lab-down'))) fail('with a non-ASCII token the page says the lab is not answering');
  ok(`a token with a non-ASCII letter: "${await page.textContent('#token-say')}" (and the lab is not called down)`);

  console.log('== with the token typed');
  await page.fill('#token', token);
  await page.waitForSelector('#token-say[data-state="accepted"]', { timeout: 10000 });
  ok(`the stores accept it: "${await page.textContent('#token-say')}"`);
  await waitFor(page, 'the wal column shows its stats',
    () => /^\d+, /.test(document.querySelector('#store-wal [data-field="pid"]').textContent), null, 10000);
  ok('the wal column shows its stats (pid and uptime)');
  await page.getByRole('button', { name: 'Checkpoint the wal store' }).click();
  await historyHas(page, '^wal: checkpoint created at #');
  ok('"Checkpoint" works');
  const memory = Number(await page.textContent('#store-memory [data-field="restarts"]'));
  await page.getByRole('button', { name: 'Crash the memory store (process)' }).click();
  await historyHas(page, '^memory: crashed with .* The lab restarts it\\.$');
  await historyHas(page, `^memory: the lab restarted it \\(restart ${memory + 1}; `);
  ok('"Crash" works, and the restart is reported');

  const kept = await page.evaluate((key) => ({
    session: sessionStorage.getItem(key),
    local: Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)]),
    cookie: document.cookie,
    url: location.href,
  }), TOKEN_KEY);
  if (kept.session !== token) fail(`sessionStorage holds ${JSON.stringify(kept.session)}`);
  if (kept.local.length) fail(`localStorage holds ${JSON.stringify(kept.local)}`);
  if (kept.cookie) fail(`a cookie: ${kept.cookie}`);
  if (kept.url.includes(token) || page.url().includes(token)) fail(`the URL holds the token: ${kept.url}`);
  ok('the token is in sessionStorage only: not in localStorage, a cookie or the URL');

  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('#token-say[data-state="accepted"]', { timeout: 15000 });
  if ((await page.inputValue('#token')) !== token) fail('after a reload the field is empty');
  ok('a reload of the tab keeps it');
  const other = await context.newPage();
  await other.goto(url, { waitUntil: 'load' });
  await other.waitForSelector('#token-say[data-state="refused"]:not([hidden])', { timeout: 15000 });
  const elsewhere = await other.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY);
  if ((await other.inputValue('#token')) !== '' || elsewhere !== null) fail('a new tab has the token');
  ok('a new tab does not have it, and asks for it');
  await other.close();
});
