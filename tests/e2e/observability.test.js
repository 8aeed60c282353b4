'use strict';
// End-to-end tests of observability: Prometheus /metrics summed over workers (and kept
// across HUP and worker crashes), the access log fields, and OpenTelemetry traces exported as
// OTLP/HTTP JSON to the mock collector in scripts/mock-otlp.js. Backends are the mock OpenAI server
// in scripts/mock-openai.js (knobs chosen by the backend model name) and the built-in echo backend.
//
// Counter checks are either exact (on a router started for the test) or deltas (on the shared
// router R). Tests in this file run one after the other.
//
// Run: cd /work/main && node --test tests/e2e/observability.test.js
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/harness.js');
const { hex, isHex, rawAttr } = require('./lib/trace.js');
const clients = require('./lib/client.js');
const { fetchRaw, request } = require('./lib/http.js');
const { idle } = require('./lib/metrics.js');
const { sseJson } = require('./lib/sse.js');
const { startMock, replyFor } = require('../../scripts/mock-openai.js');
const { startOtlpMock } = require('../../scripts/mock-otlp.js');

const T = { timeout: 60000 };
const BK_KEY = 'sk-backend-SECRET-obs-4242';
const KEY_A = 'sk-client-SECRET-team-a-7777';
const METRICS_TOKEN = 'mt-SECRET-metrics-31337';
const BUCKETS = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '60', '120', '300', '+Inf'];

let mock; let deadPort; let R;
const routers = new Set();
const collectors = new Set();

// ---------------------------------------------------------------- config

// models: [name, backend, backend_model|null, extra]
const M = {
  chatOk: ['chat-ok', 'bk-mock', 'up-chat-ok'],
  err500: ['err-model', 'bk-mock', 'up-error-500-m'],
  err400: ['err400-model', 'bk-mock', 'up-error-400-m'],
  slow5: ['slow5', 'bk-mock', 'up-slow-stream-5x50'],
  slowLong: ['slow-long', 'bk-mock', 'up-slow-stream-30x100'],
  dead: ['dead-model', 'bk-dead', 'up-dead'],
  timeout: ['timeout-model', 'bk-impatient', 'up-slow-first-byte-2000'],
  garbage: ['garbage-model', 'bk-mock', 'up-garbage'],
  text: ['text-model', 'bk-mock', 'up-text', 'kinds = ["completions"];'],
  embed: ['embed-model', 'bk-mock', 'up-embed', 'kinds = ["embeddings"];'],
  echo: ['echo-model', 'echo', null],
};

// The counts below are those of one backend call per request: retries are off (the default retries
// a failed call).
function routerConfig({ models, workers = 2, extra = '', bkExtra = '' }) {
  return `retry = { attempts = 1; };
listen = "127.0.0.1:@PORT@";
workers = ${workers};
log = { level = "info"; access_log = "@DIR@/access.log"; };
limits = { drain_timeout = 5; };
backends = (
  { name = "bk-mock"; type = "openai"; url = "${mock.url}"; connect_timeout = 2.0; first_byte_timeout = 10.0;
    idle_timeout = 10.0; timeout = 30.0; ${bkExtra} },
  { name = "bk-dead"; type = "openai"; url = "http://127.0.0.1:${deadPort}/v1"; connect_timeout = 1.0; },
  { name = "bk-impatient"; type = "openai"; url = "${mock.url}"; connect_timeout = 2.0; first_byte_timeout = 0.5; },
  { name = "echo"; type = "echo"; }
);
models = (
${models.map(([n, b, bm, x]) => `  { name = "${n}"; backend = "${b}";${bm ? ` backend_model = "${bm}";` : ''} ${x || ''} }`).join(',\n')}
);
${extra}
`;
}

async function router(config, opts = {}) {
  const r = await h.startRouter(config, opts);
  routers.add(r);
  return r;
}

async function stopRouter(r) {
  routers.delete(r);
  await r.stop();
  fs.rmSync(r.dir, { recursive: true, force: true });
}

async function collector(opts) {
  const c = await startOtlpMock(opts);
  collectors.add(c);
  return c;
}

before(async () => {
  mock = await startMock({ port: 0 });
  deadPort = await h.freePort();
  R = await router(routerConfig({ models: Object.values(M), bkExtra: 'api_key = "${BK_KEY}";' }), { env: { BK_KEY } });
});

after(async () => {
  for (const r of [...routers]) { try { await stopRouter(r); } catch { } }
  for (const c of [...collectors]) { try { await c.close(); } catch { } }
  if (mock) await mock.close();
});

// ---------------------------------------------------------------- Prometheus text parsing

function parseLabelValue(s, i) {
  // s[i] is the opening quote
  let out = '';
  for (i++; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') {
      const n = s[++i];
      if (n === 'n') out += '\n';
      else if (n === '\\' || n === '"') out += n;
      else throw new Error(`bad escape \\${n}`);
    } else if (ch === '"') return [out, i + 1];
    else out += ch;
  }
  throw new Error('unterminated label value');
}

function parseNumber(t) {
  if (t === '+Inf' || t === 'Inf') return Infinity;
  if (t === '-Inf') return -Infinity;
  if (t === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) throw new Error(`bad number ${JSON.stringify(t)}`);
  return Number(t);
}

// Parses the Prometheus text exposition format 0.0.4.
// Returns { samples: [{ name, labels, value }], types: { family: type }, helps: { family: text } }.
function parseProm(text) {
  const samples = [];
  const types = {};
  const helps = {};
  const lines = text.split('\n');
  lines.forEach((line, idx) => {
    const where = `line ${idx + 1} ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(TYPE|HELP)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s+(.*))?$/.exec(line);
      if (!m) return; // other comments are allowed
      if (m[1] === 'TYPE') {
        const t = (m[3] || '').trim();
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(t)) throw new Error(`bad TYPE at ${where}`);
        if (types[m[2]]) throw new Error(`second TYPE for ${m[2]} at ${where}`);
        types[m[2]] = t;
      } else helps[m[2]] = m[3] || '';
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) throw new Error(`bad metric name at ${where}`);
    const name = nm[0];
    let i = name.length;
    const labels = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ') i++;
        if (line[i] === '}') { i++; break; }
        const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
        if (!ln) throw new Error(`bad label name at ${where}`);
        i += ln[0].length;
        if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected ="" after label ${ln[0]} at ${where}`);
        let v;
        try { [v, i] = parseLabelValue(line, i + 1); } catch (e) { throw new Error(`${e.message} at ${where}`); }
        if (ln[0] in labels) throw new Error(`duplicate label ${ln[0]} at ${where}`);
        labels[ln[0]] = v;
        while (line[i] === ' ') i++;
        if (line[i] === ',') { i++; continue; }
        if (line[i] === '}') { i++; break; }
        throw new Error(`expected , or } at ${where}`);
      }
    }
    const rest = line.slice(i);
    const parts = rest.trim().split(/\s+/);
    if (!/^[ \t]/.test(rest) || parts.length < 1 || parts.length > 2) throw new Error(`bad sample at ${where}`);
    let value;
    try { value = parseNumber(parts[0]); } catch (e) { throw new Error(`${e.message} at ${where}`); }
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`bad timestamp at ${where}`);
    samples.push({ name, labels, value });
  });
  return { samples, types, helps };
}

const seriesKey = (name, labels) => `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;

function familyOf(name, types) {
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suf)) {
      const base = name.slice(0, -suf.length);
      if (types[base] === 'histogram' || types[base] === 'summary') return base;
    }
  }
  return name;
}

// Structural checks every /metrics answer must pass.
function checkExposition(p) {
  const seen = new Set();
  for (const s of p.samples) {
    const fam = familyOf(s.name, p.types);
    assert.ok(p.types[fam], `sample ${s.name} has a # TYPE line for ${fam}`);
    const k = seriesKey(s.name, s.labels);
    assert.ok(!seen.has(k), `series ${k} appears once (workers' values summed, not listed one by one)`);
    seen.add(k);
    if (p.types[fam] === 'counter') assert.ok(s.value >= 0 && Number.isFinite(s.value), `counter ${k} = ${s.value}`);
  }
  for (const fam of Object.keys(p.types)) {
    if (p.types[fam] !== 'histogram') continue;
    // group buckets by their labels without le
    const groups = new Map();
    for (const s of p.samples) {
      if (s.name !== `${fam}_bucket`) continue;
      assert.ok('le' in s.labels, `${fam}_bucket has le`);
      const { le, ...rest } = s.labels;
      const g = seriesKey(fam, rest);
      if (!groups.has(g)) groups.set(g, { labels: rest, buckets: [] });
      groups.get(g).buckets.push([le, s.value]);
    }
    for (const { labels, buckets } of groups.values()) {
      const les = buckets.map((b) => b[0]);
      assert.deepEqual(les.map((x) => parseNumber(x)), BUCKETS.map((x) => parseNumber(x)), `${fam}${JSON.stringify(labels)} buckets are the spec's, in order`);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], `${fam}${JSON.stringify(labels)} buckets are cumulative`);
      const count = p.samples.find((s) => s.name === `${fam}_count` && seriesKey('', s.labels) === seriesKey('', labels));
      const sum = p.samples.find((s) => s.name === `${fam}_sum` && seriesKey('', s.labels) === seriesKey('', labels));
      assert.ok(count, `${fam}_count${JSON.stringify(labels)} present`);
      assert.ok(sum, `${fam}_sum${JSON.stringify(labels)} present`);
      assert.equal(buckets[buckets.length - 1][1], count.value, `${fam}${JSON.stringify(labels)}: +Inf bucket == _count`);
      assert.ok(sum.value >= 0, `${fam}_sum >= 0`);
    }
  }
}

