'use strict';
// End-to-end tests of resilience: several targets per model, balancing, retries and
// failover, circuit breaking, health checks, per-key limits, timeouts and the connection limit.
// Fault injection uses the mock backend (scripts/mock-openai.js: knobs in the backend model name,
// and the per-mock switches failNext/failEvery/failStatus/retryAfter/latencyMs/modelsStatus); "a target down"
// is a closed loopback port. What reached a backend is measured at the mock's request log.
//
// Routers (each started once, all on 127.0.0.1):
//   MAIN   workers=2, retry attempts=2 (back-off 50 ms), attempts_header, circuit 3 failures / 2 s,
//          hide_unavailable_models, health-checked backends
//   SINGLE workers=2, retry attempts=1, circuit 3 failures / 2 s: circuit breaking and timeouts
//   KEYS   workers=2, api_keys with rpm / max_concurrent / tpm limits, attempts header off
//   DOWN   workers=2, every target down (health checks on closed ports)
//   CONN   workers=1, limits.max_connections = 2
// The failure-ratio circuit-breaker tests each start their own router (workers=2, retry attempts=2,
// one ordered model over a flaky and a healthy mock) with that test's circuit_breaker group.
//
// "Across workers" is made deterministic by pinning keep-alive connections and finding which
// worker process owns each one's accepted socket (/proc/net/tcp inode -> /proc/PID/fd).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const OpenAI = require('openai');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { request: httpRequest } = require('./lib/http.js');
const { sseData } = require('./lib/sse.js');
const { assertOpenAIError } = require('./lib/assert.js');
const { idle } = require('./lib/metrics.js');
const { startMock } = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };
const sleep = h.sleep;
const { monoSecondsLeftInMinute, awayFromMinuteEdge } = h;
const mocks = [];
const routers = [];

// ---- helpers ----

function chatBody(model, text = 'hello world', extra = {}) {
  return { model, messages: [{ role: 'user', content: text }], ...extra };
}

// One HTTP request (a POST unless opts.method says otherwise); agent false = a fresh connection.
const request = (base, path, opts = {}) => httpRequest(base, path, { method: 'POST', ...opts });
const chat = (base, model, opts = {}) => request(base, '/v1/chat/completions', { ...opts, body: chatBody(model, opts.text, opts.extra) });

const client = (base, apiKey = 'sk-none') => clients.openai(base, { apiKey });

// Inference requests a mock received for one backend model.
const seen = (mock, model) => mock.requests.filter((r) => r.method === 'POST' && r.model === model);
const healthGets = (mock) => mock.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1/models'));

// Which of pids owns the TCP socket with this local and remote port.
function socketOwner(localPort, remotePort, pids) {
  let inode = null;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let txt;
    try { txt = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of txt.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10) continue;
      if (parseInt(c[1].split(':').pop(), 16) === localPort && parseInt(c[2].split(':').pop(), 16) === remotePort && c[9] !== '0') { inode = c[9]; break; }
    }
    if (inode) break;
  }
  if (!inode) return null;
  const want = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds;
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === want) return pid; } catch { /* gone */ }
    }
  }
  return null;
}

// Keep-alive connections pinned to known workers: { [pid]: [conn...] } with at least perWorker
// connections for each of the router's workers. conn = { agent, localPort, worker }.
async function pinConnections(router, perWorker) {
  const pids = router.workers();
  assert.ok(pids.length >= 2, `expected 2 workers, got ${pids}`);
  const by = Object.fromEntries(pids.map((p) => [p, []]));
  // Which worker accepts a connection is the kernel's choice; on a busy machine one worker can win
  // many times in a row, so keep trying for a while, pausing now and then to let the other run.
  for (let i = 0; i < 300 && pids.some((p) => by[p].length < perWorker); i++) {
    if (i > 0) await h.sleep(i % 10 === 0 ? 25 : 2);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
    const r = await request(router.base, '/health', { method: 'GET', agent });
    assert.equal(r.status, 200);
    const owner = await h.waitFor(() => socketOwner(router.port, r.localPort, pids), { timeout: 2000, what: 'socket owner' });
    const conn = { agent, localPort: r.localPort, worker: owner };
    if (by[owner].length < perWorker) by[owner].push(conn); else agent.destroy(); /* not needed: close it now */
  }
  for (const p of pids) assert.ok(by[p].length >= perWorker, `could not place ${perWorker} connections on worker ${p}`);
  return by;
}

// A request on a pinned connection; fails if the connection was not the pinned one.
async function onConn(conn, base, path, opts) {
  const r = await request(base, path, { ...opts, agent: conn.agent });
  assert.equal(r.localPort, conn.localPort, 'the pinned connection was replaced');
  return r;
}

function releaseConns(by) { for (const list of Object.values(by)) for (const c of list) c.agent.destroy(); }

const assertError = (r, status, code, type) => assertOpenAIError(r, status, code, { type });

// ---- fixtures ----

let mA; let mB; let m429; let mSick; let mWell; let mC; let mT; let mK; let mConn;
let deadPort; let deadPort2; let deadPort3; let deadPort4;
let MAIN; let SINGLE; let KEYS; let DOWN; let CONN;

const KEY_RPM = 'sk-rpm5-0000000000000001';
const KEY_CONC = 'sk-conc2-000000000000002';
const KEY_TPM = 'sk-tpm20-000000000000003';
const KEY_FREE = 'sk-free-0000000000000004';

