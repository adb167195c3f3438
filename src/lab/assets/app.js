// walab lab's page. Plain JavaScript, no libraries: it polls each server through the lab
// (/api/<store>/...), draws its own charts on canvas, and runs the runbook's actions. Its
// columns are the backends /lab.json lists, each with the buttons its "supports" allows.
// With ADMIN_TOKEN set on the lab, the token typed into the page goes with every request.
//
// Everything shown comes from the public API: /health, /admin/stats, /admin/wal and
// /metrics. Latency quantiles are computed like PromQL's
// histogram_quantile(q, rate(walab_http_request_duration_seconds_bucket[10s])): the
// difference of the cumulative bucket counts between two scrapes, then linear
// interpolation inside the bucket that holds the quantile.
'use strict';

// The few words that are one backend's own story: how the durability demo explains what
// came back, and a store's own names and hints. Its title and what it supports come from
// /lab.json (the catalog); everything else is read from /admin/stats.
const KNOWN = {
  wal: {
    storeName: 'WAL',
    explain: explainWal,
    logHint: "The WAL store's log records since its last checkpoint, read back from the files on disk "
      + '(GET /admin/wal), newest first. A checkpoint writes a snapshot of every key and deletes the '
      + 'log it covers, so the table empties.',
  },
  memory: {
    note: 'No checkpoint or flush: nothing of it is on disk.',
    explain: explainMemory,
    recovery: (st) => `Nothing to recover: it starts empty after every restart (it came back with ${plural(st.item_count, 'key')}).`,
  },
  sled: {
    checkpointLabel: 'Flush',
    checkpointDone: "flushed to disk (sled's checkpoint is a flush).",
    explain: explainSled,
  },
  etcd: {
    explain: explainEtcd,
    logHint: "etcd's own history of the lab's keys (GET /admin/wal), newest first: the revisions it has not "
      + 'compacted away (a checkpoint compacts it). Sequence is the revision; etcd records no time.',
    recovery: (st) => `Its data lives in the etcd cluster, not in this process: it came back with ${plural(st.item_count, 'key')}.`,
  },
};
const NOTHING_SUPPORTED = { log: false, checkpoint: false, power_loss: false, crash_modes: ['process'] };
// Crash modes other than a process crash and a power loss, as buttons: label and what it does.
const CRASH_MODES = {
  leader: { label: 'Kill the leader member', says: 'SIGKILL the cluster member that leads now; the lab restarts it' },
  'all-members': { label: 'Kill all members', says: 'SIGKILL every cluster member at once; the lab restarts them' },
};
const COUNT_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const TOKEN_KEY = 'walab-lab.admin-token';
const SENDABLE = /^[\x20-\x7e]*$/;
const STATS_EVERY_MS = 1000;
const METRICS_EVERY_MS = 2000;
const WAL_EVERY_MS = 1000;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const RATE_WINDOW_MS = 10 * 1000;
const WAL_ROWS = 50;
const BACK_PATIENCE_MS = 30 * 1000;
const HISTOGRAM = 'walab_http_request_duration_seconds';
const RESTARTS = 'walab_process_restarts_total';
// Which requests count as writes and reads, by method and matched route.
const WRITES = [['POST', '/kv'], ['DELETE', '/kv/{*key}']];
const READS = [['GET', '/kv/{*key}'], ['GET', '/kv']];

// The backends the lab runs, in its order, from /lab.json (see describe()).
const BACKENDS = [];
const info = {};
const stores = {};
let logBackend = null;
let busy = false;

// One /lab.json entry (the catalog's title and what the store supports), with the page's own
// words for the stores it knows. A power loss is one of the crash modes, or says so itself
// (`power_loss`).
function describe(entry) {
  const b = entry.backend;
  const known = KNOWN[b] || {};
  const given = entry.supports || {};
  const supports = { ...NOTHING_SUPPORTED, ...given };
  const modes = Array.isArray(supports.crash_modes) && supports.crash_modes.length ? supports.crash_modes : ['process'];
  supports.crash_modes = modes;
  if (given.power_loss === undefined && Array.isArray(given.crash_modes)) {
    supports.power_loss = given.crash_modes.includes('power-loss');
  }
  return {
    ...known,
    backend: b,
    port: entry.port === undefined ? null : entry.port,
    url: entry.url || null,
    title: entry.title || `The ${b} store`,
    supports,
  };
}

function supports(b, what) {
  return Boolean(info[b] && info[b].supports[what]);
}

function countWord(n) {
  return COUNT_WORDS[n] || String(n);
}

// ---------------------------------------------------------------------------------------
// The admin token: typed by the person, kept in this tab's sessionStorage only (never
// localStorage, never the URL), sent as a bearer token with every request to a store.

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function keepToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // No session storage (a locked-down browser): the token lives in the field only.
  }
}

let token = '';
// What the page says of the token: 'refused' (a 401), 'accepted' (an admin call answered),
// 'typed' (changed, not tried yet) or 'unknown' (nothing asked yet).
let tokenState = 'unknown';

function sayToken(state) {
  if (state === tokenState) return;
  tokenState = state;
  const say = document.getElementById('token-say');
  const field = document.getElementById('token');
  say.dataset.state = state;
  field.setAttribute('aria-invalid', String(state === 'refused' || state === 'unsendable'));
  if (state === 'unsendable') {
    say.textContent = 'This token cannot go in an HTTP header: an ADMIN_TOKEN holds printable ASCII only. Check what you pasted.';
    say.hidden = false;
  } else if (state === 'refused') {
    say.textContent = token
      ? 'The stores refused this token (401): paste the ADMIN_TOKEN the lab was started with, exactly.'
      : 'This lab needs its ADMIN_TOKEN: paste it here. Until then crash, checkpoint, clear and the stores\u2019 stats answer 401.';
    say.hidden = false;
  } else if (state === 'accepted' && token) {
    say.textContent = 'Token accepted: the stores answer the admin calls.';
    say.hidden = false;
  } else {
    say.textContent = '';
    say.hidden = true;
  }
}