// Sum of the samples named `name` whose labels include `labels` (0 when none: zero series may be omitted).
function val(p, name, labels = {}) {
  let total = 0;
  for (const s of p.samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

function series(p, name) { return p.samples.filter((s) => s.name === name); }

// A GET on a fresh connection (no keep-alive: any worker may answer).
const getRaw = (base, urlPath, headers = {}) => request(base, urlPath, { headers, timeout: 5000 });

// GET /metrics -> parsed and checked exposition. Always on a fresh connection: a pooled keep-alive
// connection may belong to a worker that a reload or a kill has just retired (its FIN not yet seen
// by the client), and any worker must be able to answer anyway.
async function metrics(r, { base, headers = {} } = {}) {
  const res = await getRaw(base || r.base, '/metrics', headers);
  assert.equal(res.status, 200, `GET /metrics: ${res.status} ${res.body.slice(0, 200)}`);
  const p = parseProm(res.body);
  checkExposition(p);
  p.text = res.body;
  return p;
}
const metricsFresh = metrics;

// Waits until fn(metrics) is truthy; returns the metrics then.
async function waitMetrics(r, fn, what, { timeout = 5000, ...opts } = {}) {
  let last;
  try {
    return await h.waitFor(async () => { last = await metrics(r, opts); return fn(last) ? last : null; }, { timeout, interval: 50, what });
  } catch (e) {
    e.message += `\n--- last /metrics:\n${last ? last.text.split('\n').filter((l) => !l.startsWith('#') && !l.includes('_bucket')).join('\n') : '(none)'}`;
    throw e;
  }
}

// The API counters and histograms (everything but the process gauges), as a key -> value map.
function apiState(p) {
  const out = {};
  for (const s of p.samples) {
    if (/^airouter_(requests_total|request_duration_seconds|time_to_first_token_seconds|stream_chunk_gap_seconds|tokens_total|backend_errors_total|client_aborts_total)/.test(s.name)) {
      out[seriesKey(s.name, s.labels)] = s.value;
    }
  }
  return out;
}

// ---------------------------------------------------------------- API helpers

const client = (r, opts = {}) => clients.openai(r, { apiKey: 'sk-not-checked', ...opts });
// Raw POST; returns { status, headers, text, json, bytes }.
const post = (r, urlPath, json, headers = {}) =>
  fetchRaw(r.base, 'POST', urlPath, { headers: { 'content-type': 'application/json', ...headers }, ...(typeof json === 'string' ? { body: json } : { json }) });
// The data of each event of an SSE body, parsed ('[DONE]' as is).
const sseEvents = (text) => sseJson(text, { done: true }).filter((e) => e.data !== null).map((e) => e.data);

const msgs = (text) => [{ role: 'user', content: text }];
const usageOf = (text) => replyFor({ messages: msgs(text) }, 'chat').usage;

async function chat(r, model, text, reqOpts, c = client(r)) {
  return c.chat.completions.create({ model, messages: msgs(text) }, reqOpts);
}

async function streamAll(r, model, text, { body = {}, reqOpts, c = client(r) } = {}) {
  const s = await c.chat.completions.create({ model, messages: msgs(text), stream: true, ...body }, reqOpts);
  const chunks = [];
  for await (const ch of s) chunks.push(ch);
  return chunks;
}

async function expectStatus(p, status) {
  await assert.rejects(p, (e) => { assert.equal(e.status, status, `status ${e.status}: ${e.message}`); return true; });
}

function accessLines(r) {
  const f = path.join(r.dir, 'access.log');
  if (!fs.existsSync(f)) return [];
  return fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return { unparsable: l }; } });
}

async function accessLine(r, rid) {
  return h.waitFor(() => accessLines(r).find((l) => l.request_id === rid), { timeout: 5000, what: `access log line for ${rid}` });
}

