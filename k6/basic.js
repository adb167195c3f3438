// basic.js: the original lab's k6 test. Every iteration writes a key to each store (memory =
// no WAL, wal, sled), reads it back and checks the value; the summary prints each store's
// write and read latency and what the WAL costs over memory.
//
//   k6 run k6/basic.js                          # against walab lab on 127.0.0.1:8001-8003
//   k6 run -e DURATION=10s -e VUS=4 k6/basic.js
//   docker compose run --rm lab25-k6 run /scripts/basic.js     # in the Compose stack
//
// Environment: VUS (10), DURATION (2m), BACKENDS (memory,wal,sled), and the base URLs
// (WAL_URL, MEMORY_URL or NOWAL_URL, SLED_URL, IN_COMPOSE: see lib.js).
import http from 'k6/http';
import { check } from 'k6';
import { Gauge, Rate, Trend } from 'k6/metrics';
import { baseUrl, JSON_HEADERS, adminHeaders, runId, pad, lpad } from './lib.js';

const BACKENDS = (__ENV.BACKENDS || 'memory,wal,sled').split(',').map((s) => s.trim()).filter(Boolean);
const LABEL = { memory: 'memory (no WAL)', wal: 'wal', sled: 'sled' };

const writeTrend = {};
const readTrend = {};
for (const b of BACKENDS) {
  writeTrend[b] = new Trend(`${b}_write_duration`, true);
  readTrend[b] = new Trend(`${b}_read_duration`, true);
}
const failed = new Rate('kv_failed');
const gcMean = new Gauge('wal_group_commit_mean');
const gcBatches = new Gauge('wal_group_commit_batches');
const gcMax = new Gauge('wal_group_commit_max');
const fsyncs = new Gauge('wal_fsync_count');

const thresholds = { kv_failed: ['rate<0.01'], checks: ['rate>0.99'] };
for (const b of BACKENDS) thresholds[`${b}_write_duration`] = ['p(99)<2000'];

const VUS = parseInt(__ENV.VUS || '10', 10);
const DURATION = __ENV.DURATION || '2m';

export const options = {
  scenarios: {
    basic: { executor: 'constant-vus', vus: VUS, duration: DURATION },
  },
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  for (const b of BACKENDS) {
    const res = http.get(`${baseUrl(b)}/health`);
    if (res.status !== 200) throw new Error(`${b} at ${baseUrl(b)} is not healthy (HTTP ${res.status} ${res.error || ''}); is the lab running?`);
  }
  return { run: runId() };
}

export default function (data) {
  const key = `basic-${data.run}-${__VU}-${__ITER}`;
  const value = { vu: __VU, iter: __ITER, note: 'written by k6/basic.js' };
  for (const b of BACKENDS) {
    const url = baseUrl(b);
    const w = http.post(`${url}/kv`, JSON.stringify({ key, value }), { headers: JSON_HEADERS, tags: { backend: b, name: 'POST /kv' } });
    writeTrend[b].add(w.timings.duration);
    const wrote = check(w, { [`${b}: write 200`]: (r) => r.status === 200 });
    failed.add(!wrote, { backend: b });
    const r = http.get(`${url}/kv/${encodeURIComponent(key)}`, { tags: { backend: b, name: 'GET /kv/{key}' } });
    readTrend[b].add(r.timings.duration);
    const read = check(r, {
      [`${b}: read back the value written`]: (res) => res.status === 200 && res.json('value.iter') === __ITER,
    });
    failed.add(!read, { backend: b });
  }
}

// Group commit at a glance: how many writes shared each fdatasync during the test.
export function teardown() {
  if (!BACKENDS.includes('wal')) return;
  const res = http.get(`${baseUrl('wal')}/admin/stats`, { headers: adminHeaders() });
  if (res.status !== 200) return;
  const s = res.json();
  if (s.group_commit_batches) {
    gcMean.add(s.group_commit_batches.mean);
    gcBatches.add(s.group_commit_batches.batches);
    gcMax.add(s.group_commit_batches.max);
  }
  if (s.fsync_count !== undefined) fsyncs.add(s.fsync_count);
}

export function handleSummary(data) {
  const m = data.metrics;
  const v = (name, stat) => (m[name] ? m[name].values[stat] : NaN);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const secs = data.state.testRunDurationMs / 1000;
  let t = `\nbasic.js: ${VUS} VUs for ${DURATION}; every iteration writes one key to each store and reads it back\n\n`;
  t += `${pad('store', 16)} ${lpad('writes', 8)} ${lpad('writes/s', 9)} ${lpad('write p50', 10)} ${lpad('p95', 8)} ${lpad('p99', 8)} ${lpad('read p50', 9)} ${lpad('p99', 8)}   (ms)\n`;
  for (const b of BACKENDS) {
    const n = m[`${b}_write_duration`] ? m[`${b}_write_duration`].values.count || 0 : 0;
    t += `${pad(LABEL[b] || b, 16)} ${lpad(n || 0, 8)} ${lpad(((n || 0) / secs).toFixed(0), 9)} ${lpad(f(v(`${b}_write_duration`, 'med')), 10)} ${lpad(f(v(`${b}_write_duration`, 'p(95)')), 8)} ${lpad(f(v(`${b}_write_duration`, 'p(99)')), 8)} ${lpad(f(v(`${b}_read_duration`, 'med')), 9)} ${lpad(f(v(`${b}_read_duration`, 'p(99)')), 8)}\n`;
  }
  if (BACKENDS.includes('wal') && BACKENDS.includes('memory')) {
    const wal = v('wal_write_duration', 'med');
    const mem = v('memory_write_duration', 'med');
    t += `\nWAL write overhead (p50): +${f(wal - mem)} ms over memory (${f(wal / mem)}x); `;
    t += `p99: +${f(v('wal_write_duration', 'p(99)') - v('memory_write_duration', 'p(99)'))} ms\n`;
    t += `That is the price of an fdatasync before every acknowledgement (FSYNC=always), shared by concurrent writers.\n`;
  }
  if (m.wal_group_commit_mean) {
    t += `WAL group commit: ${JSON.stringify({
      batches: m.wal_group_commit_batches.values.value,
      mean: Number(m.wal_group_commit_mean.values.value.toFixed(2)),
      max: m.wal_group_commit_max.values.value,
    })} (mean = writes per fdatasync since the server started)\n`;
  }
  const checks = m.checks ? m.checks.values : null;
  if (checks) t += `checks: ${checks.passes} passed, ${checks.fails} failed\n`;
  const crossed = Object.entries(m).filter(([, x]) => x.thresholds && Object.values(x.thresholds).some((th) => !th.ok)).map(([n]) => n);
  t += crossed.length ? `thresholds crossed: ${crossed.join(', ')}\n` : 'all thresholds passed\n';
  const out = { stdout: t };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 1);
  return out;
}
