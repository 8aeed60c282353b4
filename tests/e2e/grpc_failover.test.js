'use strict';
// The one failover loop behind the ai_router gRPC API: what HTTP requests get, gRPC calls get
// too. A backend's 429 with Retry-After is waited out and the call retried, and a client that
// cancels while the loop backs off ends the loop at once: the backend sees no further try.
// Backends: the mock OpenAI server (scripts/mock-openai.js), its m.failNext / m.failStatus
// switches and its error-500 knob; what reached it is read from its request log.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness.js');
const g = require('./lib/grpc.js');
const { startMock } = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };

let mock;
let QUICK; // back-off far shorter than the backend's Retry-After: only waiting that out can answer
let SLOW; // back-off of 1.5 to 3 s (half to all of the step): time to cancel during it
const clients = [];

function config(backoffMs) {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 1;
log = { level = "info"; };
limits = { drain_timeout = 5; };
retry = { attempts = 3; backoff_ms = ${backoffMs}; max_backoff_ms = ${backoffMs}; deadline = 20; };
circuit_breaker = { failures = 1000; cooldown = 1; };
backends = (
  { name = "mock"; type = "openai"; url = "${mock.url}"; },
  { name = "flaky"; type = "openai"; url = "${mock.url}"; }
);
models = (
  { name = "limited"; backend = "mock"; backend_model = "gf-limited"; },
  { name = "failing"; backend = "flaky"; backend_model = "gf-error-500"; }
);
`;
}

function client(router) {
  const c = g.newClient(router.gport);
  clients.push(c);
  return c;
}

const seen = (model) => mock.requests.filter((r) => r.method === 'POST' && r.model === model);

before(async () => {
  mock = await startMock({ port: 0 });
  QUICK = await g.startWithGrpc(config(20));
  SLOW = await g.startWithGrpc(config(3000));
});

after(async () => {
  for (const c of clients) { try { c.close(); } catch { } }
  for (const r of [QUICK, SLOW]) if (r) await r.stop();
  if (mock) await mock.close();
});

test('a backend 429 with Retry-After is waited out, then the call is retried and answered (unary and streaming)', T, async () => {
  for (const kind of ['unary', 'streaming']) {
    const n0 = seen('gf-limited').length;
    mock.failStatus = 429;
    mock.retryAfter = '1';
    mock.failNext = 1;
    const r = kind === 'unary'
      ? await g.unary(client(QUICK), { model: 'limited' }).done
      : await g.streaming(client(QUICK), { model: 'limited' }).done;
    assert.ifError(r.err);
    const text = kind === 'unary' ? r.res.content : r.msgs.map((m) => m.content).join('');
    assert.equal(text, 'you said: hello world', kind);
    const got = seen('gf-limited').slice(n0);
    assert.equal(got.length, 2, `${kind}: the backend got the refused try and the retry`);
    assert.equal(got[0].status, 429);
    assert.equal(got[1].status, 200);
    assert.ok(got[1].time - got[0].time >= 950, `${kind}: retried ${got[1].time - got[0].time} ms after the 429 (Retry-After: 1)`);
  }
});

test('a client that cancels during the back-off ends the loop at once: the backend sees no further try', T, async () => {
  const R = SLOW;
  const n0 = seen('gf-error-500').length;
  const logFrom = R.log.length;
  const { call, done } = g.unary(client(R), { model: 'failing' });
  // the first try failed and the loop is backing off
  const backoff = await h.waitFor(() => /\[info\].*try 1 on backend 'flaky' failed \(backend_5xx\); retrying in (\d+) ms/.exec(R.log.slice(logFrom)),
    { timeout: 10000, what: `the back-off after the first try\n${R.log.slice(logFrom)}` });
  const backoffMs = Number(backoff[1]);
  assert.ok(backoffMs >= 1500, `back-off of ${backoffMs} ms`);
  const cancelledAt = Date.now();
  call.cancel();
  const r = await done;
  assert.equal(r.err && r.err.code, g.S.CANCELLED);
  // The call's access-log line is written once its handling is over: no try can come after it.
  const line = await h.waitFor(() => g.grpcAccessLines({ log: R.log.slice(logFrom) })
    .find((l) => l.path === '/ai_router.AIRouter/RouteRequest' && l.backend === 'flaky'),
  { timeout: 10000, what: `the call's access-log line\n${R.log.slice(logFrom)}` });
  assert.equal(line.error, 'client_abort');
  const endedAfterCancel = Date.parse(line.time) - cancelledAt;
  assert.ok(endedAfterCancel < backoffMs / 2,
    `the loop ended ${endedAfterCancel} ms after the cancel, as if the ${backoffMs} ms back-off had run on`);
  assert.equal(seen('gf-error-500').length - n0, 1, 'the backend got one try only');
});