const rid = (tag) => `${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

// ================================================================ metrics

test('/metrics: exact counts after a known sequence, summed over 2 workers, identical from every worker', T, async () => {
  const models = [M.chatOk, M.err500];
  const r = await router(routerConfig({ models }));
  try {
    const c = client(r);
    const expectTok = { prompt: 0, completion: 0 };
    for (let i = 0; i < 5; i++) {
      const text = `count request ${i}`;
      const a = await chat(r, 'chat-ok', text, undefined, client(r));
      assert.equal(a.choices[0].message.content, `you said: ${text}`);
      expectTok.prompt += usageOf(text).prompt_tokens; expectTok.completion += usageOf(text).completion_tokens;
    }
    for (let i = 0; i < 3; i++) {
      const text = `stream number ${i} here`;
      const chunks = await streamAll(r, 'chat-ok', text, { c });
      assert.equal(chunks.map((ch) => (ch.choices[0] && ch.choices[0].delta.content) || '').join(''), `you said: ${text}`);
      expectTok.prompt += usageOf(text).prompt_tokens; expectTok.completion += usageOf(text).completion_tokens;
    }
    await expectStatus(chat(r, 'no-such-model', 'x'), 404);
    await expectStatus(chat(r, 'evil"model{le="1"}\nx', 'x'), 404); // raw client input never becomes a label
    await expectStatus(chat(r, 'err-model', 'boom'), 502);
    const bad = await post(r, '/v1/chat/completions', '{"model": "chat-ok", "messages": [');
    assert.equal(bad.status, 400, 'malformed JSON -> 400');
    // Not API requests: not counted.
    assert.equal((await fetch(`${r.base}/health`)).status, 200);
    assert.equal((await fetch(`${r.base}/v1/models`)).status, 200);
    assert.equal((await fetch(`${r.base}/no/such/path`)).status, 404);

    const p = await waitMetrics(r, (m) => val(m, 'airouter_requests_total') >= 12 && val(m, 'airouter_requests_in_flight') === 0,
      'all 12 API requests counted');
    const rt = (labels) => val(p, 'airouter_requests_total', labels);
    assert.equal(rt({ model: 'chat-ok', backend: 'bk-mock', kind: 'chat', status_class: '2xx' }), 8, '5 chat + 3 streams');
    assert.equal(rt({ model: 'other', backend: 'none', kind: 'chat', status_class: '4xx' }), 3, '2 unknown models + 1 malformed JSON');
    assert.equal(rt({ model: 'err-model', backend: 'bk-mock', kind: 'chat', status_class: '5xx' }), 1);
    assert.equal(rt({}), 12, 'nothing else counted (/health, /v1/models, 404 path are not API requests)');
    for (const s of series(p, 'airouter_requests_total')) {
      assert.deepEqual(Object.keys(s.labels).sort(), ['backend', 'kind', 'model', 'status_class'], `labels of ${JSON.stringify(s.labels)}`);
      assert.ok(['chat-ok', 'err-model', 'other'].includes(s.labels.model), `model label from config: ${s.labels.model}`);
    }
    assert.ok(!p.text.includes('no-such-model') && !p.text.includes('evil'), 'client-chosen model names never appear in /metrics');
    assert.equal(val(p, 'airouter_backend_errors_total', { backend: 'bk-mock', reason: '5xx' }), 1);
    assert.equal(val(p, 'airouter_backend_errors_total'), 1, 'only the one backend error');
    assert.equal(val(p, 'airouter_request_duration_seconds_count', { model: 'chat-ok' }), 8);
    assert.equal(val(p, 'airouter_request_duration_seconds_count', { model: 'err-model' }), 1);
    assert.ok(val(p, 'airouter_request_duration_seconds_sum', { model: 'chat-ok' }) > 0);
    assert.equal(val(p, 'airouter_time_to_first_token_seconds_count', { model: 'chat-ok' }), 3, 'TTFT: the 3 streams only');
    assert.equal(val(p, 'airouter_time_to_first_token_seconds_count'), 3);
    assert.equal(val(p, 'airouter_tokens_total', { model: 'chat-ok', type: 'prompt' }), expectTok.prompt);
    assert.equal(val(p, 'airouter_tokens_total', { model: 'chat-ok', type: 'completion' }), expectTok.completion);
    assert.equal(val(p, 'airouter_tokens_total'), expectTok.prompt + expectTok.completion);
    assert.equal(val(p, 'airouter_client_aborts_total'), 0);
    assert.equal(val(p, 'airouter_requests_in_flight'), 0);
    assert.equal(val(p, 'airouter_workers'), 2);
    assert.equal(val(p, 'airouter_config_generation'), 1);
    assert.equal(val(p, 'airouter_worker_restarts_total'), 0);
    assert.equal(val(p, 'airouter_config_reloads_total'), 0);
    assert.equal(val(p, 'airouter_build_info', { version: '0.1.0' }), 1);
    assert.equal(val(p, 'airouter_trace_spans_exported_total') + val(p, 'airouter_trace_spans_dropped_total'), 0, 'no tracing configured');

    // Every worker answers with the same totals.
    const want = {};
    for (const s of p.samples) want[seriesKey(s.name, s.labels)] = s.value;
    // Fresh connections spread over the workers; the access log tells which worker answered each
    // fetch, so keep going (up to 100) until both have answered at least twice.
    const workers = r.workers();
    assert.equal(workers.length, 2);
    const answeredBy = () => {
      const by = {};
      for (const l of accessLines(r)) if (l.path === '/metrics' && String(l.request_id).startsWith('mfetch-')) by[l.worker] = (by[l.worker] || 0) + 1;
      return by;
    };
    for (let i = 0; i < 100; i++) {
      const res = await getRaw(r.base, '/metrics', { 'x-request-id': `mfetch-${i}` });
      assert.equal(res.status, 200);
      const q = parseProm(res.body);
      const got = {};
      for (const s of q.samples) got[seriesKey(s.name, s.labels)] = s.value;
      assert.deepEqual(got, want, `/metrics fetch ${i} on a fresh connection gives the same totals`);
      if (i >= 9) {
        await h.sleep(20);
        const by = answeredBy();
        if (workers.every((w) => (by[w] || 0) >= 2)) break;
      }
    }
    // a fetch's access line is written after its answer was sent: give the last ones time to land
    const by = await h.waitFor(() => { const b = answeredBy(); return workers.every((w) => (b[w] || 0) >= 1) && b; },
      { timeout: 3000, what: 'an access line for /metrics from each worker' }).catch(() => answeredBy());
    assert.ok(workers.every((w) => (by[w] || 0) >= 1), `both workers answered /metrics (answers by worker: ${JSON.stringify(by)})`);
  } finally { await stopRouter(r); }
});

test('/metrics: format (content type, TYPE lines, always-present series, bucket bounds)', T, async () => {
  const res = await fetch(`${R.base}/metrics`);
  assert.equal(res.status, 200);
  assert.equal((res.headers.get('content-type') || '').replace(/\s+/g, '').toLowerCase(), 'text/plain;version=0.0.4;charset=utf-8');
  const p = parseProm(await res.text());
  checkExposition(p);
  const types = {
    airouter_build_info: 'gauge', airouter_requests_total: 'counter', airouter_requests_in_flight: 'gauge',
    airouter_request_duration_seconds: 'histogram', airouter_time_to_first_token_seconds: 'histogram',
    airouter_stream_chunk_gap_seconds: 'histogram', airouter_tokens_total: 'counter', airouter_backend_errors_total: 'counter',
    airouter_client_aborts_total: 'counter', airouter_workers: 'gauge', airouter_worker_restarts_total: 'counter',
    airouter_config_reloads_total: 'counter', airouter_config_generation: 'gauge',
    airouter_trace_spans_exported_total: 'counter', airouter_trace_spans_dropped_total: 'counter',
  };
  for (const [fam, t] of Object.entries(types)) {
    if (p.types[fam] !== undefined || ['airouter_build_info', 'airouter_requests_in_flight', 'airouter_workers', 'airouter_config_generation'].includes(fam)) {
      assert.equal(p.types[fam], t, `# TYPE ${fam} ${t}`);
    }
  }
  for (const name of ['airouter_build_info', 'airouter_requests_in_flight', 'airouter_workers', 'airouter_config_generation']) {
    assert.ok(series(p, name).length >= 1, `${name} is always present`);
  }
  for (const fam of Object.keys(p.types)) assert.ok(fam.startsWith('airouter_'), `family ${fam} is named airouter_*`);
});

test('TTFT histogram moves for streams only; chunk-gap histogram measures a slow stream', T, async () => {
  const c = client(R);
  const p0 = await metrics(R);
  const ttft = (p, model) => val(p, 'airouter_time_to_first_token_seconds_count', { model });
  const done = (p, model) => val(p, 'airouter_requests_total', { model });

  await chat(R, 'chat-ok', 'not a stream one', undefined, c);
  await chat(R, 'chat-ok', 'not a stream two', undefined, c);
  const p1 = await waitMetrics(R, (m) => done(m, 'chat-ok') === done(p0, 'chat-ok') + 2, '2 non-stream requests counted');
  assert.equal(ttft(p1, 'chat-ok'), ttft(p0, 'chat-ok'), 'TTFT _count unchanged by non-stream requests');
  assert.equal(val(p1, 'airouter_time_to_first_token_seconds_count'), val(p0, 'airouter_time_to_first_token_seconds_count'));

  await streamAll(R, 'chat-ok', 'a stream now', { c });
  const p2 = await waitMetrics(R, (m) => done(m, 'chat-ok') === done(p0, 'chat-ok') + 3, 'stream counted');
  assert.equal(ttft(p2, 'chat-ok'), ttft(p0, 'chat-ok') + 1, 'TTFT _count +1 for the stream');

  // slow-stream-5x50: every event 50 ms after the previous one.
  const g0 = { n: val(p2, 'airouter_stream_chunk_gap_seconds_count', { model: 'slow5' }), s: val(p2, 'airouter_stream_chunk_gap_seconds_sum', { model: 'slow5' }) };
  const t0 = Date.now();
  const chunks = await streamAll(R, 'slow5', 'gaps please', { c });
  const took = (Date.now() - t0) / 1000;
  assert.equal(chunks.map((ch) => (ch.choices[0] && ch.choices[0].delta.content) || '').join(''), 'w0 w1 w2 w3 w4 ');
  const p3 = await waitMetrics(R, (m) => done(m, 'slow5') === done(p2, 'slow5') + 1, 'slow stream counted');
  const dn = val(p3, 'airouter_stream_chunk_gap_seconds_count', { model: 'slow5' }) - g0.n;
  const ds = val(p3, 'airouter_stream_chunk_gap_seconds_sum', { model: 'slow5' }) - g0.s;
  assert.ok(dn >= 4, `at least 4 gaps observed between the 5 content chunks (got ${dn})`);
  assert.ok(ds >= 0.15, `gap sum ${ds.toFixed(3)} s >= 0.15 s`);
  assert.ok(ds <= took + 0.5, `gap sum ${ds.toFixed(3)} s within the stream's duration ${took.toFixed(3)} s`);
  const gapBuckets = series(p3, 'airouter_stream_chunk_gap_seconds_bucket').filter((s) => s.labels.model === 'slow5');
  const le = (x) => gapBuckets.find((s) => parseNumber(s.labels.le) === x).value;
  assert.ok(le(0.25) - le(0.025) >= 3, `the ~50 ms gaps land above the 0.025 bucket and within 0.25 (${JSON.stringify(gapBuckets.map((b) => [b.labels.le, b.value]))})`);
  assert.ok(ttft(p3, 'slow5') >= 1 && val(p3, 'airouter_time_to_first_token_seconds_sum', { model: 'slow5' }) >= 0.04,
    'slow5 TTFT observed, >= ~50 ms');
});