function setupToken() {
  const field = document.getElementById('token');
  token = readToken();
  field.value = token;
  if (!SENDABLE.test(token)) sayToken('unsendable');
  let soon = null;
  field.addEventListener('input', () => {
    token = field.value.trim();
    keepToken(token);
    sayToken(SENDABLE.test(token) ? 'typed' : 'unsendable');
    // Ask the stores once typing pauses, rather than at every key.
    clearTimeout(soon);
    soon = setTimeout(() => {
      pollStats();
      pollWal();
    }, 300);
  });
}

// ---------------------------------------------------------------------------------------
// Talking to the servers through the lab

async function api(backend, method, path, body) {
  const init = { method, headers: {}, cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const sent = token;
  // fetch throws on a header value it cannot send; the server reads printable ASCII only.
  if (sent && SENDABLE.test(sent)) init.headers.Authorization = `Bearer ${sent}`;
  let response;
  try {
    response = await fetch(`/api/${backend}${path}`, init);
  } catch (e) {
    labReachable(false);
    return { ok: false, status: 0, json: { error: 'lab_unreachable', detail: String(e) }, text: '' };
  }
  labReachable(true);
  // What the stores think of the token, unless it changed while this request was out.
  if (sent === token && tokenState !== 'unsendable') {
    if (response.status === 401) sayToken('refused');
    else if (response.ok && path.startsWith('/admin/')) sayToken('accepted');
  }
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) {
    json = null;
  }
  return { ok: response.ok, status: response.status, json, text };
}

function labReachable(yes) {
  const banner = document.getElementById('lab-down');
  if (yes) {
    banner.hidden = true;
  } else if (banner.hidden) {
    banner.textContent = 'The lab is not answering. Is walab lab still running? This page retries every second.';
    banner.hidden = false;
  }
}

function problem(reply) {
  if (reply.status === 401) return '401: this lab needs its ADMIN_TOKEN: paste it in the token field above';
  if (reply.json && reply.json.detail) return `${reply.status} ${reply.json.error}: ${reply.json.detail}`;
  return `HTTP ${reply.status}`;
}

// ---------------------------------------------------------------------------------------
// Small formatting helpers

function el(root, field) {
  return root.querySelector(`[data-field="${field}"]`);
}

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
  const m = seconds * 1000;
  if (m < 0.1) return `${m.toFixed(3)} ms`;
  if (m < 10) return `${m.toFixed(2)} ms`;
  if (m < 100) return `${m.toFixed(1)} ms`;
  return `${Math.round(m)} ms`;
}