function mainConfig() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 2; };
retry = { attempts = 2; backoff_ms = 50; max_backoff_ms = 200; deadline = 20; attempts_header = true; };
circuit_breaker = { failures = 3; cooldown = 2; };
hide_unavailable_models = true;
backends = (
  { name = "a"; type = "openai"; url = "${mA.url}"; },
  { name = "b"; type = "openai"; url = "${mB.url}"; },
  { name = "r429"; type = "openai"; url = "${m429.url}"; },
  { name = "dead"; type = "openai"; url = "http://127.0.0.1:${deadPort}/v1"; connect_timeout = 1; },
  { name = "gone"; type = "openai"; url = "http://127.0.0.1:${deadPort2}/v1"; connect_timeout = 1;
    health_check = { interval = 1; timeout = 1; }; },
  { name = "sick"; type = "openai"; url = "${mSick.url}"; health_check = { interval = 1; timeout = 1; }; },
  { name = "well"; type = "openai"; url = "${mWell.url}"; health_check = { path = "/models"; interval = 1; timeout = 1; }; },
  { name = "slowfb"; type = "openai"; url = "${mA.url}"; first_byte_timeout = 1; }
);
models = (
  { name = "wdown"; targets = ( { backend = "dead"; backend_model = "wd-dead"; }, { backend = "a"; backend_model = "wd-live"; } ); },
  { name = "rl-single"; backend = "r429"; backend_model = "rl-one"; },
  { name = "rl-two"; strategy = "ordered";
    targets = ( { backend = "a"; backend_model = "rl-x-error-429-retry-after-5"; }, { backend = "b"; backend_model = "rl-y"; } ); },
  { name = "rl-exhaust"; backend = "a"; backend_model = "rl-z-error-429"; },
  { name = "lb"; strategy = "least_inflight";
    targets = ( { backend = "a"; backend_model = "lb-a-slow-stream-20x100"; }, { backend = "b"; backend_model = "lb-b"; } ); },
  { name = "lb-pin"; backend = "a"; backend_model = "lb-a-slow-stream-20x100"; },
  { name = "wrr"; targets = ( { backend = "a"; backend_model = "wrr-a"; weight = 3; }, { backend = "b"; backend_model = "wrr-b"; weight = 1; } ); },
  { name = "ord"; strategy = "ordered";
    targets = ( { backend = "gone"; backend_model = "ord-gone"; }, { backend = "a"; backend_model = "ord-a"; }, { backend = "b"; backend_model = "ord-b"; } ); },
  { name = "fb-main"; backend = "gone"; backend_model = "fb-gone"; fallbacks = ["fb-alt"]; },
  { name = "fb-dead"; backend = "dead"; backend_model = "fbd-dead"; fallbacks = ["fb-alt"]; },
  { name = "fb-alt"; backend = "b"; backend_model = "fb-alt-m"; },
  { name = "hc"; targets = ( { backend = "sick"; backend_model = "hc-sick"; }, { backend = "well"; backend_model = "hc-well"; } ); },
  { name = "hc2"; targets = ( { backend = "gone"; backend_model = "hc2-gone"; }, { backend = "well"; backend_model = "hc2-well"; } ); },
  { name = "all-gone"; backend = "gone"; backend_model = "ag"; },
  { name = "die"; strategy = "ordered";
    targets = ( { backend = "a"; backend_model = "die-stream-then-die"; }, { backend = "b"; backend_model = "die-ok"; } ); },
  { name = "plain"; backend = "a"; backend_model = "plain-m"; },
  { name = "att"; strategy = "ordered"; targets = ( { backend = "dead"; backend_model = "att-dead"; }, { backend = "a"; backend_model = "att-a"; } ); },
  { name = "tmo-retry"; backend = "slowfb"; backend_model = "tr-hang"; }
);
`;
}

function singleConfig() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 2; };
retry = { attempts = 1; };
circuit_breaker = { failures = 3; cooldown = 2; };
backends = (
  { name = "c"; type = "openai"; url = "${mC.url}"; },
  { name = "fbt"; type = "openai"; url = "${mT.url}"; first_byte_timeout = 1; },
  { name = "idle"; type = "openai"; url = "${mT.url}"; idle_timeout = 1; },
  { name = "total"; type = "openai"; url = "${mT.url}"; first_byte_timeout = 10; timeout = 2; }
);
models = (
  { name = "cb"; backend = "c"; backend_model = "cb-m"; },
  { name = "t-hang"; backend = "fbt"; backend_model = "t-hang"; },
  { name = "t-slowfirst"; backend = "fbt"; backend_model = "t-slow-first-byte-3000"; },
  { name = "t-stall"; backend = "idle"; backend_model = "t-stall-2-3000"; },
  { name = "t-total"; backend = "total"; backend_model = "t-slow-body-4000"; },
  { name = "t-total-nohdr"; backend = "total"; backend_model = "t-slow-stream-40x100"; }
);
`;
}

function keysConfig() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 2; };
retry = { attempts = 1; attempts_header = false; };
backends = ( { name = "k"; type = "openai"; url = "${mK.url}"; } );
models = (
  { name = "k-fast"; backend = "k"; backend_model = "k-fast"; },
  { name = "k-slow"; backend = "k"; backend_model = "k-delay-1000"; }
);
api_keys = (
  { key = "${KEY_RPM}"; name = "rpm5"; rpm = 5; },
  { key = "${KEY_CONC}"; name = "conc2"; max_concurrent = 2; },
  { key = "${KEY_TPM}"; name = "tpm20"; tpm = 20; },
  { key = "${KEY_FREE}"; name = "free"; }
);
`;
}

function downConfig() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 2; };
hide_unavailable_models = true;
backends = (
  { name = "g1"; type = "openai"; url = "http://127.0.0.1:${deadPort3}/v1"; connect_timeout = 1; health_check = { interval = 1; timeout = 1; }; },
  { name = "g2"; type = "openai"; url = "http://127.0.0.1:${deadPort4}/v1"; connect_timeout = 1; health_check = { interval = 1; timeout = 1; }; }
);
models = (
  { name = "d1"; backend = "g1"; backend_model = "d1"; },
  { name = "d2"; targets = ( { backend = "g1"; backend_model = "d2a"; }, { backend = "g2"; backend_model = "d2b"; } ); }
);
`;
}

