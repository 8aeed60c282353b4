'use strict';
// End-to-end tests of hostile backends: every buffer a backend fills is bounded by
// limits.max_event_bytes (a stream event or line) or by the whole-answer cap, the call ends with a 502
// (nothing sent yet) or a last error event (stream begun), the worker's memory stays bounded, and a
// client that leaves stops the relay at once on every route.
//
// One router, one worker (so its memory can be read in /proc), limits.max_event_bytes = 1 MiB, no
// retries; a second one (BIG) with the largest limit, 64 MiB, for a client that leaves while a huge
// line is being read. The hostile streams are knobs of the mock backends (scripts/mock-openai.js: huge-line-N,
// huge-line-late-N, huge-open-N, no-blank-line, endless-MS; scripts/mock-anthropic.js: huge-delta-N).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const h = require('./lib/harness.js');
const { newClient } = require('./lib/grpc.js');
const clients = require('./lib/client.js');
const { sseEvents } = require('./lib/sse.js');
const { startMock } = require('../../scripts/mock-openai.js');
const { startMock: startAnthropic } = require('../../scripts/mock-anthropic.js');
const { startMock: startTriton } = require('../../scripts/mock-triton.js');

const T = { timeout: 60000 };
const MAX_EVENT = 1024 * 1024;
let mock, anth, triton, router, big, client, worker, grpcPort;

before(async () => {
  mock = await startMock();
  anth = await startAnthropic({ apiKey: 'sk-ant-test' });
  triton = await startTriton({ port: 0 });
  const oa = (name, backendModel, extra = '') => `{ name = "${name}"; backend = "oa"; backend_model = "${backendModel}"; ${extra} }`;
  grpcPort = await h.freePort();
  router = await h.startRouter(`
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:${grpcPort}";
workers = 1;
log = { level = "info"; };
limits = { drain_timeout = 5; max_event_bytes = ${MAX_EVENT}; };
retry = { attempts = 1; };
backends = (
  { name = "oa"; type = "openai"; url = "${mock.url}"; idle_timeout = 30; },
  { name = "an"; type = "anthropic"; url = "${anth.url}"; api_key = "sk-ant-test"; idle_timeout = 30; },
  { name = "t"; type = "triton"; url = "${triton.url}"; idle_timeout = 30; }
);
models = (
  ${oa('huge-first', 'huge-line-64')},
  ${oa('huge-late', 'huge-line-late-64')},
  ${oa('huge-open', 'huge-open-256')},
  ${oa('no-blank', 'no-blank-line')},
  ${oa('fits', 'huge-line-late-0')},
  ${oa('endless', 'endless-20')},
  ${oa('endless-folded', 'endless-0', 'backend_stream = true;')},
  ${oa('resp-huge', 'huge-line-late-64', 'kinds = ["responses"];')},
  ${oa('resp-open', 'huge-open-256', 'kinds = ["responses"];')},
  ${oa('resp-endless', 'endless-20', 'kinds = ["responses"];')},
  ${oa('resp-endless-fast', 'endless-0', 'kinds = ["responses"];')},
  { name = "claude-huge"; backend = "an"; backend_model = "claude-huge-delta-64"; },
  { name = "trt-huge"; backend = "t"; backend_model = "ensemble+big=2000000"; profile = "trtllm"; prompt_format = "chatml"; }
);
`);
  big = await h.startRouter(`
listen = "127.0.0.1:@PORT@";
workers = 1;
limits = { drain_timeout = 5; max_event_bytes = 67108864; };
retry = { attempts = 1; };
backends = ( { name = "oa"; type = "openai"; url = "${mock.url}"; idle_timeout = 30; } );
models = ( { name = "resp-open"; backend = "oa"; backend_model = "huge-open-256"; kinds = ["responses"]; } );
`);
  client = clients.openai(router, { apiKey: 'unused', timeout: T.timeout });
  [worker] = router.workers();
});

after(async () => {
  if (router) await router.stop();
  if (big) await big.stop();
  if (mock) await mock.close();
  if (anth) await anth.close();
  if (triton) await triton.close();
});