test('tokens_total from usage: non-stream, stream without include_usage (hidden from the client), stream with it', T, async () => {
  const tok = (p, type) => val(p, 'airouter_tokens_total', { model: 'chat-ok', type });
  const done = (p) => val(p, 'airouter_requests_total', { model: 'chat-ok' });
  const p0 = await metrics(R);

  const t1 = 'alpha beta gamma';
  const a = await chat(R, 'chat-ok', t1);
  assert.deepEqual({ p: a.usage.prompt_tokens, c: a.usage.completion_tokens }, { p: usageOf(t1).prompt_tokens, c: usageOf(t1).completion_tokens });
  const p1 = await waitMetrics(R, (m) => done(m) === done(p0) + 1, 'non-stream counted');
  assert.equal(tok(p1, 'prompt') - tok(p0, 'prompt'), usageOf(t1).prompt_tokens);
  assert.equal(tok(p1, 'completion') - tok(p0, 'completion'), usageOf(t1).completion_tokens);

  // Stream, client did not ask for usage: the router asks the backend, counts, and hides the usage chunk.
  const t2 = 'delta epsilon zeta eta theta';
  const before = mock.requests.length;
  const res = await post(R, '/v1/chat/completions', { model: 'chat-ok', messages: msgs(t2), stream: true });
  assert.equal(res.status, 200);
  const ev = sseEvents(res.text);
  assert.equal(ev[ev.length - 1], '[DONE]');
  const objs = ev.filter((e) => e !== '[DONE]');
  assert.equal(objs.map((e) => (e.choices[0] && e.choices[0].delta.content) || '').join(''), `you said: ${t2}`);
  assert.ok(objs.every((e) => Array.isArray(e.choices) && e.choices.length > 0), 'no choices-less (usage) chunk reaches the client');
  assert.ok(objs.every((e) => e.usage === undefined || e.usage === null), `no usage reaches the client: ${JSON.stringify(objs.find((e) => e.usage))}`);
  const brec = mock.requests.slice(before).find((q) => q.body && q.body.messages && q.body.messages[0].content === t2);
  assert.ok(brec, 'backend got the stream');
  assert.equal(brec.body.stream_options && brec.body.stream_options.include_usage, true, 'backend asked for usage (stream_usage default true)');
  const p2 = await waitMetrics(R, (m) => done(m) === done(p0) + 2, 'stream counted');
  assert.equal(tok(p2, 'prompt') - tok(p1, 'prompt'), usageOf(t2).prompt_tokens, 'stream prompt tokens counted');
  assert.equal(tok(p2, 'completion') - tok(p1, 'completion'), usageOf(t2).completion_tokens, 'stream completion tokens counted');

  // Stream with include_usage: the client gets exactly one usage chunk, tokens counted once.
  const t3 = 'iota kappa';
  const chunks = await streamAll(R, 'chat-ok', t3, { body: { stream_options: { include_usage: true } } });
  const withUsage = chunks.filter((ch) => ch.usage);
  assert.equal(withUsage.length, 1, 'one usage chunk for a client that asked');
  assert.equal(withUsage[0].usage.prompt_tokens, usageOf(t3).prompt_tokens);
  assert.equal(withUsage[0].usage.completion_tokens, usageOf(t3).completion_tokens);
  const p3 = await waitMetrics(R, (m) => done(m) === done(p0) + 3, 'stream with usage counted');
  assert.equal(tok(p3, 'prompt') - tok(p2, 'prompt'), usageOf(t3).prompt_tokens);
  assert.equal(tok(p3, 'completion') - tok(p2, 'completion'), usageOf(t3).completion_tokens);
});

test('stream_usage = false: the backend is not asked for usage, the client still gets it when it asks', T, async () => {
  const r = await router(routerConfig({ models: [M.chatOk], bkExtra: 'stream_usage = false;' }));
  try {
    const t1 = 'no usage asked here';
    const before = mock.requests.length;
    const chunks = await streamAll(r, 'chat-ok', t1);
    assert.ok(chunks.every((ch) => !ch.usage), 'no usage chunk');
    const b1 = mock.requests.slice(before).find((q) => q.body && q.body.messages && q.body.messages[0].content === t1);
    assert.ok(!(b1.body.stream_options && b1.body.stream_options.include_usage), `backend not asked for usage: ${JSON.stringify(b1.body.stream_options)}`);
    const t2 = 'usage asked by the client';
    const c2 = await streamAll(r, 'chat-ok', t2, { body: { stream_options: { include_usage: true } } });
    assert.equal(c2.filter((ch) => ch.usage).length, 1, 'the client that asked gets its usage chunk');
    const p = await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'chat-ok' }) === 2, 'both counted');
    assert.equal(val(p, 'airouter_tokens_total', { model: 'chat-ok', type: 'prompt' }), usageOf(t2).prompt_tokens, 'only the stream with usage counted');
    assert.equal(val(p, 'airouter_tokens_total', { model: 'chat-ok', type: 'completion' }), usageOf(t2).completion_tokens);
  } finally { await stopRouter(r); }
});

test('kinds: completions and embeddings are counted under their kind, embeddings prompt tokens counted', T, async () => {
  const c = client(R);
  const p0 = await metrics(R);
  const cm = await c.completions.create({ model: 'text-model', prompt: 'complete this text' });
  assert.equal(cm.choices[0].text, 'you said: complete this text');
  const em = await c.embeddings.create({ model: 'embed-model', input: 'four words of input' });
  assert.equal(em.data.length, 1);
  const p1 = await waitMetrics(R, (m) => val(m, 'airouter_requests_total') === val(p0, 'airouter_requests_total') + 2, 'both counted');
  const d = (labels) => val(p1, 'airouter_requests_total', labels) - val(p0, 'airouter_requests_total', labels);
  assert.equal(d({ model: 'text-model', backend: 'bk-mock', kind: 'completions', status_class: '2xx' }), 1);
  assert.equal(d({ model: 'embed-model', backend: 'bk-mock', kind: 'embeddings', status_class: '2xx' }), 1);
  const tk = (p, model, type) => val(p, 'airouter_tokens_total', { model, type });
  assert.equal(tk(p1, 'text-model', 'prompt') - tk(p0, 'text-model', 'prompt'), 3);
  assert.equal(tk(p1, 'text-model', 'completion') - tk(p0, 'text-model', 'completion'), 5);
  assert.equal(tk(p1, 'embed-model', 'prompt') - tk(p0, 'embed-model', 'prompt'), 4);
});

test('backend_errors_total reasons: connect, timeout, 5xx, 4xx, protocol', T, async () => {
  const p0 = await metrics(R);
  await expectStatus(chat(R, 'dead-model', 'x'), 502);
  await expectStatus(chat(R, 'timeout-model', 'x'), 504);
  await expectStatus(chat(R, 'err-model', 'x'), 502);
  await expectStatus(chat(R, 'err400-model', 'x'), 400);
  await expectStatus(chat(R, 'garbage-model', 'x'), 502);
  const p1 = await waitMetrics(R, (m) => val(m, 'airouter_requests_total') === val(p0, 'airouter_requests_total') + 5, '5 requests counted');
  const d = (name, labels) => val(p1, name, labels) - val(p0, name, labels);
  assert.equal(d('airouter_backend_errors_total', { backend: 'bk-dead', reason: 'connect' }), 1);
  assert.equal(d('airouter_backend_errors_total', { backend: 'bk-impatient', reason: 'timeout' }), 1);
  assert.equal(d('airouter_backend_errors_total', { backend: 'bk-mock', reason: '5xx' }), 1);
  assert.equal(d('airouter_backend_errors_total', { backend: 'bk-mock', reason: '4xx' }), 1);
  assert.equal(d('airouter_backend_errors_total', { backend: 'bk-mock', reason: 'protocol' }), 1);
  assert.equal(d('airouter_backend_errors_total', {}), 5);
  assert.equal(d('airouter_requests_total', { model: 'dead-model', backend: 'bk-dead', status_class: '5xx' }), 1);
  assert.equal(d('airouter_requests_total', { model: 'timeout-model', backend: 'bk-impatient', status_class: '5xx' }), 1);
  assert.equal(d('airouter_requests_total', { model: 'err400-model', status_class: '4xx' }), 1);
  assert.equal(d('airouter_requests_total', { model: 'garbage-model', status_class: '5xx' }), 1);
  for (const s of series(p1, 'airouter_backend_errors_total')) {
    assert.ok(['connect', 'timeout', '5xx', '4xx', 'protocol'].includes(s.labels.reason), `reason ${s.labels.reason}`);
  }
});