function connConfig() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 1;
log = { level = "info"; };
limits = { drain_timeout = 2; max_connections = 2; };
backends = ( { name = "c"; type = "openai"; url = "${mConn.url}"; } );
models = (
  { name = "slow"; backend = "c"; backend_model = "cn-slow-first-byte-1500"; },
  { name = "fast"; backend = "c"; backend_model = "cn-fast"; }
);
`;
}

before(async () => {
  for (let i = 0; i < 9; i++) mocks.push(await startMock({ port: 0 }));
  [mA, mB, m429, mSick, mWell, mC, mT, mK, mConn] = mocks;
  mSick.modelsStatus = 500;
  [deadPort, deadPort2, deadPort3, deadPort4] = [await h.freePort(), await h.freePort(), await h.freePort(), await h.freePort()];
  // each is listed as soon as it runs, so that after() stops it even if a later start fails
  routers.push(MAIN = await h.startRouter(mainConfig()));
  routers.push(SINGLE = await h.startRouter(singleConfig()));
  routers.push(KEYS = await h.startRouter(keysConfig()));
  routers.push(DOWN = await h.startRouter(downConfig()));
  routers.push(CONN = await h.startRouter(connConfig()));
  for (const r of routers) await h.waitFor(() => r.workers().length === (r === CONN ? 1 : 2), { what: 'workers' });
});

after(async () => {
  for (const r of routers) await r.stop();
  for (const m of mocks) await m.close();
});

// ---- failover ----

test('one target down: 30 non-streaming requests on a weighted model with a dead and a live target all succeed', T, async () => {
  const c = client(MAIN.base);
  const results = [];
  for (let batch = 0; batch < 6; batch++) {
    results.push(...await Promise.all(Array.from({ length: 5 }, (_, i) =>
      c.chat.completions.create({ model: 'wdown', messages: [{ role: 'user', content: `ping ${batch} ${i}` }] })
        .then((r) => ({ ok: true, r }), (e) => ({ ok: false, e })))));
  }
  const failed = results.filter((x) => !x.ok);
  assert.deepEqual(failed.map((x) => `${x.e.status} ${x.e.message}`), [], 'client-visible errors');
  for (const { r } of results) {
    assert.equal(r.model, 'wdown');
    assert.match(r.choices[0].message.content, /^you said: ping \d \d$/);
  }
  assert.equal(seen(mA, 'wd-live').length, 30, 'every request was answered by the live target');
  // Each failed try is counted; the dead target's circuit (3 failures) soon kept it out of rotation.
  // A request is counted in its completion callback, which can trail the client's read of the answer:
  // scrape until all 30 are counted (requests_total is bumped last, so the rest is in by then).
  const wdownDone = (text) => [...text.matchAll(/^airouter_requests_total\{model="wdown",[^}]*\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
  const met = await h.waitFor(async () => {
    const x = await request(MAIN.base, '/metrics', { method: 'GET' });
    return wdownDone(x.text) >= 30 && x;
  }, { timeout: 5000, what: '30 wdown requests counted in /metrics' });
  const m = /airouter_backend_errors_total\{backend="dead",reason="connect"\} (\d+)/.exec(met.text);
  assert.ok(m, 'backend error counter for the dead backend');
  assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 6, `connect failures on the dead target: ${m[1]} (circuit opens after 3)`);
});

test('429 with Retry-After: a single target is waited out, then the retry succeeds', T, async () => {
  m429.failStatus = 429;
  m429.retryAfter = '1';
  m429.failNext = 1;
  const r = await chat(MAIN.base, 'rl-single');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.model, 'rl-single');
  assert.ok(r.ms >= 900, `answered after ${r.ms} ms, before the 1 s Retry-After ran out`);
  assert.ok(r.ms < 4000, `answered after ${r.ms} ms`);
  const got = seen(m429, 'rl-one');
  assert.equal(got.length, 2, 'the backend saw the rate-limited try and the retry');
  assert.equal(got[0].status, 429);
  assert.ok(got[1].time - got[0].time >= 950, `retry came ${got[1].time - got[0].time} ms after the 429 (Retry-After: 1)`);
  assert.equal(r.headers['x-airouter-attempts'], '2');
});

test('429 with Retry-After: with two targets the request moves to the other at once, and the 429 target stays blocked', T, async () => {
  const x = 'rl-x-error-429-retry-after-5';
  const r = await chat(MAIN.base, 'rl-two');
  assert.equal(r.status, 200, r.text);
  assert.ok(r.ms < 2000, `moved to the other target after ${r.ms} ms, not after the 5 s Retry-After`);
  assert.equal(seen(mA, x).length, 1);
  assert.equal(seen(mB, 'rl-y').length, 1);
  assert.equal(r.json.model, 'rl-two');
  // Blocked for 5 s on every worker: new requests on either worker go straight to the other target.
  const by = await pinConnections(MAIN, 4);
  let more;
  try {
    more = await Promise.all(Object.values(by).flat().map((cn) => onConn(cn, MAIN.base, '/v1/chat/completions', { body: chatBody('rl-two') })));
  } finally { releaseConns(by); }
  for (const m of more) { assert.equal(m.status, 200, m.text); assert.equal(m.headers['x-airouter-attempts'], '1'); }
  assert.equal(seen(mA, x).length, 1, 'no request reached the rate-limited target during its Retry-After');
  assert.equal(seen(mB, 'rl-y').length, 9);
});

test('429 with Retry-After: when tries are exhausted the client gets the 429 with Retry-After', T, async () => {
  const r = await chat(MAIN.base, 'rl-exhaust');
  assertError(r, 429, 'rate_limit_exceeded', 'requests');
  assert.equal(r.headers['retry-after'], '1');
  assert.ok(r.ms >= 900 && r.ms < 4000, `429 after ${r.ms} ms (one Retry-After waited out between the 2 tries)`);
  assert.equal(seen(mA, 'rl-z-error-429').length, 2);
  assert.equal(r.headers['x-airouter-attempts'], '2');
  assert.ok(!r.text.includes('rl-z-error-429'), `backend model name leaked: ${r.text}`);
});

test('fallbacks: a model whose every target is down is answered by its fallback under its own name', T, async () => {
  await h.waitFor(() => MAIN.log.includes("health check: backend 'gone' is unhealthy"), { what: "backend 'gone' unhealthy" });
  const c = client(MAIN.base);
  const before0 = seen(mB, 'fb-alt-m').length;
  const { data: r, response } = await c.chat.completions.create({ model: 'fb-main', messages: [{ role: 'user', content: 'fall back' }] }).withResponse();
  assert.equal(r.model, 'fb-main');
  assert.equal(r.choices[0].message.content, 'you said: fall back');
  assert.equal(seen(mB, 'fb-alt-m').length, before0 + 1, 'the answer came from the fallback backend');
  assert.equal(response.headers.get('x-airouter-attempts'), '1', 'the unhealthy target was not tried');
});

test('fallbacks: when every target of the model fails (closed port, circuit still closed), the fallback answers', T, async () => {
  const before0 = seen(mB, 'fb-alt-m').length;
  const r = await chat(MAIN.base, 'fb-dead', { text: 'fall back again' });
  assert.equal(r.status, 200, `expected the fallback's answer after the only target failed; got ${r.status} ${r.text}`);
  assert.equal(r.json.model, 'fb-dead');
  assert.equal(r.json.choices[0].message.content, 'you said: fall back again');
  assert.equal(seen(mB, 'fb-alt-m').length, before0 + 1);
});

