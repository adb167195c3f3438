// durability.js: write keys to every store, crash them all with POST /admin/crash, wait for
// whatever supervises them (walab lab, or Compose's restart: always) to bring them back, and
// report per store how many acknowledged keys came back.
//
//   k6 run k6/durability.js                          # against walab lab on 127.0.0.1:8001-8003
//   k6 run -e KEYS=1000 -e WAIT_MS=1000 k6/durability.js   # give sled's 500 ms flush a chance
//   docker compose run --rm lab25-k6 run /scripts/durability.js
//
// Environment: KEYS (200 per store), WAIT_MS (0: crash straight after the last write),
// RESTART_TIMEOUT_S (30), BACKENDS (wal,memory,sled), ADMIN_TOKEN, and the base URLs (lib.js).
// The test fails (a threshold) if the WAL loses an acknowledged key; the others promise less.
// Every request is tagged with its store (`backend`) and a fixed `name`, so with
// `-o experimental-prometheus-rw` (k6/README.md) its requests show per backend on the
// dashboard's "client view (k6)" row, the crash's refused connections among them.
import http from 'k6/http';
import { sleep } from 'k6';
import { Gauge } from 'k6/metrics';
import { baseUrl, JSON_HEADERS, adminHeaders, runId, pad, lpad } from './lib.js';

const BACKENDS = (__ENV.BACKENDS || 'wal,memory,sled').split(',').map((s) => s.trim()).filter(Boolean);
const KEYS = parseInt(__ENV.KEYS || '200', 10);
const WAIT_MS = parseInt(__ENV.WAIT_MS || '0', 10);
const RESTART_TIMEOUT_S = parseFloat(__ENV.RESTART_TIMEOUT_S || '30');

const g = {};
for (const b of BACKENDS) {
  for (const what of ['acked', 'back', 'lost', 'restart_ms']) g[`${b}_${what}`] = new Gauge(`durability_${b}_${what}`);
}

const thresholds = {};
if (BACKENDS.includes('wal')) thresholds.durability_wal_lost = ['value<1'];
for (const b of BACKENDS) thresholds[`durability_${b}_acked`] = ['value>0'];

export const options = {
  scenarios: { durability: { executor: 'shared-iterations', vus: 1, iterations: 1, maxDuration: '5m' } },
  thresholds,
};

function stats(b) {
  const res = http.get(`${baseUrl(b)}/admin/stats`, { headers: adminHeaders(), timeout: '2s', tags: { backend: b, name: 'GET /admin/stats' } });
  return res.status === 200 ? res.json() : null;
}

export default function () {
  const run = runId();
  const acked = {};
  // 1. Write KEYS keys to each store, 20 requests at a time; keep the acknowledged ones.
  for (const b of BACKENDS) {
    const url = baseUrl(b);
    acked[b] = [];
    for (let i = 0; i < KEYS; i += 20) {
      const batch = [];
      const keys = [];
      for (let j = i; j < Math.min(KEYS, i + 20); j++) {
        const key = `durability-${run}-${j}`;
        keys.push(key);
        batch.push(['POST', `${url}/kv`, JSON.stringify({ key, value: { n: j, run } }), { headers: JSON_HEADERS, tags: { backend: b, name: 'POST /kv' } }]);
      }
      http.batch(batch).forEach((res, k) => {
        if (res.status === 200) acked[b].push(keys[k]);
      });
    }
    console.log(`${b}: ${acked[b].length} of ${KEYS} writes acknowledged`);
  }
  if (WAIT_MS > 0) sleep(WAIT_MS / 1000);

  // 2. Crash every store at once.
  const before = {};
  for (const b of BACKENDS) {
    const s = stats(b);
    if (!s) throw new Error(`GET ${baseUrl(b)}/admin/stats failed (ADMIN_TOKEN?)`);
    before[b] = s;
  }
  const crashed = Date.now();
  const replies = http.batch(
    BACKENDS.map((b) => ['POST', `${baseUrl(b)}/admin/crash`, null, { headers: adminHeaders(), tags: { backend: b, name: 'POST /admin/crash' } }]),
  );
  replies.forEach((res, k) => {
    if (res.status !== 200) throw new Error(`POST ${baseUrl(BACKENDS[k])}/admin/crash answered ${res.status} ${res.error || ''}`);
  });

  // 3. Wait for each to answer again from a new process: a new pid (walab lab), or, in a
  // container where the pid is always the same, an uptime that went backwards.
  const back = {};
  while (Object.keys(back).length < BACKENDS.length && Date.now() - crashed < RESTART_TIMEOUT_S * 1000) {
    for (const b of BACKENDS) {
      if (back[b] !== undefined) continue;
      const s = stats(b);
      if (s && (s.pid !== before[b].pid || s.uptime_seconds < before[b].uptime_seconds)) back[b] = Date.now() - crashed;
    }
    sleep(0.02);
  }

  // 4. Read every acknowledged key back.
  for (const b of BACKENDS) {
    g[`${b}_acked`].add(acked[b].length);
    if (back[b] === undefined) {
      console.error(`${b} did not come back within ${RESTART_TIMEOUT_S} s: is something restarting it (walab lab, Compose)?`);
      g[`${b}_lost`].add(acked[b].length);
      g[`${b}_back`].add(0);
      continue;
    }
    g[`${b}_restart_ms`].add(back[b]);
    const res = http.get(`${baseUrl(b)}/kv?prefix=${encodeURIComponent(`durability-${run}-`)}`, { tags: { backend: b, name: 'GET /kv?prefix=' } });
    const data = res.status === 200 ? res.json('data') || {} : {};
    const n = acked[b].filter((key) => data[key] !== undefined && data[key].run === run).length;
    g[`${b}_back`].add(n);
    g[`${b}_lost`].add(acked[b].length - n);
  }
}

const PROMISE = {
  wal: 'every acknowledged write (fsynced, or in the OS page cache, before the reply)',
  memory: 'nothing',
  sled: "what its last flush covered (every 500 ms; SLED_FLUSH=always: every write)",
};

export function handleSummary(data) {
  const val = (name) => (data.metrics[name] ? data.metrics[name].values.value : NaN);
  let t = `\ndurability.js: ${KEYS} writes per store, then POST /admin/crash to all${WAIT_MS ? ` after ${WAIT_MS} ms` : ' at once'}\n\n`;
  t += `${pad('store', 8)} ${lpad('acked', 6)} ${lpad('back', 6)} ${lpad('lost', 6)} ${lpad('restart', 9)}   promise\n`;
  for (const b of BACKENDS) {
    const r = val(`durability_${b}_restart_ms`);
    t += `${pad(b, 8)} ${lpad(val(`durability_${b}_acked`), 6)} ${lpad(val(`durability_${b}_back`), 6)} ${lpad(val(`durability_${b}_lost`), 6)} ${lpad(Number.isFinite(r) ? `${r} ms` : '-', 9)}   ${PROMISE[b] || ''}\n`;
  }
  const crossed = Object.entries(data.metrics).filter(([, x]) => x.thresholds && Object.values(x.thresholds).some((th) => !th.ok)).map(([n]) => n);
  t += crossed.length ? `\nthresholds crossed: ${crossed.join(', ')}\n` : '\nall thresholds passed (the WAL lost nothing it acknowledged)\n';
  const out = { stdout: t };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 1);
  return out;
}
