// Shared helpers for the walab k6 scripts (basic.js, durability.js, compare.js).
//
// Base URLs come from the environment: WAL_URL, MEMORY_URL (or the seed's NOWAL_URL), SLED_URL
// (and ETCD_URL for the etcd anchor in compare.js). Without them the scripts talk to the
// Compose services when IN_COMPOSE is set (the lab25-k6 service sets it, and the URLs too):
// every store listens on 8000 in its container, so http://kv-wal:8000, kv-memory:8000,
// kv-sled:8000; otherwise to `walab lab`'s ports 8001-8003 on 127.0.0.1.

const inCompose = !!__ENV.IN_COMPOSE;

export const DEFAULT_URLS = inCompose
  ? { wal: 'http://kv-wal:8000', memory: 'http://kv-memory:8000', sled: 'http://kv-sled:8000', etcd: 'http://etcd:2379' }
  : { wal: 'http://127.0.0.1:8001', memory: 'http://127.0.0.1:8002', sled: 'http://127.0.0.1:8003', etcd: 'http://127.0.0.1:2379' };

export function baseUrl(backend) {
  let fromEnv = __ENV[`${backend.toUpperCase()}_URL`];
  if (!fromEnv && backend === 'memory') fromEnv = __ENV.NOWAL_URL;
  return (fromEnv || DEFAULT_URLS[backend]).replace(/\/+$/, '');
}

export const JSON_HEADERS = { 'Content-Type': 'application/json' };

// /admin/* needs a bearer token when the servers run with ADMIN_TOKEN.
export function adminHeaders() {
  const h = { 'Content-Type': 'application/json' };
  if (__ENV.ADMIN_TOKEN) h.Authorization = `Bearer ${__ENV.ADMIN_TOKEN}`;
  return h;
}

// A value whose JSON text is `bytes` long (roughly), e.g. ~100 bytes by default.
export function valueOfSize(bytes) {
  return 'v'.repeat(Math.max(1, bytes - 2));
}

// A per-run prefix, so keys from one run never collide with an earlier one's.
export function runId() {
  return __ENV.RUN_ID || `${Date.now().toString(36)}`;
}

export function pct(trend, p) {
  if (!trend) return NaN;
  const key = p === 50 ? 'med' : `p(${p})`;
  return trend.values[key];
}

export function fmtMs(v) {
  return Number.isFinite(v) ? `${v.toFixed(2)} ms` : '-';
}

export function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function lpad(s, n) {
  s = String(s);
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}