function duration(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function rate(perSecond) {
  if (perSecond === null || perSecond === undefined) return '–';
  if (perSecond < 10) return perSecond.toFixed(1);
  return Math.round(perSecond).toLocaleString('en');
}

function plural(n, one, many) {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many || one + 's'}`;
}

// ---------------------------------------------------------------------------------------
// Status line and history

function announce(message) {
  setText(document.getElementById('status'), message);
  addHistory(message);
}

function addHistory(message) {
  const item = document.createElement('li');
  const time = new Date().toLocaleTimeString('en-GB');
  item.textContent = `${time}  ${message}`;
  const history = document.getElementById('history');
  history.prepend(item);
  while (history.children.length > 30) history.lastElementChild.remove();
}

function setBusy(yes) {
  busy = yes;
  for (const button of document.querySelectorAll('button')) button.disabled = yes;
  document.querySelector('.actions').setAttribute('aria-busy', String(yes));
}

function readN() {
  const input = document.getElementById('n');
  let n = parseInt(input.value, 10);
  if (!Number.isFinite(n) || n < 1) n = 10;
  n = Math.min(n, 1000);
  input.value = String(n);
  return n;
}

// ---------------------------------------------------------------------------------------
// The columns, one per backend the lab runs

function buildColumns() {
  const template = document.getElementById('store-template');
  const columns = document.getElementById('columns');
  columns.dataset.count = String(BACKENDS.length);
  for (const b of BACKENDS) {
    const d = info[b];
    const node = template.content.firstElementChild.cloneNode(true);
    node.id = `store-${b}`;
    node.dataset.backend = b;
    node.setAttribute('aria-labelledby', `store-${b}-h`);
    node.querySelector('h3').id = `store-${b}-h`;
    node.querySelector('.name').textContent = b;
    node.querySelector('.port').textContent = d.port === null ? '' : `:${d.port}`;
    node.querySelector('.what').textContent = d.title;
    const buttons = node.querySelector('.buttons');
    buttons.setAttribute('aria-label', `Actions on the ${b} store`);
    for (const [action, label, danger, title] of storeButtons(d)) {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.action = action;
      if (danger) button.className = 'danger';
      if (title) button.title = title;
      // The visible words, then which store, for a screen reader's list of buttons.
      const [before, after] = label.split('%s');
      const which = document.createElement('span');
      which.className = 'visually-hidden the-store';
      which.textContent = ` the ${b} store`;
      button.append(before, which);
      if (after) button.append(after);
      button.addEventListener('click', () => storeAction(b, action));
      buttons.append(button);
    }
    if (d.note) {
      const note = document.createElement('p');
      note.className = 'hint';
      note.textContent = d.note;
      buttons.after(note);
    }
    columns.append(node);
    stores[b].el = node;
    stores[b].port = d.port;
  }
}

// The buttons of one column: [action, label ('%s' is where the store's name goes for a
// screen reader), danger, tooltip]. A crash mode other than process and power-loss is its
// own action, "crash:<mode>".
function storeButtons(d) {
  const list = [['crash', 'Crash%s (process)', true, 'POST /admin/crash: SIGKILL the server; the lab restarts it']];
  if (d.supports.power_loss) {
    list.push(['power-loss', 'Power loss%s', true,
      'POST /admin/crash?mode=power-loss: cut the log back to what was fsynced, then SIGKILL']);
  }
  for (const mode of d.supports.crash_modes) {
    if (mode === 'process' || mode === 'power-loss') continue;
    const known = CRASH_MODES[mode];
    list.push([`crash:${mode}`, known ? `${known.label}%s` : `Crash%s (${mode})`, true,
      `POST /admin/crash?mode=${mode}${known ? `: ${known.says}` : ''}`]);
  }
  if (d.supports.checkpoint) list.push(['checkpoint', `${d.checkpointLabel || 'Checkpoint'}%s`, false, 'POST /admin/checkpoint']);
  list.push(['clear', 'Clear%s', false, 'POST /admin/clear: delete every key']);
  return list;
}

// The words that say how many stores the lab runs ("three" today).
function sayCount() {
  const word = countWord(BACKENDS.length);
  for (const span of document.querySelectorAll('.count')) setText(span, word);
  document.title = `walab lab: ${word} stores side by side`;
  const powerLoss = BACKENDS.filter((b) => supports(b, 'power_loss'));
  const choice = document.getElementById('power-loss-choice');
  choice.hidden = powerLoss.length === 0;
  if (powerLoss.length) {
    const others = powerLoss.length === BACKENDS.length ? '' : ' (the others crash as a process)';
    setText(document.getElementById('power-loss-label'), `Crash ${powerLossNames()} with a power loss${others}`);
  }
}

function storeName(b) {
  return info[b].storeName || b;
}

// "the WAL", "the WAL and the etcd store": the stores that can simulate a power loss.
function powerLossNames() {
  return BACKENDS.filter((b) => supports(b, 'power_loss'))
    .map((b) => (info[b].storeName ? `the ${info[b].storeName}` : `the ${b} store`)).join(' and ');
}

// What the demo and "Crash all" do to the stores, in words.
function crashWords(powerLoss) {
  const all = `all ${countWord(BACKENDS.length)}`;
  const some = BACKENDS.filter((b) => supports(b, 'power_loss')).length;
  if (!powerLoss || some === 0) return `a process crash of ${all}`;
  if (some === BACKENDS.length) return `a power loss on ${all}`;
  return `a power loss on ${powerLossNames()} and a process crash of the others`;
}

function buildDemoRows() {
  const body = document.getElementById('demo-rows');
  for (const b of BACKENDS) {
    const row = document.createElement('tr');
    row.id = `demo-${b}`;
    row.dataset.backend = b;
    const name = document.createElement('th');
    name.scope = 'row';
    name.textContent = b;
    row.append(name);
    for (const cls of ['acked', 'back', 'why']) {
      const td = document.createElement('td');
      td.className = cls;
      td.textContent = cls === 'why' ? '' : '…';
      row.append(td);
    }
    body.append(row);
  }
}

// Servers the lab gave up starting (/lab.json's cannot_start), asked again while one is down.
let cannotStart = {};

async function refreshCannotStart() {
  try {
    const reply = await fetch('/lab.json', { cache: 'no-store' });
    if (!reply.ok) return;
    const lab = await reply.json();
    const found = {};
    for (const e of lab.backends || []) {
      if (e && e.cannot_start) found[e.backend] = e.cannot_start;
    }
    cannotStart = found;
  } catch (_) {
    // the lab is not answering: the banner says so
  }
}

function renderHealth(b) {
  const s = stores[b];
  const health = s.el.querySelector('.health');
  let state, text;
  if (s.health !== 200 && cannotStart[b]) {
    state = 'down';
    text = `Cannot start: ${cannotStart[b].reason} (${cannotStart[b].hint})`;
  } else if (s.health === 200) {
    state = 'up';
    text = 'Up: answering';
  } else if (s.health === 503) {
    state = 'recovering';
    text = 'Recovering: replaying its log';
  } else if (s.health === null) {
    state = 'unknown';
    text = 'Connecting…';
  } else {
    state = 'down';
    text = 'Down: the lab is restarting it';
  }
  health.dataset.state = state;
  setText(health.querySelector('.health-text'), text);
}

function recoveryText(b, st) {
  if (info[b].recovery) return info[b].recovery(st);
  const r = st.last_recovery;
  if (!r) {
    return `${b} recovers from its own files and does not report how; it came back with ${plural(st.item_count, 'key')}.`;
  }
  const parts = [];
  parts.push(`Replayed ${plural(r.entries_replayed, 'log record')}`);
  if (r.snapshot) {
    parts.push(`after loading the snapshot at #${r.snapshot.sequence} (${plural(r.snapshot.keys, 'key')})`);
  } else {
    parts.push('with no snapshot');
  }
  let text = `${parts.join(' ')}, in ${r.duration_ms.toFixed(1)} ms. `;
  if (r.torn_bytes_discarded > 0) {
    const where = r.torn_at ? ` at byte ${r.torn_at.offset} of ${r.torn_at.file.split('/').pop()}` : '';
    text += `Cut off a torn tail of ${plural(r.torn_bytes_discarded, 'byte')}${where}: a write that was never acknowledged.`;
  } else {
    text += 'Torn tail: none.';
  }
  return text;
}

function renderStats(b) {
  const s = stores[b];
  const st = s.stats;
  const root = s.el;
  if (!st) return;
  setText(el(root, 'promise'), st.durability ? st.durability.summary : '–');
  setText(el(root, 'items'), st.item_count.toLocaleString('en'));
  setText(el(root, 'pid'), `${st.pid}, ${duration(st.uptime_seconds)}`);
  // Each fact is shown when the stats carry it (and not the one it stands in for),
  // whichever backend they come from.
  for (const row of root.querySelectorAll('[data-when]')) {
    row.hidden = !(row.dataset.when in st) || (row.dataset.unless !== undefined && row.dataset.unless in st);
  }
  if ('wal_size_bytes' in st) {
    setText(el(root, 'wal-size'), `${bytes(st.wal_size_bytes)} in ${plural(st.wal_segments, 'segment')}`);
  }
  if ('entries_since_checkpoint' in st) {
    setText(el(root, 'since-checkpoint'),
      `${st.entries_since_checkpoint} (checkpoint every ${st.checkpoint_threshold || 'never'}; ${st.checkpoints} since start)`);
  }
  if ('fsync_policy' in st) {
    const gc = st.group_commit_batches;
    const mean = gc && gc.batches ? `, ${gc.mean.toFixed(1)} writes per fsync` : '';
    setText(el(root, 'fsync'), `${st.fsync_policy}: ${plural(st.fsync_count, 'fsync')}${mean}`);
  }
  if ('size_on_disk_bytes' in st) setText(el(root, 'sled-size'), bytes(st.size_on_disk_bytes));
  if ('sled_flush' in st) {
    setText(el(root, 'sled-flush'), st.sled_flush === 'always'
      ? 'before every acknowledgement (SLED_FLUSH=always)'
      : 'in the background, every 500 ms');
  }
  if (st.etcd) renderCluster(root, st.etcd);
  setText(el(root, 'recovery'), recoveryText(b, st));
}

