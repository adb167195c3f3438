// compare.js: the same load against every backend, one scenario per backend and operation,
// tagged by backend, run one after another (PARALLEL=1: all at once).
//
//   k6 run k6/compare.js                                  # writes, reads, mixed on 8001-8003
//   k6 run -e OPS=write -e VUS=64 -e DURATION=20s k6/compare.js
//   k6 run -e EXECUTOR=rate -e RATE=2000 k6/compare.js   # constant arrival rate
//   k6 run -e BACKENDS=etcd -e OPS=write k6/compare.js      # walab's etcd backend (lab --etcd, 8004)
//   k6 run -e BACKENDS=etcd-direct -e ETCD_DIRECT_URL=http://127.0.0.1:2379 -e OPS=write k6/compare.js
//
// Environment (all optional):
//   BACKENDS      wal,memory,sled; also etcd (walab's etcd backend: walab's HTTP API in front of
//                 an etcd cluster, `walab lab --etcd`'s 8004) and etcd-direct (etcd itself, no
//                 walab: its v3 JSON gateway, /v3/kv/put and /v3/kv/range). The backend tag is
//                 the name, so k6's series for walab's etcd backend carry backend="etcd", as the
//                 server's own metrics do, and etcd loaded directly backend="etcd-direct".
//   OPS           write,read,mixed (also: health, a GET /health to measure k6's own ceiling)
//   EXECUTOR      vus (constant-vus, default) or rate (constant-arrival-rate)
//   VUS           16      virtual users for EXECUTOR=vus; a list (1,16,64) runs one scenario each
//   READ_VUS      =VUS    the same for the read and mixed loads
//   RATE          1000    iterations/s for EXECUTOR=rate (a list too); PRE_VUS 64, MAX_VUS 256
//   DURATION      10s     per scenario; GAP 1 (s) between sequential scenarios
//   VALUE_BYTES   100     size of each written value (unique keys every write)
//   PRELOAD       1000    keys written in setup() for the read and mixed loads
//   MIXED_WRITES  20      percent of writes in the mixed load (the rest are reads)
//   P99_MS        1000    threshold on every scenario's p99; in every scenario, failed requests
//                         (k6's http_req_failed) must stay < 1% and checks pass > 99%
//   SUMMARY_JSON          write the results (and k6's own summary) as JSON to this path
//   WAL_URL MEMORY_URL SLED_URL ETCD_URL ETCD_DIRECT_URL, IN_COMPOSE: see lib.js
//
// Failures are k6's own: every answer goes through check() (status 200), and http_req_failed
// counts the requests that got no answer or a status outside 200-399; both have thresholds per
// scenario. Every request has a fixed `name` tag, which k6 also puts in its `url` tag, so no key
// becomes a label when this runs with `-o experimental-prometheus-rw` (k6/README.md); every
// scenario has the `backend` tag, which the Grafana dashboard's "client view (k6)" row groups by.
import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';
import { Counter, Trend } from 'k6/metrics';
import { baseUrl, JSON_HEADERS, valueOfSize, runId, pad, lpad } from './lib.js';

const BACKENDS = (__ENV.BACKENDS || 'wal,memory,sled').split(',').map((s) => s.trim()).filter(Boolean);
const OPS = (__ENV.OPS || 'write,read,mixed').split(',').map((s) => s.trim()).filter(Boolean);
const EXECUTOR = __ENV.EXECUTOR || 'vus';
const list = (v) => String(v).split(',').map((x) => parseInt(x, 10)).filter((x) => x > 0);
// Load levels: one scenario per level, e.g. VUS=1,16,64 (READ_VUS for read and mixed, if set).
const VUS = list(__ENV.VUS || '16');
const READ_VUS = __ENV.READ_VUS ? list(__ENV.READ_VUS) : VUS;
const RATE = list(__ENV.RATE || '1000');
const DURATION = __ENV.DURATION || '10s';
const GAP_S = parseFloat(__ENV.GAP || '1');
const VALUE = valueOfSize(parseInt(__ENV.VALUE_BYTES || '100', 10));
const PRELOAD = parseInt(__ENV.PRELOAD || '1000', 10);
const MIXED_WRITES = parseInt(__ENV.MIXED_WRITES || '20', 10);
const P99_MS = parseFloat(__ENV.P99_MS || '1000');
const PARALLEL = !!__ENV.PARALLEL;