// ---- balancing ----

test('ordered strategy uses the first healthy target', T, async () => {
  await h.waitFor(() => MAIN.log.includes("health check: backend 'gone' is unhealthy"), { what: "backend 'gone' unhealthy" });
  const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => chat(MAIN.base, 'ord', { text: `o${i}` })));
  for (const r of rs) { assert.equal(r.status, 200, r.text); assert.equal(r.headers['x-airouter-attempts'], '1'); }
  assert.equal(seen(mA, 'ord-a').length, 10, 'all went to the first healthy target');
  assert.equal(seen(mB, 'ord-b').length, 0);
});

test('weighted round-robin split matches the weights (3:1 over 40 requests)', T, async () => {
  for (let batch = 0; batch < 5; batch++) {
    const rs = await Promise.all(Array.from({ length: 8 }, () => chat(MAIN.base, 'wrr')));
    for (const r of rs) assert.equal(r.status, 200, r.text);
  }
  const a = seen(mA, 'wrr-a').length; const b = seen(mB, 'wrr-b').length;
  assert.equal(a + b, 40);
  assert.ok(Math.abs(a - 30) <= 5, `split a=${a} b=${b}, expected about 30:10`);
});

test('least_inflight balances across workers: new requests avoid the target busy with streams held on the other worker', T, async () => {
  const K = 3;
  const slow = 'lb-a-slow-stream-20x100';
  const by = await pinConnections(MAIN, K + 1);
  const [w1, w2] = Object.keys(by);
  try {
    // K slow streams on target A, all held by worker w1.
    const held = by[w1].slice(0, K).map((cn) => onConn(cn, MAIN.base, '/v1/chat/completions', { body: chatBody('lb-pin', 'hold', { stream: true }) }));
    await h.waitFor(() => seen(mA, slow).length >= K, { timeout: 3000, what: 'streams started' });
    // Worker w2 holds nothing itself: only shared in-flight counts tell it that A is busy.
    const placed = [];
    for (const cn of [...by[w2], by[w1][K]]) {
      const r = await onConn(cn, MAIN.base, '/v1/chat/completions', { body: chatBody('lb', 'where') });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, 'lb');
      placed.push(r.json.choices[0].message.content);
    }
    assert.equal(seen(mA, slow).length, K, `a new request went to the busy target (answers: ${JSON.stringify(placed)})`);
    assert.equal(seen(mB, 'lb-b').length, K + 2);
    const done = await Promise.all(held);
    for (const d of done) { assert.equal(d.status, 200); assert.ok(d.text.includes('[DONE]')); }
  } finally { releaseConns(by); }
  // With the streams finished, both loads are 0 again: the first target is eligible once more.
  await h.waitFor(async () => {
    const r = await chat(MAIN.base, 'lb');
    return r.status === 200 && seen(mA, slow).length > K;
  }, { timeout: 8000, interval: 100, what: 'target A picked again after its streams ended' });
});

// ---- streams ----

test('a stream broken mid-way ends with an SSE error event and is not retried', T, async () => {
  const die = 'die-stream-then-die';
  const r = await chat(MAIN.base, 'die', { extra: { stream: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /text\/event-stream/);
  const events = sseData(r.text);
  assert.ok(!events.includes('[DONE]'), 'no [DONE] after a broken stream');
  const last = JSON.parse(events[events.length - 1]);
  assert.ok(last.error && typeof last.error.message === 'string', `last event is an error: ${events[events.length - 1]}`);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.length >= 1 && chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'die'), r.text);
  assert.equal(seen(mA, die).length, 1, 'the broken stream was not retried');
  assert.equal(seen(mB, 'die-ok').length, 0, 'nothing went to the other target');

  // The official client sees the error event as an error while iterating.
  const stream = await client(MAIN.base).chat.completions.create({ model: 'die', stream: true, messages: [{ role: 'user', content: 'x y z' }] });
  let n = 0;
  await assert.rejects(async () => { for await (const c of stream) { n++; assert.equal(c.model, 'die'); } });
  assert.ok(n >= 1);
  assert.equal(seen(mA, die).length, 2);
  assert.equal(seen(mB, 'die-ok').length, 0);

  // Non-streaming, the broken answer never reached the client: it is retried on the other target.
  const nr = await chat(MAIN.base, 'die', { text: 'retry me' });
  assert.equal(nr.status, 200, nr.text);
  assert.equal(nr.json.choices[0].message.content, 'you said: retry me');
  assert.equal(nr.headers['x-airouter-attempts'], '2');
  assert.equal(seen(mB, 'die-ok').length, 1);
});

// ---- circuit breaker ----

test('circuit opens after 3 failures, keeps traffic off the target for the cooldown, probes once, reopens on failure and closes on success', T, async () => {
  const n = () => seen(mC, 'cb-m').length;
  // Connections pinned to both workers: the failures are spread over them, so the circuit only
  // opens if the count is shared, and it must hold on both.
  const by = await pinConnections(SINGLE, 2);
  const [w1, w2] = Object.keys(by);
  const cb = (cn) => onConn(cn, SINGLE.base, '/v1/chat/completions', { body: chatBody('cb') });
  mC.failStatus = 500;
  mC.failNext = Infinity;
  try {
    for (const cn of [by[w1][0], by[w2][0], by[w1][0]]) assertError(await cb(cn), 502, 'backend_error', 'server_error');
  } finally { releaseConns(by); }
  const opened = Date.now();
  assert.equal(n(), 3);
  await h.waitFor(() => SINGLE.log.includes('circuit open'), { timeout: 2000, what: 'circuit open log' });

  // Open: fresh connections (both workers) get a fast 503 and nothing reaches the mock.
  let during = 0;
  while (Date.now() < opened + 1500) {
    const r = await chat(SINGLE.base, 'cb');
    assertError(r, 503, 'model_unavailable', 'server_error');
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 3, `Retry-After ${r.headers['retry-after']}`);
    assert.ok(r.ms < 500, `503 took ${r.ms} ms`);
    during++;
    await sleep(100); // spread the requests over the open time
  }
  assert.ok(during >= 5);
  await idle(SINGLE); // a forward, had there been one, has reached the mock by now
  assert.equal(n(), 3, 'a request reached the target while its circuit was open');

  // Half-open: exactly one probe among concurrent requests. It fails: the circuit reopens.
  // A real wait: the cooldown (2 s from the opening) has to run out.
  await sleep(opened + 2150 - Date.now());
  // The probe is slow so that the 3 other requests reach the router while it is in flight, even
  // on a busy machine.
  mC.failNext = 1;
  mC.latencyMs = 800;
  let rs = await Promise.all(Array.from({ length: 4 }, () => chat(SINGLE.base, 'cb')));
  const reopened = Date.now();
  assert.equal(n(), 4, 'exactly one probe reached the target');
  assert.deepEqual(rs.map((r) => r.status).sort(), [502, 503, 503, 503]);
  for (const r of rs.filter((x) => x.status === 503)) assertError(r, 503, 'model_unavailable');
  while (Date.now() < reopened + 1200) {
    assertError(await chat(SINGLE.base, 'cb'), 503, 'model_unavailable');
    await sleep(150); // spread the requests over the open time
  }
  await idle(SINGLE);
  assert.equal(n(), 4, 'a request reached the target after the failed probe reopened the circuit');

  // Next cooldown over: one probe succeeds and closes the circuit (a real wait, as above).
  await sleep(reopened + 2150 - Date.now());
  mC.latencyMs = 800;
  rs = await Promise.all(Array.from({ length: 4 }, () => chat(SINGLE.base, 'cb')));
  assert.equal(n(), 5, 'exactly one probe reached the target');
  assert.deepEqual(rs.map((r) => r.status).sort(), [200, 503, 503, 503]);
  mC.latencyMs = 0;
  rs = await Promise.all(Array.from({ length: 6 }, () => chat(SINGLE.base, 'cb')));
  for (const r of rs) assert.equal(r.status, 200, r.text);
  assert.equal(n(), 11, 'the closed circuit lets every request through');
});