// A replicated store's members: who leads, the Raft term and index, each member's health.
function renderCluster(root, c) {
  // The pid and restarts are those of the walab server in front of the cluster: the lab
  // restarts a killed member too, and those restarts are not counted there.
  setText(el(root, 'restarts').previousElementSibling, 'Server restarts by the lab');
  setText(el(root, 'pid').previousElementSibling, 'Server process id, up for');
  const members = Array.isArray(c.members) ? c.members : [];
  const healthy = members.filter((m) => m.healthy).length;
  // raft_index is the leader's: without a leader there is none to show (the stats say 0).
  const raft = [c.raft_term === undefined ? null : `term ${c.raft_term}`,
    c.raft_index === undefined || !c.leader ? null : `index ${c.raft_index}`].filter(Boolean).join(', ');
  setText(el(root, 'etcd-leader'), `${c.leader || 'none: an election is under way'}${raft ? ` (${raft})` : ''}`);
  const list = el(root, 'etcd-members');
  list.setAttribute('aria-label', `${healthy} of ${members.length} members healthy`);
  const key = JSON.stringify(members.map((m) => [m.name, m.healthy, m.is_leader, m.error]));
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...members.map((m) => {
    const item = document.createElement('li');
    item.dataset.state = !m.healthy ? 'down' : m.is_leader ? 'leader' : 'up';
    item.dataset.member = m.name;
    item.title = [m.client_url, m.error].filter(Boolean).join(': ');
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const health = m.healthy ? (m.is_leader ? 'leader' : 'healthy') : 'down';
    item.append(dot, ` ${m.name}: ${health}`);
    return item;
  }));
}

// The lab's restart count of a store, as last seen (from /admin/stats or from the
// walab_process_restarts_total of /metrics, whichever saw it first). A count that went up
// is a restart: said in the status line, or only in the history while the page is busy
// with an action of its own (which says what it did).
function noteRestarts(b, n, via, quiet) {
  if (n === null || n === undefined || !Number.isFinite(n)) return;
  const s = stores[b];
  const before = s.restarts;
  if (before !== null && n <= before) return;
  s.restarts = n;
  setText(el(s.el, 'restarts'), String(n));
  s.el.dataset.restarts = String(n);
  if (before === null) return;
  const message = `${b}: the lab restarted it (restart ${n}; ${via} went from ${before} to ${n}).`;
  if (quiet || busy) addHistory(message);
  else announce(message);
}

async function pollStats() {
  if (BACKENDS.some((b) => stores[b].health !== 200 && stores[b].health !== null)) {
    await refreshCannotStart();
  }
  await Promise.all(BACKENDS.map(async (b) => {
    const health = await api(b, 'GET', '/health');
    stores[b].health = health.status === 0 ? null : health.status;
    if (health.status === 200) {
      const stats = await api(b, 'GET', '/admin/stats');
      if (stats.ok && stats.json) {
        stores[b].stats = stats.json;
        renderStats(b);
        noteRestarts(b, stats.json.restarts, 'its restarts in /admin/stats');
      } else if (stats.status === 401 && !stores[b].stats) {
        setText(el(stores[b].el, 'promise'), 'not shown: /admin/stats needs the lab\u2019s ADMIN_TOKEN');
      }
    }
    renderHealth(b);
  }));
}

// ---------------------------------------------------------------------------------------
// Metrics: parse the histogram, keep scrapes, compute quantiles and rates

function parseLabels(text) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text)) !== null) labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
  return labels;
}