for (const b of BACKENDS) {
  if (!['wal', 'memory', 'sled', 'etcd', 'etcd-direct'].includes(b)) throw new Error(`unknown backend '${b}' in BACKENDS`);
}
for (const op of OPS) {
  if (!['write', 'read', 'mixed', 'health'].includes(op)) throw new Error(`unknown operation '${op}' in OPS`);
}
if (!['vus', 'rate'].includes(EXECUTOR)) throw new Error(`EXECUTOR must be vus or rate, not '${EXECUTOR}'`);

function seconds(d) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`DURATION '${d}' is not like 10s, 500ms, 2m`);
  return parseFloat(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
}
const DURATION_S = seconds(DURATION);

const duration = new Trend('kv_duration', true); // ms, tagged backend and op (write/read)
const ops = new Counter('kv_ops');

// One scenario per (operation, backend, load level), one after another unless PARALLEL.
const scenarios = {};
const thresholds = {};
const plan = [];
let slot = 0;
for (const op of OPS) {
  const levels = EXECUTOR === 'rate' ? RATE : op === 'read' || op === 'mixed' ? READ_VUS : VUS;
  for (const backend of BACKENDS) {
    for (const level of levels) {
      const name = `${backend}_${op}_${level}`;
      const startTime = PARALLEL ? '0s' : `${Math.round(slot * (DURATION_S + GAP_S) * 1000)}ms`;
      slot++;
      const tags = { backend, scenario_op: op, level: String(level) };
      const common = { exec: op, startTime, tags, env: { BACKEND: backend }, gracefulStop: '5s' };
      scenarios[name] =
        EXECUTOR === 'vus'
          ? { executor: 'constant-vus', vus: level, duration: DURATION, ...common }
          : {
              executor: 'constant-arrival-rate',
              rate: level,
              timeUnit: '1s',
              duration: DURATION,
              preAllocatedVUs: parseInt(__ENV.PRE_VUS || '64', 10),
              maxVUs: parseInt(__ENV.MAX_VUS || '256', 10),
              ...common,
            };
      const kinds = op === 'mixed' ? ['write', 'read'] : [op];
      for (const kind of kinds) {
        const tag = `{backend:${backend},scenario_op:${op},level:${level},op:${kind}}`;
        thresholds[`kv_duration${tag}`] = [`p(99)<${P99_MS}`];
        thresholds[`kv_ops${tag}`] = ['count>0'];
        plan.push({ backend, op, level, kind, tag });
      }
      const scenarioTag = `{backend:${backend},scenario_op:${op},level:${level}}`;
      thresholds[`http_req_failed${scenarioTag}`] = ['rate<0.01'];
      thresholds[`checks${scenarioTag}`] = ['rate>0.99'];
    }
  }
}

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
  discardResponseBodies: true,
  setupTimeout: '120s',
};

function record(res, backend, kind) {
  duration.add(res.timings.duration, { op: kind });
  ops.add(1, { op: kind });
  check(res, { [`${kind}: status 200`]: (r) => r.status === 200 }, { op: kind });
}

function put(backend, url, key) {
  if (backend === 'etcd-direct') {
    return http.post(
      `${url}/v3/kv/put`,
      JSON.stringify({ key: encoding.b64encode(key), value: encoding.b64encode(VALUE) }),
      { headers: JSON_HEADERS, tags: { name: 'put' } },
    );
  }
  return http.post(`${url}/kv`, JSON.stringify({ key, value: VALUE }), { headers: JSON_HEADERS, tags: { name: 'POST /kv' } });
}

function get(backend, url, key) {
  if (backend === 'etcd-direct') {
    return http.post(`${url}/v3/kv/range`, JSON.stringify({ key: encoding.b64encode(key) }), {
      headers: JSON_HEADERS,
      tags: { name: 'range' },
    });
  }
  return http.get(`${url}/kv/${encodeURIComponent(key)}`, { tags: { name: 'GET /kv/{key}' } });
}

export function setup() {
  const run = runId();
  if (OPS.includes('read') || OPS.includes('mixed')) {
    for (const backend of BACKENDS) {
      const url = baseUrl(backend);
      for (let i = 0; i < PRELOAD; i += 50) {
        const batch = [];
        for (let j = i; j < Math.min(PRELOAD, i + 50); j++) {
          const key = `${run}-pre-${j}`;
          batch.push(
            backend === 'etcd-direct'
              ? ['POST', `${url}/v3/kv/put`, JSON.stringify({ key: encoding.b64encode(key), value: encoding.b64encode(VALUE) }), { headers: JSON_HEADERS }]
              : ['POST', `${url}/kv`, JSON.stringify({ key, value: VALUE }), { headers: JSON_HEADERS }],
          );
        }
        for (const res of http.batch(batch)) {
          if (res.status !== 200) throw new Error(`preloading ${backend} (${url}) failed: HTTP ${res.status} ${res.error || ''}`);
        }
      }
    }
  }
  return { run };
}