// ---- timeouts ----

test('timeouts fire at the configured times (first byte 1 s, idle 1 s, total 2 s)', T, async () => {
  const [hang, slowFirst, stall, total] = await Promise.all([
    chat(SINGLE.base, 't-hang'),
    chat(SINGLE.base, 't-slowfirst', { extra: { stream: true } }),
    chat(SINGLE.base, 't-stall', { extra: { stream: true } }),
    chat(SINGLE.base, 't-total'),
  ]);
  assertError(hang, 504, 'backend_timeout');
  assert.ok(hang.ms >= 900 && hang.ms <= 3000, `first_byte_timeout=1: 504 after ${hang.ms} ms`);
  assertError(slowFirst, 504, 'backend_timeout');
  assert.ok(slowFirst.ms >= 900 && slowFirst.ms <= 2900, `streaming, first_byte_timeout=1: 504 after ${slowFirst.ms} ms`);
  assert.equal(stall.status, 200);
  const ev = sseData(stall.text);
  assert.ok(!ev.includes('[DONE]'));
  assert.ok(JSON.parse(ev[ev.length - 1]).error, `stream ends with an error event: ${stall.text}`);
  assert.ok(ev.length >= 3, 'events before the stall were relayed');
  assert.ok(stall.ms >= 900 && stall.ms <= 2900, `idle_timeout=1 (stall of 3 s): stream ended after ${stall.ms} ms`);
  assertError(total, 504, 'backend_timeout');
  assert.ok(total.ms >= 1800 && total.ms <= 3800, `timeout=2 (headers at once, body complete after 4 s): 504 after ${total.ms} ms`);
  assert.equal(seen(mT, 't-hang').length, 1, 'attempts = 1: no retry');
});

test('the total timeout also bounds a non-streaming call whose answer has not started (timeout=2 < first_byte_timeout=10)', T, async () => {
  const r = await chat(SINGLE.base, 't-total-nohdr');
  assertError(r, 504, 'backend_timeout');
  assert.ok(r.ms >= 1800 && r.ms <= 3800, `timeout=2 (nothing sent for 4 s): 504 after ${r.ms} ms`);
});

test('a timed-out try is retried (attempts = 2) and the final answer is 504', T, async () => {
  const r = await chat(MAIN.base, 'tmo-retry');
  assertError(r, 504, 'backend_timeout', 'server_error');
  assert.ok(r.ms >= 1800 && r.ms <= 4500, `two 1 s first-byte timeouts: 504 after ${r.ms} ms`);
  assert.equal(seen(mA, 'tr-hang').length, 2);
  assert.equal(r.headers['x-airouter-attempts'], '2');
});

// ---- attempts header ----

test('x-airouter-attempts is sent when enabled (and only then)', T, async () => {
  const p = await chat(MAIN.base, 'plain');
  assert.equal(p.status, 200);
  assert.equal(p.headers['x-airouter-attempts'], '1');
  const a = await chat(MAIN.base, 'att');
  assert.equal(a.status, 200, a.text);
  assert.equal(a.headers['x-airouter-attempts'], '2', 'the dead first target, then the live one');
  assert.equal(seen(mA, 'att-a').length, 1);
  for (const [k, v] of Object.entries(a.headers)) {
    if (k === 'x-airouter-attempts') continue;
    assert.ok(!/att-|127\.0\.0\.1:\d+/.test(`${k}: ${v}`), `a header tells which target answered: ${k}: ${v}`);
  }
  const k = await chat(KEYS.base, 'k-fast', { headers: { authorization: `Bearer ${KEY_FREE}` } });
  assert.equal(k.status, 200, k.text);
  assert.equal(k.headers['x-airouter-attempts'], undefined, 'attempts_header = false');
});

// ---- health checks ----