test('requests_in_flight is 1 during a slow stream (whichever worker answers) and 0 after', T, async () => {
  await waitMetrics(R, (m) => val(m, 'airouter_requests_in_flight') === 0, 'idle router');
  const s = await client(R).chat.completions.create({ model: 'slow-long', messages: msgs('in flight'), stream: true });
  const it = s[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  for (let i = 0; i < 4; i++) {
    const p = await metricsFresh(R);
    assert.equal(val(p, 'airouter_requests_in_flight'), 1, `in flight during the stream (fetch ${i})`);
  }
  let n = 1;
  for (let x = await it.next(); !x.done; x = await it.next()) n++;
  assert.ok(n >= 30, `whole stream read (${n} chunks)`);
  await waitMetrics(R, (m) => val(m, 'airouter_requests_in_flight') === 0, 'in_flight back to 0');
});

test('client abort mid-stream: client_aborts_total +1, counted as 4xx, access log client_abort true', T, async () => {
  const p0 = await waitMetrics(R, (m) => val(m, 'airouter_requests_in_flight') === 0, 'idle router');
  const id = rid('abort');
  const s = await client(R).chat.completions.create({ model: 'slow-long', messages: msgs('abort me'), stream: true }, { headers: { 'x-request-id': id } });
  let n = 0;
  for await (const ch of s) {
    if (ch.choices[0] && ch.choices[0].delta.content) n++;
    if (n === 3) { s.controller.abort(); break; }
  }
  // requests_total is bumped last and read first by a scrape: once it shows the request, the abort shows too
  const p1 = await waitMetrics(R, (m) => val(m, 'airouter_requests_total', { model: 'slow-long' }) === val(p0, 'airouter_requests_total', { model: 'slow-long' }) + 1,
    'aborted request counted', { timeout: 6000 });
  const d = (labels) => val(p1, 'airouter_requests_total', labels) - val(p0, 'airouter_requests_total', labels);
  assert.equal(d({ model: 'slow-long', status_class: '4xx' }), 1, 'a client that left is 4xx');
  assert.equal(d({ model: 'slow-long' }), 1);
  assert.equal(val(p1, 'airouter_client_aborts_total') - val(p0, 'airouter_client_aborts_total'), 1);
  await waitMetrics(R, (m) => val(m, 'airouter_requests_in_flight') === 0, 'in_flight 0 after the abort');
  const line = await accessLine(R, id);
  assert.equal(line.client_abort, true, `access line: ${JSON.stringify(line)}`);
  assert.equal(line.stream, true);
});

test('metrics.token: /metrics needs Bearer token (401 without or wrong), API unaffected', T, async () => {
  const r = await router(routerConfig({ models: [M.chatOk], extra: 'metrics = { token = "${METRICS_TOKEN}"; };' }), { env: { METRICS_TOKEN } });
  try {
    const none = await fetch(`${r.base}/metrics`);
    await none.text();
    assert.equal(none.status, 401, 'no token -> 401');
    const wrong = await fetch(`${r.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
    const wrongBody = await wrong.text();
    assert.equal(wrong.status, 401, 'wrong token -> 401');
    assert.ok(!wrongBody.includes(METRICS_TOKEN), 'the 401 does not reveal the token');
    const prefix = await fetch(`${r.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` } });
    await prefix.text();
    assert.equal(prefix.status, 401, 'a prefix of the token -> 401');
    const a = await chat(r, 'chat-ok', 'api still open');
    assert.equal(a.choices[0].message.content, 'you said: api still open');
    const p = await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'chat-ok' }) === 1, 'counted',
      { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(val(p, 'airouter_build_info', { version: '0.1.0' }), 1);
    assert.ok(!r.log.includes(METRICS_TOKEN), 'token not logged');
  } finally { await stopRouter(r); }
});

test('metrics.listen: /metrics (and /health) on the separate address, 404 on the main port', T, async () => {
  const mport = await h.freePort();
  const r = await router(routerConfig({ models: [M.chatOk], extra: `metrics = { listen = "127.0.0.1:${mport}"; };` }));
  try {
    const mbase = `http://127.0.0.1:${mport}`;
    await h.waitFor(async () => (await fetch(`${mbase}/metrics`)).status === 200, { timeout: 5000, what: 'metrics port up' });
    const main = await fetch(`${r.base}/metrics`);
    await main.text();
    assert.equal(main.status, 404, '/metrics on the main port -> 404');
    const hl = await fetch(`${mbase}/health`);
    assert.equal(hl.status, 200, '/health on the metrics port');
    await hl.text();
    const api = await fetch(`${mbase}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-ok', messages: msgs('x') }) });
    await api.text();
    assert.equal(api.status, 404, 'the API is not served on the metrics address');
    await chat(r, 'chat-ok', 'counted via main');
    const p = await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }) === 1, 'counted', { base: mbase });
    assert.equal(val(p, 'airouter_workers'), 2);
    for (let i = 0; i < 6; i++) {
      const q = await metricsFresh(r, { base: mbase });
      assert.equal(val(q, 'airouter_requests_total', { model: 'chat-ok' }), 1, `metrics port fetch ${i}`);
    }
  } finally { await stopRouter(r); }
});

test('HUP keeps counters (generation 1 -> 2, reloads ok); broken config counts failed; removing a model keeps the others', T, async () => {
  const gone = ['gone-model', 'bk-mock', 'up-gone'];
  const conf1 = routerConfig({ models: [gone, M.chatOk] });
  const r = await router(conf1);
  try {
    const c = client(r);
    for (let i = 0; i < 3; i++) await chat(r, 'chat-ok', `before hup ${i}`, undefined, c);
    for (let i = 0; i < 2; i++) await chat(r, 'gone-model', `gone ${i}`, undefined, c);
    await streamAll(r, 'chat-ok', 'streamed before hup', { c });
    const p0 = await waitMetrics(r, (m) => val(m, 'airouter_requests_total') === 6, '6 requests counted');
    assert.equal(val(p0, 'airouter_config_generation'), 1);
    const s0 = apiState(p0);

    // Good HUP (same config).
    let old = r.workers();
    r.signal('SIGHUP');
    const p1 = await waitMetrics(r, (m) => val(m, 'airouter_config_generation') === 2, 'generation 2', { timeout: 15000 });
    await h.waitFor(() => r.workers().length === 2 && r.workers().every((w) => !old.includes(w)), { timeout: 15000, what: 'old workers replaced' });
    const p1b = await metrics(r);
    assert.deepEqual(apiState(p1), s0, 'counters unchanged by the reload');
    assert.deepEqual(apiState(p1b), s0, 'counters unchanged once the old workers are gone');
    assert.equal(val(p1b, 'airouter_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(val(p1b, 'airouter_config_reloads_total', { result: 'failed' }), 0);
    assert.equal(val(p1b, 'airouter_worker_restarts_total'), 0, 'a reload is not a restart');
    await waitMetrics(r, (m) => val(m, 'airouter_workers') === 2, 'workers gauge back to 2');
    await chat(r, 'chat-ok', 'after hup', undefined, c);
    await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }) === 5, 'new generation adds to the same counter');

    // Broken config.
    r.writeConfig('listen = "127.0.0.1:@PORT@";\nthis is { not valid');
    r.signal('SIGHUP');
    const p2 = await waitMetrics(r, (m) => val(m, 'airouter_config_reloads_total', { result: 'failed' }) === 1, 'reload failed counted', { timeout: 10000 });
    assert.equal(val(p2, 'airouter_config_generation'), 2, 'generation unchanged by a failed reload');
    assert.equal(val(p2, 'airouter_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(val(p2, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }), 5);

    // Reload removing gone-model (the first entry, so chat-ok moves up) and adding new-model.
    const s2 = apiState(await metrics(r));
    old = r.workers();
    r.writeConfig(routerConfig({ models: [M.chatOk, ['new-model', 'bk-mock', 'up-new']] }));
    r.signal('SIGHUP');
    const p3 = await waitMetrics(r, (m) => val(m, 'airouter_config_generation') === 3, 'generation 3', { timeout: 15000 });
    await h.waitFor(() => r.workers().length === 2 && r.workers().every((w) => !old.includes(w)), { timeout: 15000, what: 'old workers replaced' });
    const p3b = await metrics(r);
    assert.equal(val(p3b, 'airouter_config_reloads_total', { result: 'ok' }), 2);
    assert.equal(val(p3b, 'airouter_config_reloads_total', { result: 'failed' }), 1);
    assert.equal(val(p3, 'airouter_config_generation'), 3);
    const s3 = apiState(p3b);
    for (const [k, v] of Object.entries(s2)) {
      if (k.includes('"chat-ok"')) assert.equal(s3[k], v, `kept model's ${k} unchanged`);
    }
    for (const [k, v] of Object.entries(s3)) {
      if (k.includes('"new-model"')) assert.equal(v, 0, `new model starts from 0: ${k}`);
    }
    assert.equal(val(p3b, 'airouter_requests_total', { model: 'new-model' }), 0);
    await expectStatus(chat(r, 'gone-model', 'not any more'), 404);
    await chat(r, 'chat-ok', 'after second reload', undefined, c);
    await chat(r, 'new-model', 'brand new', undefined, c);
    // the 404 may have been served by the other worker, whose completion callback can trail the later answers
    const p4 = await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'new-model' }) === 1
      && val(m, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }) === 6
      && val(m, 'airouter_requests_total', { model: 'other', status_class: '4xx' }) >= 1, 'counted after the second reload');
    assert.equal(val(p4, 'airouter_requests_total', { model: 'other', status_class: '4xx' }), 1, 'removed model now counted as other');
    assert.equal(val(p4, 'airouter_requests_total', { model: 'new-model', backend: 'bk-mock', kind: 'chat', status_class: '2xx' }), 1);
  } finally { await stopRouter(r); }
});