// kB of /proc/PID/status field (VmRSS, VmHWM...).
function memKb(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// POSTs a JSON body with fetch; returns the response (body unread).
function post(path, body, signal) {
  return fetch(`${router.base}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal,
  });
}

function chatBody(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: 'hello world' }], ...extra };
}

// The mock's record of the latest request for backend model name `model`.
function lastRequest(m, model) {
  return m.requests.filter((r) => r.model === model).at(-1);
}

// The bytes of the big part a mock had written when the relay stopped reading: the relay must have
// stopped near the limit, not read the backend's 64 or 256 MiB (socket buffers hold a few MiB).
async function assertStoppedEarly(m, model) {
  const rec = lastRequest(m, model);
  assert.ok(rec, `the mock saw ${model}`);
  await m.waitClosed(rec, 10000);
  assert.ok(rec.bigBytes < 24 * MAX_EVENT, `the relay stopped reading after ${rec.bigBytes} bytes`);
}

test('a huge first event ends a chat stream with a 502 before anything is sent', T, async () => {
  await assert.rejects(async () => {
    const stream = await client.chat.completions.create(chatBody('huge-first', { stream: true }));
    for await (const chunk of stream) assert.fail(`no chunk expected, got ${JSON.stringify(chunk)}`);
  }, (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.code, 'backend_error');
    assert.match(e.message, new RegExp(`larger than ${MAX_EVENT} bytes`));
    assert.doesNotMatch(e.message, /127\.0\.0\.1|huge-line/);
    return true;
  });
  await assertStoppedEarly(mock, 'huge-line-64');
  assert.match(router.log, /passed limits\.max_event_bytes/);
});

test('a huge event after the stream began ends it with a last error event', T, async () => {
  const res = await post('/v1/chat/completions', chatBody('huge-late', { stream: true }));
  assert.equal(res.status, 200);
  const events = sseEvents(await res.text());
  const last = events.at(-1);
  assert.ok(events.length >= 3, 'the events before the huge one were relayed');
  assert.equal(events[0].json.choices[0].delta.role, 'assistant');
  assert.ok(last.json && last.json.error, `a last error event, got ${last.data.slice(0, 200)}`);
  assert.equal(last.json.error.code, 'backend_error');
  assert.match(last.json.error.message, /larger than 1048576 bytes/);
  assert.ok(!events.some((e) => e.data === '[DONE]'), 'no [DONE] after an error');
  await assertStoppedEarly(mock, 'huge-line-late-64');
});

test('an event within the limit is relayed whole', T, async () => {
  // huge-line-late-0: the same stream with an empty "x" part, so the path is the same.
  const res = await post('/v1/chat/completions', chatBody('fits', { stream: true }));
  const events = sseEvents(await res.text());
  assert.equal(events.at(-1).data, '[DONE]');
  assert.equal(events.filter((e) => e.json && e.json.error).length, 0);
});

test('a line that never ends and a stream that never ends its event keep the worker small', T, async () => {
  const hwmBefore = memKb(worker, 'VmHWM');
  for (const model of ['huge-open', 'no-blank']) {
    const res = await post('/v1/chat/completions', chatBody(model, { stream: true }));
    const events = sseEvents(await res.text());
    const last = events.at(-1);
    assert.ok(last.json && last.json.error, `${model}: a last error event, got ${last.data.slice(0, 200)}`);
    assert.match(last.json.error.message, /larger than 1048576 bytes/);
  }
  await assertStoppedEarly(mock, 'huge-open-256');
  await assertStoppedEarly(mock, 'no-blank-line');
  const grown = memKb(worker, 'VmHWM') - hwmBefore;
  // The backends offered 256 MiB and 1 GiB; a bounded worker grows by a few times the limit at most.
  assert.ok(grown < 64 * 1024, `the worker's peak memory grew by ${grown} kB`);
});

test('/v1/responses: a huge event ends the relayed stream with an error event', T, async () => {
  const hwmBefore = memKb(worker, 'VmHWM');
  for (const [model, backendModel] of [['resp-huge', 'huge-line-late-64'], ['resp-open', 'huge-open-256']]) {
    const res = await post('/v1/responses', { model, input: 'hello world', stream: true });
    assert.equal(res.status, 200);
    const events = sseEvents(await res.text());
    const last = events.at(-1);
    assert.equal(events[0].event, 'response.created');
    assert.equal(last.event, 'error', `${model}: the last event is an error, got ${last.event}`);
    assert.equal(last.json.error.code, 'backend_error');
    assert.match(last.json.error.message, /larger than 1048576 bytes/);
    await assertStoppedEarly(mock, backendModel);
  }
  const grown = memKb(worker, 'VmHWM') - hwmBefore;
  assert.ok(grown < 64 * 1024, `the worker's peak memory grew by ${grown} kB`);
});

test('anthropic: a huge stream event ends the stream with a last error event', T, async () => {
  const res = await post('/v1/chat/completions', chatBody('claude-huge', { stream: true }));
  assert.equal(res.status, 200);
  const events = sseEvents(await res.text());
  const last = events.at(-1);
  assert.ok(events.some((e) => e.json && e.json.choices && e.json.choices[0].delta.content), 'text came first');
  assert.ok(last.json && last.json.error, `a last error event, got ${last.data.slice(0, 200)}`);
  assert.match(last.json.error.message, /larger than 1048576 bytes/);
  await assertStoppedEarly(anth, 'claude-huge-delta-64');
});

test('triton: a stream message over the limit ends the stream; a whole answer may be larger', T, async () => {
  const res = await post('/v1/chat/completions', chatBody('trt-huge', { stream: true }));
  assert.equal(res.status, 200);
  const events = sseEvents(await res.text());
  const last = events.at(-1);
  assert.equal(events[0].json.choices[0].delta.role, 'assistant');
  assert.ok(last.json && last.json.error, `a last error event, got ${last.data.slice(0, 200)}`);
  assert.match(last.json.error.message, /larger than 1048576 bytes/);
  const st = triton.streams.at(-1);
  // generous: on a loaded machine the sanitizer build takes its time over the 2 MB message
  await h.waitFor(() => st.cancelled, { timeout: 30000, what: 'the Triton stream cancelled' });
  // not streamed, the same 2 MB come as one answer, which is bounded by the answer cap, not the event limit
  const whole = await client.chat.completions.create(chatBody('trt-huge'));
  assert.ok(whole.choices[0].message.content.endsWith('x'.repeat(1000)));
  assert.ok(whole.choices[0].message.content.length > 2000000);
});

// Starts a request, waits until the mock has sent `events` events of it (or, when events is a function,
// until it says so of the mock's record), then the client leaves; the mock must see its connection
// closed soon after.
async function leaveAndWatch(path, body, backendModel, events = 3, base = router.base) {
  const far = typeof events === 'function' ? events : (r) => r.chunksSent >= events;
  const ac = new AbortController();
  const pending = fetch(`${base}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal,
  }).then((r) => r.arrayBuffer()).catch(() => null);
  const rec = await mock.waitFor((r) => r.model === backendModel && !r.socketClosedAt && far(r), 10000);
  const left = Date.now();
  ac.abort();
  await pending;
  await mock.waitClosed(rec, 5000);
  return rec.socketClosedAt - left;
}

test('a client that leaves a chat stream stops the backend call', T, async () => {
  await leaveAndWatch('/v1/chat/completions', chatBody('endless', { stream: true }), 'endless-20');
});

test('a client that leaves a relayed /v1/responses stream stops the backend call', T, async () => {
  await leaveAndWatch('/v1/responses', { model: 'resp-endless', input: 'hello world', stream: true }, 'endless-20');
  // the backend sending as fast as it can: data is always there, the client must still be noticed
  await leaveAndWatch('/v1/responses', { model: 'resp-endless-fast', input: 'hi', stream: true }, 'endless-0', 2000);
});

test('a client that leaves while a huge line is being read stops the /v1/responses relay', T, async () => {
  // The line never ends (256 MiB, then the mock cuts it); the client leaves while the relay is deep in
  // it, and the relay must not go on reading.
  await leaveAndWatch('/v1/responses', { model: 'resp-open', input: 'hello world', stream: true }, 'huge-open-256',
    (r) => r.bigBytes >= 16 * 1024 * 1024, big.base);
});

test('a client that leaves while a fast stream is folded into one answer stops the backend call', T, async () => {
  await leaveAndWatch('/v1/chat/completions', chatBody('endless-folded'), 'endless-0', 2000);
});

test('a gRPC client that cancels while a fast stream is folded into one answer stops the backend call', T, async () => {
  const c = newClient(grpcPort);
  try {
    const done = new Promise((resolve) => {
      const call = c.RouteRequest({ provider: '', model: 'endless-folded', prompt: 'hello world', max_tokens: 0, parameters: {} },
        new grpc.Metadata(), { deadline: Date.now() + 30000 }, (err) => resolve(err));
      mock.waitFor((r) => r.model === 'endless-0' && !r.socketClosedAt && r.chunksSent >= 2000, 10000).then((rec) => {
        call.cancel();
        resolve(mock.waitClosed(rec, 5000));
      }, resolve);
    });
    const outcome = await done;
    assert.ok(!(outcome instanceof Error) || outcome.code === grpc.status.CANCELLED, String(outcome));
    const rec = mock.requests.filter((r) => r.model === 'endless-0').at(-1);
    await mock.waitClosed(rec, 5000);
  } finally {
    c.close();
  }
});

test('the worker survived every hostile stream', T, async () => {
  assert.deepEqual(router.workers(), [worker]);
  const r = await client.chat.completions.create(chatBody('fits'));
  assert.equal(r.choices[0].message.content, 'you said: hello world');
});