test('health checks: requests avoid a backend whose /models fails or whose port is closed; one worker checks at ~1/interval', T, async () => {
  await h.waitFor(() => MAIN.log.includes("health check: backend 'sick' is unhealthy") &&
    MAIN.log.includes("health check: backend 'gone' is unhealthy") &&
    MAIN.log.includes("health check: backend 'well' is healthy"), { what: 'health check results' });
  const t0 = Date.now();
  const sick0 = healthGets(mSick).length; const well0 = healthGets(mWell).length;
  const rs = await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => chat(MAIN.base, 'hc', { text: `h${i}` })),
    ...Array.from({ length: 10 }, (_, i) => chat(MAIN.base, 'hc2', { text: `g${i}` })),
  ]);
  for (const r of rs) { assert.equal(r.status, 200, r.text); assert.equal(r.headers['x-airouter-attempts'], '1'); }
  assert.equal(seen(mSick, 'hc-sick').length, 0, 'a request went to the backend failing its health check');
  assert.equal(seen(mWell, 'hc-well').length, 10);
  assert.equal(seen(mWell, 'hc2-well').length, 10);

  // A real wait: the rate of health checks is measured over about 4 s.
  await sleep(4200 - (Date.now() - t0));
  const window = (Date.now() - t0) / 1000;
  const pids = MAIN.workers();
  for (const [name, m, n0] of [['sick', mSick, sick0], ['well', mWell, well0]]) {
    const gets = healthGets(m).slice(n0);
    assert.ok(gets.length >= 2 && gets.length <= Math.ceil(window) + 1,
      `backend '${name}': ${gets.length} health GETs in ${window.toFixed(1)} s with interval = 1 and 2 workers (one checker expected)`);
    for (const g of gets) assert.equal(g.path, '/v1/models');
    // Which worker sent them: the owner of the router side of each still-open connection.
    const owners = new Set();
    for (const cid of new Set(gets.map((g) => g.conn))) {
      const c = m.connections.find((x) => x.id === cid);
      if (!c || c.closedAt) continue;
      const o = socketOwner(c.remotePort, m.port, pids);
      if (o) owners.add(o);
    }
    assert.equal(owners.size, 1, `backend '${name}': health-check connections owned by workers {${[...owners]}} (expected exactly one of ${pids})`);
  }
});

test('hide_unavailable_models hides a model with no usable target; /ready stays 200 while some target is usable', T, async () => {
  await h.waitFor(() => MAIN.log.includes("health check: backend 'gone' is unhealthy"), { what: "backend 'gone' unhealthy" });
  const r = await request(MAIN.base, '/v1/models', { method: 'GET' });
  assert.equal(r.status, 200);
  const ids = r.json.data.map((m) => m.id);
  assert.ok(!ids.includes('all-gone'), `all-gone listed: ${ids}`);
  for (const id of ['wdown', 'plain', 'hc', 'hc2', 'ord', 'fb-alt']) assert.ok(ids.includes(id), `${id} missing: ${ids}`);
  const u = await chat(MAIN.base, 'all-gone');
  assertError(u, 503, 'model_unavailable', 'server_error');
  assert.ok(Number(u.headers['retry-after']) >= 1, `Retry-After: ${u.headers['retry-after']}`);
  const ready = await request(MAIN.base, '/ready', { method: 'GET' });
  assert.equal(ready.status, 200, ready.text);
});