function writeOnce(backend, data) {
  const key = `${data.run}-${backend}-${__VU}-${__ITER}`;
  record(put(backend, baseUrl(backend), key), backend, 'write');
}

function readOnce(backend, data) {
  const key = `${data.run}-pre-${Math.floor(Math.random() * PRELOAD)}`;
  record(get(backend, baseUrl(backend), key), backend, 'read');
}

export function write(data) {
  writeOnce(__ENV.BACKEND, data);
}

export function read(data) {
  readOnce(__ENV.BACKEND, data);
}

export function mixed(data) {
  if (Math.random() * 100 < MIXED_WRITES) writeOnce(__ENV.BACKEND, data);
  else readOnce(__ENV.BACKEND, data);
}

export function health() {
  const backend = __ENV.BACKEND;
  record(http.get(`${baseUrl(backend)}/health`, { tags: { name: 'GET /health' } }), backend, 'health');
}

// One row per scenario and kind: requests/s over the scenario's duration, latency.
function rows(data) {
  return plan.map(({ backend, op, level, kind, tag }) => {
    const d = data.metrics[`kv_duration${tag}`];
    const c = data.metrics[`kv_ops${tag}`];
    const f = data.metrics[`http_req_failed{backend:${backend},scenario_op:${op},level:${level}}`];
    const count = c ? c.values.count : 0;
    return {
      backend,
      scenario: op,
      op: kind,
      url: baseUrl(backend),
      executor: EXECUTOR === 'vus' ? 'constant-vus' : 'constant-arrival-rate',
      vus: EXECUTOR === 'vus' ? level : null,
      target_rate: EXECUTOR === 'rate' ? level : null,
      duration_s: DURATION_S,
      requests: count,
      rps: count / DURATION_S,
      failed_rate: f ? f.values.rate : null,
      p50_ms: d ? d.values.med : null,
      p95_ms: d ? d.values['p(95)'] : null,
      p99_ms: d ? d.values['p(99)'] : null,
      max_ms: d ? d.values.max : null,
    };
  });
}

export function handleSummary(data) {
  const table = rows(data);
  const dropped = data.metrics.dropped_iterations ? data.metrics.dropped_iterations.values.count : 0;
  const failedThresholds = Object.entries(data.metrics)
    .filter(([, m]) => m.thresholds && Object.values(m.thresholds).some((t) => !t.ok))
    .map(([name]) => name);
  const f = (v) => (v === null || v === undefined ? '-' : v.toFixed(2));
  const load = EXECUTOR === 'vus' ? 'constant-vus' : 'constant-arrival-rate';
  let text = `\ncompare.js: ${load}, ${DURATION} per scenario, ${PARALLEL ? 'in parallel' : 'one after another'}\n\n`;
  text += `${pad('backend', 11)} ${pad('scenario', 9)} ${pad('op', 6)} ${lpad(EXECUTOR === 'vus' ? 'VUs' : 'rate/s', 6)} ${lpad('req/s', 9)} ${lpad('p50 ms', 8)} ${lpad('p95 ms', 8)} ${lpad('p99 ms', 8)} ${lpad('failed', 7)}\n`;
  for (const r of table) {
    text += `${pad(r.backend, 11)} ${pad(r.scenario, 9)} ${pad(r.op, 6)} ${lpad(r.vus || r.target_rate, 6)} ${lpad(r.rps.toFixed(0), 9)} ${lpad(f(r.p50_ms), 8)} ${lpad(f(r.p95_ms), 8)} ${lpad(f(r.p99_ms), 8)} ${lpad(r.failed_rate === null ? '-' : (100 * r.failed_rate).toFixed(1) + '%', 7)}\n`;
  }
  if (dropped) text += `\n${dropped} iterations dropped: the arrival rate needed more VUs than MAX_VUS, or the servers were too slow\n`;
  text += failedThresholds.length ? `\nthresholds crossed: ${failedThresholds.join(', ')}\n` : '\nall thresholds passed\n';
  const out = { stdout: text };
  if (__ENV.SUMMARY_JSON) {
    out[__ENV.SUMMARY_JSON] = JSON.stringify(
      { tool: 'k6', executor: EXECUTOR, rows: table, dropped_iterations: dropped, thresholds_failed: failedThresholds, k6: data },
      null,
      1,
    );
  }
  return out;
}
