// Shared helpers for the walab k6 scripts (basic.js, durability.js, compare.js).
//
// Base URLs come from the environment: WAL_URL, MEMORY_URL (or the seed's NOWAL_URL), SLED_URL,
// ETCD_URL (walab's etcd backend), REDB_URL and, for compare.js's etcd-direct, ETCD_DIRECT_URL (an etcd
// member's client URL: etcd itself, no walab). A backend's variable is its name in capitals,
// `-` as `_`. Without them the scripts talk to the Compose services when IN_COMPOSE is set (the
// lab25-k6 service sets it, and the URLs too): every store listens on 8000 in its container, so
// http://kv-wal:8000, kv-memory:8000, kv-sled:8000, kv-etcd:8000 (etcd-1:2379 direct);
// otherwise to `walab lab`'s ports 8001-8004 on 127.0.0.1 (etcd direct: 2379).

const inCompose = !!__ENV.IN_COMPOSE;

export const DEFAULT_URLS = inCompose
  ? {
      wal: 'http://kv-wal:8000',
      memory: 'http://kv-memory:8000',
      sled: 'http://kv-sled:8000',
      etcd: 'http://kv-etcd:8000',
      redb: 'http://kv-redb:8000',
      'etcd-direct': 'http://etcd-1:2379',
    }
  : {
      wal: 'http://127.0.0.1:8001',
      memory: 'http://127.0.0.1:8002',
      sled: 'http://127.0.0.1:8003',
      etcd: 'http://127.0.0.1:8004',
      redb: 'http://127.0.0.1:8005',
      'etcd-direct': 'http://127.0.0.1:2379',
    };

export function baseUrl(backend) {
  let fromEnv = __ENV[`${backend.toUpperCase().replace(/-/g, '_')}_URL`];
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