test('/ready is 503 no_healthy_target when every target is down; /v1/models hides them all; requests get 503 model_unavailable', T, async () => {
  const ready = await h.waitFor(async () => {
    const r = await request(DOWN.base, '/ready', { method: 'GET' });
    return r.status === 503 ? r : null;
  }, { timeout: 6000, what: '/ready 503' });
  assertError(ready, 503, 'no_healthy_target', 'server_error');
  const health = await request(DOWN.base, '/health', { method: 'GET' });
  assert.equal(health.status, 200);
  const list = await request(DOWN.base, '/v1/models', { method: 'GET' });
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.data, []);
  for (const model of ['d1', 'd2']) {
    const r = await chat(DOWN.base, model);
    assertError(r, 503, 'model_unavailable', 'server_error');
    assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.headers['retry-after']}`);
    assert.ok(r.ms < 1000, `503 after ${r.ms} ms`);
  }
});

// ---- per-key limits ----

test('per-key rpm holds exactly across 2 workers: 5 of 8 concurrent requests succeed, 3 get 429 with Retry-After and x-ratelimit-*', T, async () => {
  await awayFromMinuteEdge(8);
  const by = await pinConnections(KEYS, 4);
  const conns = Object.values(by).flat();
  const k0 = seen(mK, 'k-fast').length;
  try {
    const rs = await Promise.all(conns.map((cn) => onConn(cn, KEYS.base, '/v1/chat/completions', {
      body: chatBody('k-fast'), headers: { authorization: `Bearer ${KEY_RPM}` },
    })));
    const ok = rs.filter((r) => r.status === 200); const limited = rs.filter((r) => r.status === 429);
    assert.equal(ok.length, 5, `statuses ${rs.map((r) => r.status)}`);
    assert.equal(limited.length, 3);
    const left = monoSecondsLeftInMinute();
    for (const r of limited) {
      assertError(r, 429, 'rate_limit_exceeded', 'requests');
      const ra = Number(r.headers['retry-after']);
      assert.ok(ra >= 1 && ra <= 60 && Math.abs(ra - left) <= 2, `Retry-After ${r.headers['retry-after']} (seconds left in the window: ${left})`);
      assert.equal(r.headers['x-ratelimit-limit-requests'], '5');
      assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
      assert.match(r.headers['x-ratelimit-reset-requests'], /^\d+s$/);
    }
    for (const r of ok) {
      assert.equal(r.headers['x-ratelimit-limit-requests'], '5');
      assert.match(r.headers['x-ratelimit-reset-requests'], /^\d+s$/);
    }
    assert.deepEqual(ok.map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort(), [0, 1, 2, 3, 4]);
    assert.equal(seen(mK, 'k-fast').length - k0, 5, 'only admitted requests reached the backend');
    // Still over the limit afterwards, on either worker.
    const again = await chat(KEYS.base, 'k-fast', { headers: { authorization: `Bearer ${KEY_RPM}` } });
    assertError(again, 429, 'rate_limit_exceeded', 'requests');
    // The official client sees a RateLimitError.
    await assert.rejects(client(KEYS.base, KEY_RPM).chat.completions.create({ model: 'k-fast', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && e.code === 'rate_limit_exceeded');
  } finally { releaseConns(by); }
});

test('per-key max_concurrent holds exactly across 2 workers: of 4 concurrent slow requests exactly 2 get 429', T, async () => {
  const by = await pinConnections(KEYS, 2);
  const conns = Object.values(by).flat();
  try {
    const rs = await Promise.all(conns.map((cn) => onConn(cn, KEYS.base, '/v1/chat/completions', {
      body: chatBody('k-slow'), headers: { authorization: `Bearer ${KEY_CONC}` },
    })));
    const ok = rs.filter((r) => r.status === 200); const limited = rs.filter((r) => r.status === 429);
    assert.equal(ok.length, 2, `statuses ${rs.map((r) => r.status)}`);
    assert.equal(limited.length, 2);
    for (const r of limited) {
      assertError(r, 429, 'rate_limit_exceeded', 'requests');
      assert.equal(r.headers['retry-after'], '1');
      assert.ok(r.ms < 800, `429 after ${r.ms} ms (should not wait for the running requests)`);
    }
    for (const r of ok) assert.ok(r.ms >= 900);
  } finally { releaseConns(by); }
  // The slots are given back when the requests complete.
  const after2 = await h.waitFor(async () => {
    const r = await chat(KEYS.base, 'k-fast', { headers: { authorization: `Bearer ${KEY_CONC}` } });
    return r.status === 200 ? r : null;
  }, { timeout: 3000, what: 'a request admitted after the slow ones finished' });
  assert.equal(after2.status, 200);
});

test('per-key tpm: once usage exceeds the limit, the next request (on the other worker) gets 429 type tokens', T, async () => {
  await awayFromMinuteEdge(6);
  const by = await pinConnections(KEYS, 1);
  const [w1, w2] = Object.keys(by);
  const auth = { authorization: `Bearer ${KEY_TPM}` };
  try {
    const text = 'one two three four five six seven eight nine ten eleven twelve';
    const first = await onConn(by[w1][0], KEYS.base, '/v1/chat/completions', { body: chatBody('k-fast', text), headers: { ...auth, 'x-request-id': 'tpm-first-req' } });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.usage.total_tokens, 26);
    assert.equal(first.headers['x-ratelimit-limit-tokens'], '20');
    assert.equal(first.headers['x-ratelimit-remaining-tokens'], '20');
    assert.match(first.headers['x-ratelimit-reset-tokens'], /^\d+s$/);
    // Tokens are counted when the request completes (its access-log line is written after that).
    await h.waitFor(() => KEYS.log.includes('"request_id":"tpm-first-req"'), { timeout: 3000, what: 'first request completed' });
    const second = await onConn(by[w2][0], KEYS.base, '/v1/chat/completions', { body: chatBody('k-fast', 'hi'), headers: auth });
    assertError(second, 429, 'rate_limit_exceeded', 'tokens');
    assert.ok(Number(second.headers['retry-after']) >= 1, `Retry-After: ${second.headers['retry-after']}`);
    assert.equal(second.headers['x-ratelimit-remaining-tokens'], '0');
    assert.equal(second.headers['x-ratelimit-limit-tokens'], '20');
  } finally { releaseConns(by); }
});

// ---- connection limit ----

test('connection limit: over limits.max_connections a new request gets a fast 503 server_overloaded, not a hang', T, async () => {
  // Two slow requests in flight and two idle connected sockets: 4 connections on the only worker.
  const slow = [chat(CONN.base, 'slow'), chat(CONN.base, 'slow')];
  await h.waitFor(() => seen(mConn, 'cn-slow-first-byte-1500').length === 2, { timeout: 2000, what: 'slow requests at the mock' });
  const idle = [];
  for (let i = 0; i < 2; i++) {
    idle.push(await new Promise((resolve, reject) => {
      const s = net.connect(CONN.port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    }));
  }
  // Counted once the worker has accepted them (its fd table holds them), not when connect() returns.
  await h.waitFor(() => idle.every((s) => socketOwner(CONN.port, s.localPort, CONN.workers()) !== null),
    { timeout: 3000, what: 'the idle connections accepted by the worker' });
  try {
    const r = await chat(CONN.base, 'fast');
    assertError(r, 503, 'server_overloaded', 'server_error');
    assert.ok(r.ms < 1000, `503 after ${r.ms} ms`);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers.connection, 'close');
    assert.equal(seen(mConn, 'cn-fast').length, 0);
    // Over a kept-alive client (the official one) too.
    await assert.rejects(client(CONN.base).chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e.status === 503);
  } finally {
    for (const s of idle) s.destroy();
  }
  for (const r of await Promise.all(slow)) assert.equal(r.status, 200, r.text);
  const ok = await h.waitFor(async () => {
    const r = await chat(CONN.base, 'fast');
    return r.status === 200 ? r : null;
  }, { timeout: 3000, what: 'a request admitted once connections closed' });
  assert.equal(ok.json.model, 'fast');
});

// ---- circuit breaker: failure ratio ----

// A router (workers=2, attempts=2) with one ordered model: target A (backend fa, model fr-a) first,
// then B (fb, fr-b), each on its own fresh mock; `circuit` is the circuit_breaker group's content.
// A fails every other try (tries 2, 4, 6, ... get a 500), so its consecutive failures never pass 1.
async function flakySetup(circuit) {
  const a = await startMock({ port: 0 });
  const b = await startMock({ port: 0 });
  mocks.push(a, b);
  const r = await h.startRouter(`
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 2; };
retry = { attempts = 2; backoff_ms = 10; max_backoff_ms = 50; deadline = 20; attempts_header = true; };
circuit_breaker = { ${circuit} };
backends = (
  { name = "fa"; type = "openai"; url = "${a.url}"; },
  { name = "fb"; type = "openai"; url = "${b.url}"; }
);
models = (
  { name = "flaky"; strategy = "ordered";
    targets = ( { backend = "fa"; backend_model = "fr-a"; }, { backend = "fb"; backend_model = "fr-b"; } ); }
);
`);
  routers.push(r);
  await h.waitFor(() => r.workers().length === 2, { what: 'workers' });
  a.failStatus = 500;
  a.failEvery = 2;
  return { r, a, b, nA: () => seen(a, 'fr-a').length, nB: () => seen(b, 'fr-b').length };
}

// One chat request with the official client: the answer and the x-airouter-attempts header.
async function ask(c, text) {
  const { data, response } = await c.chat.completions.create({ model: 'flaky', messages: [{ role: 'user', content: text }] }).withResponse();
  assert.equal(data.model, 'flaky');
  assert.equal(data.choices[0].message.content, `you said: ${text}`);
  return { data, attempts: response.headers.get('x-airouter-attempts') };
}

// The official client over a connection pinned to one worker (pinConnections); checks after each
// call that the agent still holds only that connection.
function pinnedClient(base, conn) {
  const c = clients.openai(base, { apiKey: 'sk-none', httpAgent: conn.agent });
  return {
    worker: conn.worker,
    async ask(text) {
      const r = await ask(c, text);
      const socks = [...Object.values(conn.agent.sockets), ...Object.values(conn.agent.freeSockets)].flat();
      assert.ok(socks.length >= 1 && socks.every((s) => s.localPort === conn.localPort),
        `the pinned connection (port ${conn.localPort}) was replaced: ${socks.map((s) => s.localPort)}`);
      return r;
    },
  };
}

// n sequential requests on a flaky setup whose circuit must stay closed: A gets every first try
// (the last one too, after the others left A at 50% failed), fails every other one, and B answers those.
async function alternatingStaysClosed(s, n) {
  const c = client(s.r.base);
  for (let i = 1; i <= n; i++) {
    const { attempts } = await ask(c, `alt ${i}`);
    assert.equal(attempts, i % 2 ? '1' : '2', `request ${i}: A ${i % 2 ? 'answers' : 'fails, then B answers'}`);
    assert.equal(s.nA(), i, `request ${i}: target A skipped (its circuit opened); log:\n${s.r.log}`);
  }
  assert.equal(s.nB(), Math.floor(n / 2));
  assert.equal(seen(s.a, 'fr-a').filter((x) => x.status === 500).length, Math.floor(n / 2));
  assert.ok(!s.r.log.includes('circuit open'), `circuit opened:\n${s.r.log}`);
}

test('failure_ratio opens the circuit of a target failing every other try (never 2 in a row) after min_requests tries, across workers; one probe after the cooldown closes it', T, async () => {
  const s = await flakySetup('failures = 100; cooldown = 3; failure_ratio = 0.5; window = 30; min_requests = 6;');
  const by = await pinConnections(s.r, 1);
  const [w1, w2] = Object.keys(by);
  // Alternate the workers: each one alone sees 3 of A's 6 tries (one worker all of the failures),
  // so the ratio only reaches min_requests if the counts are shared.
  const pc = [pinnedClient(s.r.base, by[w1][0]), pinnedClient(s.r.base, by[w2][0])];
  let t6; let t6done;
  try {
    for (let i = 1; i <= 6; i++) {
      if (i === 6) t6 = Date.now();
      const { attempts } = await pc[i % 2].ask(`flaky ${i}`);
      assert.equal(attempts, i % 2 ? '1' : '2', `request ${i}: A ${i % 2 ? 'answers' : 'fails, then B answers'}`);
      assert.equal(s.nA(), i, `request ${i} did not reach target A first`);
      if (i === 5) assert.ok(!s.r.log.includes('circuit open'), `circuit opened before A's 6th try:\n${s.r.log}`);
    }
    t6done = Date.now();
    assert.equal(s.nB(), 3);
    assert.deepEqual(seen(s.a, 'fr-a').map((x) => x.status), [200, 500, 200, 500, 200, 500]);
    await h.waitFor(() => /fa\/fr-a: circuit open for .*of its tries in the last/.test(s.r.log),
      { timeout: 3000, what: 'the failure-ratio circuit-open log line' });
    assert.ok(!s.r.log.includes('consecutive failures'), s.r.log);

    // Open: requests on both workers go straight to B (one try each), nothing reaches A. Only
    // requests sent well inside the cooldown (3 s from before the 6th request) are counted on.
    let during = 0;
    while (during < 10 && Date.now() < t6 + 2000) {
      const { attempts } = await pc[during % 2].ask(`open ${during}`);
      assert.equal(attempts, '1', `request ${during} during the cooldown tried more than one target`);
      during++;
    }
    assert.ok(during >= 4, `only ${during} requests fitted in the cooldown`);
    await idle(s.r);
    assert.equal(s.nA(), 6, 'a request reached target A while its circuit was open');
    assert.equal(s.nB(), 3 + during);
  } finally { releaseConns(by); }

  // Cooldown over: A is healthy again; of 4 concurrent requests exactly one (the probe, slowed so
  // the others arrive while it is in flight) reaches A, the others go to B; all succeed. A real
  // wait: the cooldown (3 s) has to run out.
  await sleep(t6done + 3200 - Date.now());
  s.a.failEvery = 0;
  s.a.latencyMs = 800;
  const c = client(s.r.base);
  const b0 = s.nB();
  const rs = await Promise.all([0, 1, 2, 3].map((i) => ask(c, `probe ${i}`)));
  assert.equal(s.nA(), 7, 'exactly one probe reached target A');
  assert.equal(s.nB(), b0 + 3);
  for (const r of rs) assert.equal(r.attempts, '1');
  // The successful probe closed the circuit: A (first in order) takes every request again.
  s.a.latencyMs = 0;
  for (let i = 0; i < 4; i++) assert.equal((await ask(c, `closed ${i}`)).attempts, '1');
  assert.equal(s.nA(), 11, 'the closed circuit lets A take the traffic again');
  assert.equal(s.nB(), b0 + 3);
});