test('kill -9 of a worker: counters kept, worker_restarts_total +1, workers back to 2', T, async () => {
  const r = await router(routerConfig({ models: [M.chatOk] }));
  try {
    for (let i = 0; i < 4; i++) await chat(r, 'chat-ok', `before kill ${i}`);
    await streamAll(r, 'chat-ok', 'stream before kill');
    const p0 = await waitMetrics(r, (m) => val(m, 'airouter_requests_total') === 5, '5 counted');
    const s0 = apiState(p0);
    const ws = r.workers();
    assert.equal(ws.length, 2);
    process.kill(ws[0], 'SIGKILL');
    await h.waitFor(() => { const w = r.workers(); return w.length === 2 && !w.includes(ws[0]); }, { timeout: 10000, what: 'killed worker replaced' });
    const p1 = await waitMetrics(r, (m) => val(m, 'airouter_worker_restarts_total') === 1 && val(m, 'airouter_workers') === 2, 'restart counted, 2 workers', { timeout: 10000 });
    assert.deepEqual(apiState(p1), s0, 'no counter lost with the killed worker');
    assert.equal(val(p1, 'airouter_requests_in_flight'), 0);
    assert.equal(val(p1, 'airouter_config_generation'), 1);
    for (let i = 0; i < 6; i++) {
      const q = await metricsFresh(r);
      assert.deepEqual(apiState(q), s0, `same totals from every worker (fetch ${i})`);
    }
    await chat(r, 'chat-ok', 'after kill');
    await waitMetrics(r, (m) => val(m, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }) === 6, 'counting goes on');
  } finally { await stopRouter(r); }
});

// ================================================================ access log

test('access log: tokens_in/out, retries, client_abort, stream, model_routed...; never a key or prompt text', T, async () => {
  const PROMPT = 'zebra-prompt-text-must-not-be-logged';
  const config = routerConfig({
    models: [M.chatOk, M.err500],
    bkExtra: 'api_key = "${BK_KEY}";',
    extra: 'api_keys = ( { key = "${KEY_A}"; name = "team-a"; } );',
  });
  const r = await router(config, { env: { BK_KEY, KEY_A } });
  try {
    const c = client(r, { apiKey: KEY_A });
    const ids = { ok: rid('log-ok'), st: rid('log-st'), err: rid('log-err'), nf: rid('log-nf'), bad: rid('log-badkey') };
    await c.chat.completions.create({ model: 'chat-ok', messages: msgs(`${PROMPT} one`) }, { headers: { 'x-request-id': ids.ok } });
    const s = await c.chat.completions.create({ model: 'chat-ok', messages: msgs(`${PROMPT} two`), stream: true }, { headers: { 'x-request-id': ids.st } });
    for await (const ch of s) void ch;
    await expectStatus(c.chat.completions.create({ model: 'err-model', messages: msgs(PROMPT) }, { headers: { 'x-request-id': ids.err } }), 502);
    await expectStatus(c.chat.completions.create({ model: 'nope-model', messages: msgs(PROMPT) }, { headers: { 'x-request-id': ids.nf } }), 404);
    await expectStatus(client(r, { apiKey: `${KEY_A}-wrong` }).chat.completions.create({ model: 'chat-ok', messages: msgs(PROMPT) }, { headers: { 'x-request-id': ids.bad } }), 401);

    const ok = await accessLine(r, ids.ok);
    const st = await accessLine(r, ids.st);
    const er = await accessLine(r, ids.err);
    const nf = await accessLine(r, ids.nf);
    await accessLine(r, ids.bad);
    const missing = [];
    for (const [what, l] of Object.entries({ ok, st, er, nf })) {
      for (const k of ['tokens_in', 'tokens_out', 'retries', 'client_abort', 'model', 'model_routed', 'backend', 'stream', 'ttfb_ms', 'error']) {
        if (!(k in l)) missing.push(`${what}.${k}`);
      }
      assert.equal(l.retries, 0, `${what}: retries 0`);
      assert.equal(l.client_abort, false, `${what}: client_abort false`);
      assert.ok(l.tokens_in === null || typeof l.tokens_in === 'number', `${what}: tokens_in number|null`);
      assert.ok(l.tokens_out === null || typeof l.tokens_out === 'number', `${what}: tokens_out number|null`);
    }
    const u1 = usageOf(`${PROMPT} one`);
    const u2 = usageOf(`${PROMPT} two`);
    assert.equal(ok.tokens_in, u1.prompt_tokens); assert.equal(ok.tokens_out, u1.completion_tokens);
    assert.equal(st.tokens_in, u2.prompt_tokens, 'stream tokens_in from the backend usage');
    assert.equal(st.tokens_out, u2.completion_tokens);
    assert.equal(ok.stream, false); assert.equal(st.stream, true);
    assert.equal(ok.model, 'chat-ok'); assert.equal(ok.backend, 'bk-mock'); assert.equal(ok.key, 'team-a');
    assert.equal(er.status, 502);
    assert.equal(er.tokens_in, null); assert.equal(er.tokens_out, null);
    assert.equal(nf.status, 404); assert.equal(nf.model, 'nope-model', 'model = the model asked');

    const all = fs.readFileSync(path.join(r.dir, 'access.log'), 'utf8') + r.log;
    for (const secret of [KEY_A, BK_KEY, PROMPT, 'SECRET']) {
      assert.ok(!all.includes(secret), `logs never contain ${secret}`);
    }
    // Field presence last, so that everything above is checked even when a field is missing.
    assert.deepEqual(missing, [], `access log lines lack fields: ${JSON.stringify({ ok, er })}`);
    assert.equal(typeof ok.ttfb_ms, 'number', 'ttfb_ms of a non-stream answer'); assert.equal(typeof st.ttfb_ms, 'number', 'ttfb_ms of a stream');
    assert.equal(ok.error, null, 'error null on success'); assert.equal(st.error, null);
    assert.ok(typeof er.error === 'string' && er.error.length > 0, `error reason on a failed request: ${JSON.stringify(er)}`);
    assert.ok(typeof nf.error === 'string' && nf.error.length > 0, `error reason for 404: ${JSON.stringify(nf)}`);
  } finally { await stopRouter(r); }
});

// ================================================================ traces

function tracingConfig(otlpUrl, { tracing = '', models = [M.chatOk, M.err500, M.text, M.embed, M.echo, M.slow5], workers = 2 } = {}) {
  return routerConfig({
    workers,
    models,
    extra: `tracing = { otlp_endpoint = "${otlpUrl}"; service_name = "airouter-test"; ${tracing} };`,
  });
}


// The SERVER span of a request (by X-Request-Id) and the spans of its trace.
async function traceOf(otlp, id, { children = 1, timeout = 8000 } = {}) {
  const [server] = await otlp.waitForSpans((s) => s.kind === 2 && s.attrs['airouter.request_id'] === id, timeout);
  const kids = children ? await otlp.waitForSpans((s) => s.traceId === server.traceId && s.kind === 3, timeout, { count: children }) : [];
  return { server, kids, client: kids[0] };
}

// Resolves once every span of request `id` the router will export has reached the collector.
// The request's spans are queued before its access-log line is written; the worker that served it
// exports its queue in order, one batch after the other. So a later request served by the same
// worker (tried on fresh connections until one lands there) is the barrier: once its SERVER span
// has come, so has every span of the earlier one.
async function spansSettled(r, otlp, id) { await workerSpansSettled(r, otlp, (await accessLine(r, id)).worker); }