// Sum the histogram's cumulative buckets over the series whose method and route match.
// Returns {les: [upper bounds, ascending, last Infinity], cum: [counts]}.
function histogram(text, wanted) {
  const sums = new Map();
  const prefix = `${HISTOGRAM}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.lastIndexOf('}');
    const labels = parseLabels(line.slice(prefix.length, close));
    if (!wanted.some(([method, route]) => labels.method === method && labels.route === route)) continue;
    const value = parseFloat(line.slice(close + 1).trim().split(/\s+/)[0]);
    const le = labels.le === '+Inf' ? Infinity : parseFloat(labels.le);
    if (!isFinite(value) || Number.isNaN(le)) continue;
    sums.set(le, (sums.get(le) || 0) + value);
  }
  const les = [...sums.keys()].sort((a, b) => a - b);
  return { les, cum: les.map((le) => sums.get(le)) };
}

function zero(h) {
  return { les: h.les, cum: h.cum.map(() => 0) };
}

function delta(now, then) {
  if (!then || now.les.length !== then.les.length) return { les: now.les, cum: now.cum.slice() };
  return { les: now.les, cum: now.cum.map((c, i) => c - then.cum[i]) };
}

// histogram_quantile: the bucket where the q-th observation falls, interpolated linearly.
function quantile(q, h) {
  const n = h.cum.length;
  if (n === 0) return null;
  const total = h.cum[n - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let i = h.cum.findIndex((c) => c >= rank);
  if (i < 0) i = n - 1;
  if (h.les[i] === Infinity) return n >= 2 ? h.les[n - 2] : null;
  const lower = i === 0 ? 0 : h.les[i - 1];
  const below = i === 0 ? 0 : h.cum[i - 1];
  const inside = h.cum[i] - below;
  if (inside <= 0) return h.les[i];
  return lower + (h.les[i] - lower) * ((rank - below) / inside);
}

function total(h) {
  return h.cum.length ? h.cum[h.cum.length - 1] : 0;
}

// The lab's restart count of the process that answered, from the same scrape (so it can
// never be out of step with the histogram), or null if the metric is missing.
// The counter is `walab_process_restarts_total{backend="wal"} 2` (a counter's name ends in
// _total; the registry labels every series with its backend).
const RESTARTS_LINE = new RegExp(`^${RESTARTS}(?:\\{[^}]*\\})?[ \\t]+(\\S+)`, 'm');

function restartsIn(text) {
  const m = RESTARTS_LINE.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isFinite(n) ? n : null;
}

// A scrape is comparable with an earlier one if the process did not restart in between
// (the same restart count, and no counter went down).
function sameProcess(a, b) {
  if (a.restarts !== b.restarts) return false;
  return total(a.write) >= total(b.write) && total(a.read) >= total(b.read);
}

async function pollMetrics() {
  await Promise.all(BACKENDS.map(async (b) => {
    const s = stores[b];
    const reply = await api(b, 'GET', '/metrics');
    if (!reply.ok) return;
    const sample = {
      t: Date.now(),
      restarts: restartsIn(reply.text),
      write: histogram(reply.text, WRITES),
      read: histogram(reply.text, READS),
    };
    noteRestarts(b, sample.restarts, RESTARTS);
    // The base: the oldest scrape in the rate window from the same process. If the process
    // restarted inside the window, its counters started at zero after the last scrape of
    // the old one (what PromQL's rate() assumes at a counter reset).
    let base = null;
    let newer = sample;
    for (let i = s.samples.length - 1; i >= 0; i--) {
      const older = s.samples[i];
      if (sample.t - older.t > RATE_WINDOW_MS) break;
      if (!sameProcess(newer, older)) {
        base = { t: older.t, write: zero(newer.write), read: zero(newer.read) };
        break;
      }
      base = older;
      newer = older;
    }
    s.samples.push(sample);
    while (s.samples.length && sample.t - s.samples[0].t > RATE_WINDOW_MS * 2) s.samples.shift();
    const point = { t: sample.t };
    if (base) {
      const seconds = (sample.t - base.t) / 1000;
      const w = delta(sample.write, base.write);
      const r = delta(sample.read, base.read);
      point.writeRate = total(w) / seconds;
      point.readRate = total(r) / seconds;
      point.writeP50 = quantile(0.5, w);
      point.writeP99 = quantile(0.99, w);
      point.readP50 = quantile(0.5, r);
      point.readP99 = quantile(0.99, r);
    }
    s.points.push(point);
    while (s.points.length && sample.t - s.points[0].t > CHART_WINDOW_MS) s.points.shift();
    renderCharts(b);
  }));
}

// ---------------------------------------------------------------------------------------
// Charts, drawn on canvas

const COLORS = { blue: '#1d4f91', red: '#a4262c', green: '#1b6e3a', grid: '#d5d9de', text: '#3d4349' };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(v)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (v <= step * power) return step * power;
  }
  return 10 * power;
}

function drawChart(canvas, series, format) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 110;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 58, right = 8, top = 8, bottom = 18;
  const plotW = width - left - right, plotH = height - top - bottom;
  const now = Date.now();
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v !== undefined && v > max) max = v;
  max = niceMax(max);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = COLORS.text;
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH * (1 - f);
    ctx.beginPath();
    ctx.moveTo(left, y + 0.5);
    ctx.lineTo(left + plotW, y + 0.5);
    ctx.stroke();
    ctx.fillText(f === 0 ? '0' : format(max * f), left - 6, y);
  }
  ctx.textBaseline = 'alphabetic';
  ctx.textAlign = 'left';
  ctx.fillText('5 min ago', left, height - 4);
  ctx.textAlign = 'right';
  ctx.fillText('now', left + plotW, height - 4);
  const x = (t) => left + plotW * (1 - (now - t) / CHART_WINDOW_MS);
  const y = (v) => top + plotH * (1 - v / max);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [5, 3] : []);
    ctx.beginPath();
    let drawing = false, lastX = 0, lastY = 0, run = 0;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) {
        if (run === 1) ctx.fillRect(lastX - 1.5, lastY - 1.5, 3, 3);
        drawing = false;
        run = 0;
        continue;
      }
      lastX = x(t);
      lastY = y(v);
      if (drawing) ctx.lineTo(lastX, lastY);
      else ctx.moveTo(lastX, lastY);
      drawing = true;
      run += 1;
    }
    ctx.stroke();
    if (run === 1) ctx.fillRect(lastX - 1.5, lastY - 1.5, 3, 3);
  }
  ctx.setLineDash([]);
}

function renderCharts(b) {
  const s = stores[b];
  const root = s.el;
  const pts = s.points;
  const col = (key) => pts.map((p) => [p.t, key in p ? p[key] : null]);
  const last = pts.length ? pts[pts.length - 1] : {};
  const latency = (kind, what) => {
    const p50 = last[`${kind}P50`], p99 = last[`${kind}P99`];
    const text = p50 === null || p50 === undefined
      ? `no ${what} in the last ${RATE_WINDOW_MS / 1000} s`
      : `last ${RATE_WINDOW_MS / 1000} s: p50 ${ms(p50)}, p99 ${ms(p99)}`;
    setText(el(root, `${kind}-now`), text);
    const canvas = root.querySelector(`canvas[data-chart="${kind}"]`);
    canvas.setAttribute('aria-label', `${b}: ${what === 'writes' ? 'write' : 'read'} latency over the last 5 minutes; ${text}`);
    drawChart(canvas, [
      { points: col(`${kind}P50`), color: COLORS.blue },
      { points: col(`${kind}P99`), color: COLORS.red, dashed: true },
    ], ms);
  };
  latency('write', 'writes');
  latency('read', 'reads');
  const rateText = last.writeRate === undefined
    ? 'waiting for a second scrape…'
    : `last ${RATE_WINDOW_MS / 1000} s: ${rate(last.writeRate)} writes/s, ${rate(last.readRate)} reads/s`;
  setText(el(root, 'rate-now'), rateText);
  const canvas = root.querySelector('canvas[data-chart="rate"]');
  canvas.setAttribute('aria-label', `${b}: requests per second over the last 5 minutes; ${rateText}`);
  drawChart(canvas, [
    { points: col('writeRate'), color: COLORS.blue },
    { points: col('readRate'), color: COLORS.green, dashed: true },
  ], (v) => `${rate(v)}/s`);
}

// ---------------------------------------------------------------------------------------
// The WAL viewer

let walSeen = 0;
let walShown = '';

// The viewer shows one backend's GET /admin/wal: the first that keeps a log, or the one
// picked when several do.
function buildLogViewer() {
  const withLog = BACKENDS.filter((b) => supports(b, 'log'));
  document.getElementById('log-viewer').hidden = withLog.length === 0;
  logBackend = withLog[0] || null;
  const choice = document.getElementById('log-choice');
  if (withLog.length < 2) return;
  for (const b of withLog) {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'log-backend';
    input.value = b;
    input.checked = b === logBackend;
    input.addEventListener('change', () => showLogOf(b));
    label.append(input, ` ${b}`);
    choice.append(label);
  }
  choice.hidden = false;
  showLogOf(logBackend);
}

function showLogOf(b) {
  logBackend = b;
  walSeen = 0;
  walShown = '';
  document.querySelector('#wal-table tbody').replaceChildren();
  setText(document.getElementById('log-hint'), info[b].logHint
    || `The ${b} store's GET /admin/wal, newest first: the history its backend keeps of the lab's keys.`);
  setText(document.getElementById('wal-summary'), `Waiting for the ${b} store…`);
  pollWal();
}

async function pollWal() {
  const b = logBackend;
  if (!b) return;
  const reply = await api(b, 'GET', `/admin/wal?limit=${WAL_ROWS}`);
  if (b !== logBackend) return;
  const summary = document.getElementById('wal-summary');
  if (!reply.ok || !reply.json) {
    setText(summary, reply.status === 502 || reply.status === 503
      ? `The ${storeName(b)} store is restarting; the table shows what it held before.`
      : reply.status === 401
        ? 'The log is behind the lab\u2019s ADMIN_TOKEN: paste it in the token field above.'
        : `Cannot read the log: ${problem(reply)}`);
    return;
  }
  const { entries, total: all } = reply.json;
  const shown = entries.length < all ? ` (the newest ${entries.length} shown)` : '';
  setText(summary, all === 0
    ? 'No records since the last checkpoint: the log is empty. Write some keys.'
    : `${plural(all, 'record')} since the last checkpoint${shown}.`);
  const key = entries.length ? `${all}:${entries[0].sequence}:${entries[entries.length - 1].sequence}` : `${all}`;
  if (key === walShown) return;
  walShown = key;
  const body = document.querySelector('#wal-table tbody');
  const rows = [];
  let newest = 0;
  for (const e of entries.slice().reverse()) {
    const tr = document.createElement('tr');
    if (walSeen && e.sequence > walSeen) tr.className = 'new';
    newest = Math.max(newest, e.sequence);
    const value = e.value === null || e.value === undefined ? '–' : JSON.stringify(e.value);
    const time = e.timestamp ? new Date(e.timestamp) : null;
    const cells = [
      String(e.sequence),
      e.operation,
      e.key === null || e.key === undefined ? '–' : e.key,
      value.length > 80 ? `${value.slice(0, 79)}…` : value,
      !time ? '–' : isNaN(time) ? e.timestamp : time.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(time.getMilliseconds()).padStart(3, '0'),
    ];
    for (const [i, text] of cells.entries()) {
      const td = document.createElement('td');
      td.textContent = text;
      if (i === 3 && value.length > 80) td.title = value;
      if (i === 4 && e.timestamp) td.title = e.timestamp;
      if (i === 1) td.className = `op op-${String(e.operation).toLowerCase()}`;
      tr.append(td);
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  walSeen = Math.max(walSeen, newest);
}

// ---------------------------------------------------------------------------------------
// Actions

async function writeKeys(b, prefix, n) {
  const acked = [];
  let failed = null;
  let lastAck = 0;
  for (let i = 1; i <= n; i++) {
    const key = `${prefix}-${i}`;
    const reply = await api(b, 'POST', '/kv', { key, value: { n: i, written_at: new Date().toISOString() } });
    if (reply.ok) {
      acked.push(key);
      lastAck = performance.now();
    } else if (!failed) {
      failed = problem(reply);
    }
  }
  return { acked, failed, lastAck };
}

async function writeAll() {
  const n = readN();
  const prefix = `key-${Date.now()}`;
  setBusy(true);
  announce(`Writing ${plural(n, 'key')} to each store…`);
  const started = performance.now();
  const results = await Promise.all(BACKENDS.map((b) => writeKeys(b, prefix, n)));
  const took = Math.round(performance.now() - started);
  const parts = BACKENDS.map((b, i) => `${b} ${results[i].acked.length}${results[i].failed ? ` (failed: ${results[i].failed})` : ''}`);
  announce(`Wrote ${prefix}-1…${n} in ${took} ms; acknowledged: ${parts.join(', ')}.`);
  setBusy(false);
  pollStats();
}

// A power loss where the backend can simulate one, else a process crash; any other mode
// the backend lists in its crash_modes as asked.
function crashMode(b, mode) {
  if (mode === 'power-loss') return supports(b, 'power_loss') ? 'power-loss' : 'process';
  return info[b].supports.crash_modes.includes(mode) ? mode : 'process';
}

// Crash one store; returns {ok, text}, the text saying what happened (a sentence without
// its full stop).
async function crash(b, mode) {
  const asked = crashMode(b, mode);
  const reply = await api(b, 'POST', `/admin/crash?mode=${encodeURIComponent(asked)}`);
  if (!reply.ok) return { ok: false, text: `${b}: could not crash it: ${problem(reply)}` };
  return { ok: true, text: crashSaid(b, asked, reply.json || {}) };
}

function crashSaid(b, asked, j) {
  const note = j.note ? String(j.note).replace(/\.$/, '') : null;
  if (asked !== 'process' && asked !== 'power-loss') {
    // A mode that kills something other than the server (a replicated store's members):
    // the server says what it killed, and usually what happens next.
    if (note) return `${b}: ${note}`;
    const killed = Array.isArray(j.killed_members) && j.killed_members.length ? j.killed_members.join(', ') : null;
    return `${b}: crash mode ${asked}${killed ? `: killed ${killed}` : ''}; the lab restarts what was killed`;
  }
  let text = `${b}: ${j.mode === 'power-loss' ? 'power loss' : 'crashed'} with ${plural(j.items_in_memory || 0, 'key')} in memory`;
  if (j.mode === 'power-loss') {
    text += `; the log was cut back to its fsynced ${plural(j.synced_bytes_kept || 0, 'byte')} (${plural(j.unsynced_bytes_dropped || 0, 'unsynced byte')} dropped)`;
  }
  if (note) text += `; ${note}`;
  return text;
}

async function crashAll() {
  setBusy(true);
  const powerLoss = document.getElementById('power-loss').checked;
  const said = await Promise.all(BACKENDS.map((b) => crash(b, powerLoss ? 'power-loss' : 'process')));
  announce(`${said.map((x) => x.text).join('; ')}.${said.some((x) => x.ok) ? ' The lab restarts them.' : ''}`);
  setBusy(false);
}

async function storeAction(b, action) {
  setBusy(true);
  try {
    if (action === 'crash' || action === 'power-loss') {
      const done = await crash(b, action);
      announce(`${done.text}.${done.ok ? ' The lab restarts it.' : ''}`);
    } else if (action.startsWith('crash:')) {
      announce(`${(await crash(b, action.slice('crash:'.length))).text}.`);
    } else if (action === 'checkpoint') {
      const reply = await api(b, 'POST', '/admin/checkpoint');
      const j = reply.json || {};
      if (!reply.ok) {
        announce(`${b}: ${action} failed: ${problem(reply)}`);
      } else if (j.sequence !== undefined && j.keys !== undefined) {
        announce(`${b}: checkpoint created at #${j.sequence}: a snapshot of ${plural(j.keys, 'key')}; ${plural(j.entries_truncated, 'log record')} no longer needed were deleted.`);
      } else {
        announce(`${b}: ${info[b].checkpointDone || j.note || j.status || 'checkpoint done.'}`);
      }
    } else if (action === 'clear') {
      const reply = await api(b, 'POST', '/admin/clear');
      announce(reply.ok ? `${b}: cleared; it holds no keys now.` : `${b}: clear failed: ${problem(reply)}`);
    }
  } finally {
    setBusy(false);
    pollStats();
    pollWal();
  }
}