test('failure_ratio waits for min_requests: with min_requests = 50, 21 tries of which 10 failed (50% at the 20th) leave the circuit closed', T, async () => {
  const s = await flakySetup('failures = 100; cooldown = 3; failure_ratio = 0.5; window = 30; min_requests = 50;');
  await alternatingStaysClosed(s, 21);
});

test('without failure_ratio a target failing every other try keeps its circuit closed (failures = 100 consecutive are never reached)', T, async () => {
  const s = await flakySetup('failures = 100; cooldown = 3;');
  await alternatingStaysClosed(s, 21);
});

test('airouter -t refuses failure_ratio outside (0, 1] and names it', T, async () => {
  const dir = h.tmpDir();
  const f = path.join(dir, 'ratio.conf');
  const check = (ratio) => {
    fs.writeFileSync(f, `listen = "127.0.0.1:1";
backends = ( { name = "e"; type = "echo"; } );
models = ( { name = "m"; backend = "e"; } );
circuit_breaker = { failures = 5; cooldown = 2; failure_ratio = ${ratio}; window = 30; min_requests = 6; };
`);
    return spawnSync(h.BIN, ['-t', '-c', f], { encoding: 'utf8', timeout: 10000 });
  };
  try {
    for (const bad of ['1.5', '0', '0.0', '-0.5']) {
      const r = check(bad);
      assert.equal(r.status, 1, `failure_ratio = ${bad}: exit status ${r.status} ${r.signal || ''} (stderr: ${r.stderr})`);
      assert.match(r.stderr, /failure_ratio/, `failure_ratio = ${bad}: the message names the setting`);
      assert.match(r.stderr, /test failed/);
    }
    for (const good of ['0.5', '1', '1.0']) {
      const r = check(good);
      assert.equal(r.status, 0, `failure_ratio = ${good} is valid (stderr: ${r.stderr})`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