// Resolves once every span queued so far by worker pid `worker` has reached the collector.
async function workerSpansSettled(r, otlp, worker) {
  for (let i = 0; i < 50; i++) {
    const bid = rid('barrier');
    const res = await request(r.base, '/v1/chat/completions', { method: 'POST', headers: { 'x-request-id': bid }, body: { model: 'echo-model', messages: msgs('barrier') } });
    assert.equal(res.status, 200, `barrier request: ${res.text}`);
    if ((await accessLine(r, bid)).worker !== worker) continue;
    await traceOf(otlp, bid);
    return;
  }
  assert.fail(`no barrier request reached worker ${worker}`);
}

function checkSpanBasics(s) {
  assert.ok(isHex(s.traceId, 32), `traceId lowercase hex: ${s.traceId}`);
  assert.ok(isHex(s.spanId, 16), `spanId lowercase hex: ${s.spanId}`);
  assert.ok(s.parentSpanId === undefined || s.parentSpanId === '' || isHex(s.parentSpanId, 16), `parentSpanId: ${s.parentSpanId}`);
  assert.equal(typeof s.startTimeUnixNano, 'string', 'startTimeUnixNano is a decimal string');
  assert.equal(typeof s.endTimeUnixNano, 'string', 'endTimeUnixNano is a decimal string');
  assert.ok(/^\d+$/.test(s.startTimeUnixNano) && /^\d+$/.test(s.endTimeUnixNano));
  assert.ok(BigInt(s.startTimeUnixNano) <= BigInt(s.endTimeUnixNano), 'start <= end');
  const now = BigInt(Date.now()) * 1000000n;
  assert.ok(BigInt(s.startTimeUnixNano) > now - 600n * 1000000000n && BigInt(s.startTimeUnixNano) <= now, 'start time is now-ish, in ns since the epoch');
  assert.equal(s.resource.attrs['service.name'], 'airouter-test');
  assert.equal(s.resource.attrs['service.version'], '0.1.0');
  assert.equal(s.scope.name, 'airouter');
}

let otlpMain; let RT;
async function mainTracingRouter() {
  if (!RT) {
    otlpMain = await collector();
    RT = await router(tracingConfig(otlpMain.url, { tracing: 'flush_interval_ms = 100;' }));
  }
  return RT;
}

test('traces: SERVER + CLIENT spans with GenAI attributes; backend gets the traceparent of the CLIENT span', T, async () => {
  await mainTracingRouter();
  const id = rid('tr-ok');
  const text = 'trace me please';
  const before = mock.requests.length;
  const res = await post(RT, '/v1/chat/completions', { model: 'chat-ok', messages: msgs(text) }, { 'x-request-id': id });
  assert.equal(res.status, 200);
  const { server, client: cl, kids } = await traceOf(otlpMain, id);
  await spansSettled(RT, otlpMain, id); // no third span may follow
  assert.equal(otlpMain.spans.filter((s) => s.traceId === server.traceId).length, 2, 'exactly 2 spans in the trace');
  assert.equal(kids.length, 1);
  checkSpanBasics(server); checkSpanBasics(cl);

  assert.equal(server.name, 'POST /v1/chat/completions');
  assert.equal(server.kind, 2, 'SERVER');
  assert.ok(!server.parentSpanId, 'root span (no client traceparent)');
  assert.equal(server.attrs['http.request.method'], 'POST');
  assert.equal(server.attrs['http.route'], '/v1/chat/completions');
  assert.equal(server.attrs['http.response.status_code'], 200);
  assert.ok('intValue' in rawAttr(server, 'http.response.status_code').value, 'status code is an int attribute');
  assert.equal(server.attrs['gen_ai.request.model'], 'chat-ok');
  assert.ok(!('error.type' in server.attrs), 'no error.type on success');
  assert.notEqual(server.status && server.status.code, 2, 'status not ERROR');

  assert.equal(cl.name, 'chat chat-ok');
  assert.equal(cl.kind, 3, 'CLIENT');
  assert.equal(cl.traceId, server.traceId);
  assert.equal(cl.parentSpanId, server.spanId, 'backend span is a child of the request span');
  assert.notEqual(cl.spanId, server.spanId);
  const u = usageOf(text);
  assert.equal(cl.attrs['gen_ai.operation.name'], 'chat');
  assert.equal(cl.attrs['gen_ai.system'], 'openai');
  assert.equal(cl.attrs['gen_ai.request.model'], 'chat-ok');
  assert.equal(cl.attrs['gen_ai.response.model'], 'up-chat-ok', 'response model = the backend model');
  assert.equal(cl.attrs['gen_ai.usage.input_tokens'], u.prompt_tokens);
  assert.equal(cl.attrs['gen_ai.usage.output_tokens'], u.completion_tokens);
  assert.ok('intValue' in rawAttr(cl, 'gen_ai.usage.input_tokens').value, 'usage is an int attribute');
  assert.equal(cl.attrs['server.address'], '127.0.0.1');
  assert.equal(cl.attrs['server.port'], mock.port);
  assert.equal(cl.attrs['airouter.backend'], 'bk-mock');
  assert.ok(BigInt(server.startTimeUnixNano) <= BigInt(cl.startTimeUnixNano) && BigInt(cl.endTimeUnixNano) <= BigInt(server.endTimeUnixNano),
    'the backend span lies within the request span');

  const brec = mock.requests.slice(before).find((q) => q.body && q.body.messages && q.body.messages[0].content === text);
  assert.ok(brec, 'backend got the request');
  assert.equal(brec.headers.traceparent, `00-${server.traceId}-${cl.spanId}-01`, 'backend traceparent = trace id + backend span id');
  // The backend's address stays in the trace only.
  assert.ok(!res.text.includes(String(mock.port)), 'backend port not in the response body');
  for (const [k, v] of res.headers) assert.ok(!v.includes(`:${mock.port}`), `backend address not in response header ${k}`);
  for (const q of otlpMain.requests) {
    assert.equal(q.method, 'POST'); assert.equal(q.path, '/v1/traces');
    assert.match(q.contentType, /^application\/json/);
  }
  assert.deepEqual(otlpMain.rejected.map((q) => q.error), [], 'the collector rejected nothing');
});

test('traces: stream usage, completions/embeddings/echo span names, errors marked', T, async () => {
  await mainTracingRouter();
  const c = client(RT);
  const ids = { st: rid('tr-st'), cm: rid('tr-cm'), em: rid('tr-em'), echo: rid('tr-echo'), err: rid('tr-err'), nf: rid('tr-nf') };
  const stText = 'stream trace words here';
  await streamAll(RT, 'chat-ok', stText, { c, reqOpts: { headers: { 'x-request-id': ids.st } } });
  await c.completions.create({ model: 'text-model', prompt: 'a prompt' }, { headers: { 'x-request-id': ids.cm } });
  await c.embeddings.create({ model: 'embed-model', input: 'embed this' }, { headers: { 'x-request-id': ids.em } });
  await chat(RT, 'echo-model', 'echo echo', { headers: { 'x-request-id': ids.echo } }, c);
  await expectStatus(chat(RT, 'err-model', 'fail', { headers: { 'x-request-id': ids.err } }, c), 502);
  await expectStatus(chat(RT, 'no-such-model', 'nf', { headers: { 'x-request-id': ids.nf } }, c), 404);

  const st = await traceOf(otlpMain, ids.st);
  assert.equal(st.client.name, 'chat chat-ok');
  assert.equal(st.client.attrs['gen_ai.usage.input_tokens'], usageOf(stText).prompt_tokens, 'stream usage on the backend span');
  assert.equal(st.client.attrs['gen_ai.usage.output_tokens'], usageOf(stText).completion_tokens);
  assert.equal(st.server.attrs['http.response.status_code'], 200);

  const cm = await traceOf(otlpMain, ids.cm);
  assert.equal(cm.server.name, 'POST /v1/completions');
  assert.equal(cm.server.attrs['http.route'], '/v1/completions');
  assert.equal(cm.client.name, 'text_completion text-model');
  assert.equal(cm.client.attrs['gen_ai.operation.name'], 'text_completion');
  assert.equal(cm.client.attrs['gen_ai.response.model'], 'up-text');

  const em = await traceOf(otlpMain, ids.em);
  assert.equal(em.server.name, 'POST /v1/embeddings');
  assert.equal(em.client.name, 'embeddings embed-model');
  assert.equal(em.client.attrs['gen_ai.operation.name'], 'embeddings');
  assert.equal(em.client.attrs['gen_ai.usage.input_tokens'], 2);

  const ec = await traceOf(otlpMain, ids.echo);
  assert.equal(ec.client.attrs['gen_ai.system'], 'echo');
  assert.equal(ec.client.attrs['airouter.backend'], 'echo');
  assert.equal(ec.client.parentSpanId, ec.server.spanId);

  const er = await traceOf(otlpMain, ids.err);
  assert.equal(er.server.attrs['http.response.status_code'], 502);
  assert.equal(er.server.status && er.server.status.code, 2, 'request span status ERROR on 5xx');
  assert.ok(typeof er.server.attrs['error.type'] === 'string' && er.server.attrs['error.type'].length > 0, 'error.type set');
  assert.equal(er.client.status && er.client.status.code, 2, 'backend span status ERROR on a backend 5xx');
  assert.equal(er.client.attrs['gen_ai.response.model'], 'up-error-500-m');

  const nf = await traceOf(otlpMain, ids.nf, { children: 0 });
  assert.equal(nf.server.attrs['http.response.status_code'], 404);
  assert.notEqual(nf.server.status && nf.server.status.code, 2, '404 is not a server ERROR');
  await spansSettled(RT, otlpMain, ids.nf); // a span that must not come would have come by now
  assert.equal(otlpMain.spans.filter((s) => s.traceId === nf.server.traceId && s.kind === 3).length, 0, 'no backend span without a backend call');
});