// Wait until the store answers /admin/stats from a new process (new pid, or the lab's
// restart count went up). Returns how long that took in ms, or null.
async function waitBack(b, before, crashedAt) {
  while (performance.now() - crashedAt < BACK_PATIENCE_MS) {
    const reply = await api(b, 'GET', '/admin/stats');
    if (reply.ok && reply.json) {
      const st = reply.json;
      if (!before || st.pid !== before.pid || st.restarts > before.restarts) {
        stores[b].stats = st;
        noteRestarts(b, st.restarts, 'its restarts in /admin/stats', true);
        return { took: Math.round(performance.now() - crashedAt), stats: st };
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}

function demoRow(b) {
  return document.getElementById(`demo-${b}`);
}

// Why the demo's count came out as it did: the backend's own story where the page knows
// it, else what the store promises (its /admin/stats durability summary).
function explain(b, acked, back, stats, gapMs, powerLoss) {
  if (acked === 0) return 'No write was acknowledged, so there was nothing to keep.';
  if (info[b].explain) return info[b].explain(acked, back, stats, gapMs, powerLoss);
  const promise = stats && stats.durability ? ` What it promises: ${stats.durability.summary}.` : '';
  if (back === acked) return `All back.${promise}`;
  return `${back === 0 ? 'None' : `${back} of ${acked}`} back.${promise}`;
}

function explainWal(acked, back, stats, gapMs, powerLoss) {
  if (back === acked) {
    const r = stats && stats.last_recovery;
    const how = !r ? '.'
      : `; recovery ${r.snapshot ? `loaded the snapshot at #${r.snapshot.sequence} and ` : ''}replayed ${plural(r.entries_replayed, 'log record')}.`;
    return `All back${powerLoss ? ', even after a power loss' : ''}: each write was in the log `
      + `${stats && stats.fsync_policy === 'always' ? 'and fsynced ' : ''}before it was acknowledged${how}`;
  }
  return `Lost ${acked - back}: with FSYNC=${stats ? stats.fsync_policy : '?'} an acknowledged write is only in the OS page cache until the next fsync.`;
}

function explainMemory(acked, back) {
  return back === 0
    ? 'None back: it kept the keys only in the memory of its process, and the crash took them with it.'
    : `${back} back, which a memory store cannot do: look at the lab's log.`;
}

function explainSled(acked, back, stats, gapMs) {
  if (stats && stats.sled_flush === 'always') {
    return `${back === acked ? 'All back' : `${back} back`}: with SLED_FLUSH=always sled flushes before acknowledging each write.`;
  }
  const gap = gapMs === null ? '' : ` The crash came ${gapMs} ms after its last acknowledged write.`;
  if (back === acked) {
    return `All back: sled acknowledges before writing to disk and flushes every 500 ms in the background, and a flush ran before the crash.${gap}`;
  }
  if (back === 0) {
    return `None back: sled acknowledged them from memory and flushes to disk only every 500 ms in the background; no flush ran before the crash.${gap}`;
  }
  return `${back} of ${acked} back: sled acknowledges from memory and flushes every 500 ms in the background; the writes after its last flush were lost.${gap}`;
}

function explainEtcd(acked, back, stats) {
  if (back === acked) {
    return 'All back: the crash killed only the walab server in front of etcd; each write was in the Raft logs '
      + 'of a majority of the members, fsynced, before it was acknowledged.';
  }
  const promise = stats && stats.durability ? ` What it promises: ${stats.durability.summary}.` : '';
  return `Lost ${acked - back}, which an etcd majority should not lose: look at the lab's log.${promise}`;
}

async function durabilityDemo() {
  const n = readN();
  const run = `demo-${Date.now()}`;
  const powerLoss = document.getElementById('power-loss').checked;
  setBusy(true);
  const results = document.getElementById('demo-results');
  results.hidden = false;
  results.dataset.state = 'running';
  setText(document.getElementById('demo-caption'),
    `${plural(n, 'key')} (${run}-1…${n}) written to each store, then ${crashWords(powerLoss)}`);
  for (const b of BACKENDS) {
    const row = demoRow(b);
    delete row.dataset.acked;
    delete row.dataset.back;
    setText(row.querySelector('.acked'), '…');
    setText(row.querySelector('.back'), '…');
    setText(row.querySelector('.why'), '');
  }
  try {
    announce(`Durability demo: writing ${plural(n, 'key')} to each store…`);
    const written = await Promise.all(BACKENDS.map((b) => writeKeys(b, run, n)));
    for (const [i, b] of BACKENDS.entries()) {
      setText(demoRow(b).querySelector('.acked'), String(written[i].acked.length));
    }
    const before = await Promise.all(BACKENDS.map(async (b) => {
      const reply = await api(b, 'GET', '/admin/stats');
      return reply.ok ? reply.json : null;
    }));
    announce(`Durability demo: crashing all ${countWord(BACKENDS.length)}…`);
    const crashedAt = performance.now();
    const said = await Promise.all(BACKENDS.map((b) => crash(b, powerLoss ? 'power-loss' : 'process')));
    const gaps = BACKENDS.map((b, i) => (written[i].lastAck ? Math.round(crashedAt - written[i].lastAck) : null));
    announce(`Durability demo: ${said.map((x) => x.text).join('; ')}. Waiting for the lab to restart them…`);
    const back = await Promise.all(BACKENDS.map((b, i) => (said[i].ok ? waitBack(b, before[i], crashedAt) : null)));
    const lines = [];
    for (const [i, b] of BACKENDS.entries()) {
      const row = demoRow(b);
      const acked = written[i].acked.length;
      if (!said[i].ok) {
        setText(row.querySelector('.back'), 'not crashed');
        setText(row.querySelector('.why'), said[i].text);
        lines.push(`${b}: not crashed`);
        continue;
      }
      if (!back[i]) {
        setText(row.querySelector('.back'), 'did not come back');
        setText(row.querySelector('.why'), `No answer from a restarted ${b} server within ${BACK_PATIENCE_MS / 1000} s: look at the lab's log.`);
        lines.push(`${b}: did not come back`);
        continue;
      }
      const listing = await api(b, 'GET', `/kv?prefix=${encodeURIComponent(`${run}-`)}`);
      const present = new Set(listing.ok && listing.json ? Object.keys(listing.json.data) : []);
      const kept = written[i].acked.filter((k) => present.has(k)).length;
      row.dataset.acked = String(acked);
      row.dataset.back = String(kept);
      setText(row.querySelector('.back'), String(kept));
      setText(row.querySelector('.why'),
        `${explain(b, acked, kept, back[i].stats, gaps[i], powerLoss && supports(b, 'power_loss'))} (restarted in ${back[i].took} ms.)`);
      lines.push(`${b}: acknowledged ${acked}, came back ${kept}`);
    }
    results.dataset.state = 'done';
    announce(`Durability demo done. ${lines.join('; ')}.`);
  } catch (e) {
    results.dataset.state = 'failed';
    announce(`Durability demo failed: ${e}`);
  } finally {
    setBusy(false);
    pollStats();
    pollWal();
  }
}

// ---------------------------------------------------------------------------------------
// Start

function every(ms, task) {
  const run = async () => {
    try {
      await task();
    } catch (e) {
      console.error(e);
    }
    setTimeout(run, ms);
  };
  run();
}

// /lab.json, asked again every second until the lab answers: the columns need it.
async function loadLab() {
  for (;;) {
    try {
      const reply = await fetch('/lab.json', { cache: 'no-store' });
      if (reply.ok) {
        const lab = await reply.json();
        labReachable(true);
        return Array.isArray(lab.backends) ? lab.backends.filter((e) => e && typeof e.backend === 'string') : [];
      }
    } catch (_) {
      // not answering: said by the banner, tried again below
    }
    labReachable(false);
    await new Promise((resolve) => setTimeout(resolve, STATS_EVERY_MS));
  }
}

// The runs `walab experiment` left in the lab's experiments directory (/experiments.json):
// the newest run's plots, conclusions and the command that makes each.
async function showExperiments() {
  let found;
  try {
    const reply = await fetch('/experiments.json', { cache: 'no-store' });
    if (!reply.ok) return;
    found = await reply.json();
  } catch (_) {
    return;
  }
  const runs = Array.isArray(found.runs) ? found.runs : [];
  const section = document.getElementById('experiments');
  const hint = document.getElementById('experiments-hint');
  const list = document.getElementById('experiments-list');
  section.hidden = false;
  if (runs.length === 0) {
    hint.textContent = `No experiments in ${found.dir} yet: run one (cargo run --release -- experiment fsync --quick) and reload.`;
    return;
  }
  const run = runs[0];
  hint.textContent = `The newest run in ${found.dir}: ${run.run}${runs.length > 1 ? ` (${runs.length - 1} older)` : ''}.`;
  list.replaceChildren();
  for (const e of run.experiments) {
    const figure = document.createElement('figure');
    const title = document.createElement('h3');
    title.textContent = `${e.name}: ${e.shows}`;
    const img = document.createElement('img');
    img.src = e.plot;
    img.alt = `${e.name}: ${e.shows}`;
    img.loading = 'lazy';
    const caption = document.createElement('figcaption');
    caption.textContent = e.conclusion;
    const command = document.createElement('code');
    command.textContent = e.command;
    figure.append(title, img, caption, command);
    list.append(figure);
  }
}

async function start() {
  setupToken();
  for (const entry of await loadLab()) {
    const d = describe(entry);
    if (info[d.backend]) continue;
    info[d.backend] = d;
    BACKENDS.push(d.backend);
    stores[d.backend] = { stats: null, health: null, samples: [], points: [], el: null, port: null, restarts: null };
  }
  sayCount();
  buildColumns();
  buildDemoRows();
  buildLogViewer();
  showExperiments();
  document.getElementById('demo').addEventListener('click', durabilityDemo);
  document.getElementById('write-all').addEventListener('click', writeAll);
  document.getElementById('crash-all').addEventListener('click', crashAll);
  // Until all the stores are up for the first time, say how many are.
  const all = BACKENDS.length;
  let upSaid = -1;
  every(STATS_EVERY_MS, async () => {
    await pollStats();
    if (upSaid !== all && !busy) {
      const up = BACKENDS.filter((b) => stores[b].health === 200).length;
      if (up !== upSaid) {
        upSaid = up;
        announce(up === all
          ? `All ${countWord(all)} stores are up. Try the durability demo.`
          : `${up} of ${all} stores are up; waiting for the others.`);
      }
    }
  });
  every(METRICS_EVERY_MS, pollMetrics);
  every(WAL_EVERY_MS, pollWal);
  window.addEventListener('resize', () => BACKENDS.forEach(renderCharts));
}

document.addEventListener('DOMContentLoaded', start);