test('traces: a client traceparent is continued; an invalid one starts a new trace', T, async () => {
  await mainTracingRouter();
  const trace = hex(32); const parent = hex(16);
  const id = rid('tr-tp');
  const before = mock.requests.length;
  await chat(RT, 'chat-ok', 'continue my trace', { headers: { 'x-request-id': id, traceparent: `00-${trace}-${parent}-01` } });
  const { server, client: cl } = await traceOf(otlpMain, id);
  assert.equal(server.traceId, trace, 'same trace id as the client');
  assert.equal(server.parentSpanId, parent, "request span's parent = the client's span");
  assert.equal(cl.traceId, trace);
  assert.equal(cl.parentSpanId, server.spanId);
  const brec = mock.requests.slice(before).find((q) => q.body && q.body.messages && q.body.messages[0].content === 'continue my trace');
  assert.equal(brec.headers.traceparent, `00-${trace}-${cl.spanId}-01`);

  const id2 = rid('tr-tp-bad');
  await chat(RT, 'chat-ok', 'bad traceparent', { headers: { 'x-request-id': id2, traceparent: `00-${'0'.repeat(32)}-${parent}-01` } });
  const t2 = await traceOf(otlpMain, id2);
  assert.ok(isHex(t2.server.traceId, 32) && t2.server.traceId !== '0'.repeat(32), 'an all-zero trace id is not continued');
  assert.ok(!t2.server.parentSpanId, 'new root span');

  const id3 = rid('tr-tp-junk');
  await chat(RT, 'chat-ok', 'junk traceparent', { headers: { 'x-request-id': id3, traceparent: 'not-a-traceparent' } });
  const t3 = await traceOf(otlpMain, id3);
  assert.ok(!t3.server.parentSpanId, 'junk traceparent ignored');
});

test('traces: exported_total matches what the collector got, nothing dropped', T, async () => {
  await mainTracingRouter();
  await idle(RT);
  for (const w of RT.workers()) await workerSpansSettled(RT, otlpMain, w); // and every worker has exported them
  const p = await waitMetrics(RT, (m) => val(m, 'airouter_trace_spans_exported_total') === otlpMain.spans.length,
    `exported_total == ${otlpMain.spans.length} spans received`, { timeout: 8000 });
  assert.equal(val(p, 'airouter_trace_spans_dropped_total'), 0);
  assert.ok(otlpMain.spans.length >= 10, `spans received: ${otlpMain.spans.length}`);
  assert.deepEqual(otlpMain.rejected.map((q) => q.error), []);
  await stopRouter(RT);
  RT = null;
});

async function timedRequests(r, n, what) {
  const c = client(r);
  const times = [];
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const s = Date.now();
    const a = i % 5 === 4
      ? (await streamAll(r, 'chat-ok', `${what} ${i}`, { c })).length
      : (await chat(r, 'chat-ok', `${what} ${i}`, undefined, c)).choices.length;
    assert.ok(a > 0);
    times.push(Date.now() - s);
  }
  const total = Date.now() - t0;
  // a request that waited for the export would take the slow collector's 2 s; 1.5 s leaves room for a loaded machine
  const slow = times.filter((t) => t >= 1500);
  assert.deepEqual(slow, [], `${what}: every request < 1.5 s (times ${times.join(',')})`);
  assert.ok(total < 15000, `${what}: ${n} requests in ${total} ms`);
  return times;
}

test('traces: collector down (closed port) -> requests do not wait, spans dropped and counted', T, async () => {
  const closed = await h.freePort();
  const r = await router(tracingConfig(`http://127.0.0.1:${closed}`, { tracing: 'flush_interval_ms = 100; queue_size = 16; batch_size = 8;' }));
  try {
    await timedRequests(r, 50, 'collector down');
    // the last request is counted in its completion callback, which can trail the client's read of it
    const p = await waitMetrics(r, (m) => val(m, 'airouter_trace_spans_dropped_total') > 0
      && val(m, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }) >= 50, 'spans dropped, 50 requests counted', { timeout: 10000 });
    assert.equal(val(p, 'airouter_trace_spans_exported_total'), 0, 'nothing exported');
    assert.equal(val(p, 'airouter_requests_total', { model: 'chat-ok', status_class: '2xx' }), 50);
  } finally { await stopRouter(r); }
});

test('traces: collector slow (2 s per answer) -> requests do not wait; spans still arrive', T, async () => {
  const slow = await collector({ delayMs: 2000 });
  const r = await router(tracingConfig(slow.url, { tracing: 'flush_interval_ms = 100;' }));
  try {
    await timedRequests(r, 50, 'collector slow');
    await slow.waitForSpans((s) => s.kind === 2, 10000);
  } finally { await stopRouter(r); await slow.close(); collectors.delete(slow); }
});

test('traces: collector answering 503 -> requests do not wait; export resumes when it recovers', T, async () => {
  const c503 = await collector({ status: 503 });
  const r = await router(tracingConfig(c503.url, { tracing: 'flush_interval_ms = 100;' }));
  try {
    await timedRequests(r, 20, 'collector 503');
    await h.waitFor(() => c503.requests.length > 0, { timeout: 5000, what: 'export attempts reach the collector' });
    assert.equal(c503.spans.length, 0);
    c503.setStatus(200);
    const id = rid('tr-recovered');
    await chat(r, 'chat-ok', 'after recovery', { headers: { 'x-request-id': id } });
    await c503.waitForSpans((s) => s.attrs['airouter.request_id'] === id, 10000);
    assert.deepEqual(c503.rejected.map((q) => q.error), []);
  } finally { await stopRouter(r); await c503.close(); collectors.delete(c503); }
});

test('traces: QUIT flushes queued spans (flush_interval_ms = 60000)', T, async () => {
  const otlp = await collector();
  const r = await router(tracingConfig(otlp.url, { tracing: 'flush_interval_ms = 60000; batch_size = 256;' }));
  const ids = [rid('q0'), rid('q1'), rid('q2')];
  try {
    for (const id of ids) await chat(r, 'chat-ok', `quit flush ${id}`, { headers: { 'x-request-id': id } });
    r.signal('SIGQUIT');
    let timer;
    const ex = await Promise.race([r.exited, new Promise((res) => { timer = setTimeout(() => res('timeout'), 15000); })]);
    clearTimeout(timer);
    assert.notEqual(ex, 'timeout', 'router exited after QUIT');
    const server = await otlp.waitForSpans((s) => s.kind === 2 && ids.includes(s.attrs['airouter.request_id']), 3000, { count: 3 });
    const traces = new Set(server.map((s) => s.traceId));
    assert.equal(traces.size, 3);
    const kids = await otlp.waitForSpans((s) => s.kind === 3 && traces.has(s.traceId), 3000, { count: 3 });
    for (const k of kids) assert.ok(server.some((s) => s.spanId === k.parentSpanId), 'backend span has its request span as parent');
  } finally { await stopRouter(r); await otlp.close(); collectors.delete(otlp); }
});
