'use strict';
// End-to-end tests of the ai_router client API: the gRPC service ai_router.AIRouter
// (RouteRequest, StreamingRouteRequest) that every worker serves on grpc_listen, and its HTTP
// gateway routes POST /generate and POST /stream. The client is @grpc/grpc-js loading a
// client-side copy of the proto (tests/e2e/proto/ai_router.proto), as an existing client of that
// API would. Backends: the built-in echo backend (chunk_delay_ms for slow streams) and the mock
// OpenAI server (scripts/mock-openai.js; behaviour knobs in the backend model name). What reached
// a backend is measured at the mock's request log.
//
// Routers (all on 127.0.0.1, HTTP and gRPC ports from harness.freePort()):
//   MAIN  workers=2, no keys, retry attempts=1, circuit breaker out of the way; echo default model,
//         mock-backed models with knobs, a dead backend, a backend with a 1 s first-byte timeout
//   KEYS  workers=2, api_keys (all models / echo only / rpm = 1), no default model
//   TRACE workers=2, tracing to the mock OTLP collector (scripts/mock-otlp.js), retry attempts=2,
//         no default model; started by the first tracing test
//   QUIT and HUP routers are started by their own tests (they stop or restart).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const h = require('./lib/harness.js');
const g = require('./lib/grpc.js');
const { hex, isHex, rawAttr } = require('./lib/trace.js');
const { fetchRaw } = require('./lib/http.js');
const { sseMessages } = require('./lib/sse.js');
const { idle, metricSum } = require('./lib/metrics.js');
const { startMock, replyFor } = require('../../scripts/mock-openai.js');
const { startOtlpMock } = require('../../scripts/mock-otlp.js');

const T = { timeout: 30000 };
const { awayFromMinuteEdge } = h;
const { S, ai, grpcAccessLines } = g;

const clients = [];
const routers = [];
let mock;
let MAIN;
let KEYS;
let deadPort;

// ---- helpers ----

// A channel of its own (grpc-js shares connections between channels to the same target unless
// told not to), so "a new channel" really is a new TCP connection.
const OWN = { 'grpc.use_local_subchannel_pool': 1 };

// Clients and routers are closed and stopped when the file is done.
function newClient(port) {
  const c = g.newClient(port);
  clients.push(c);
  return c;
}
async function startWithGrpc(configText, opts) {
  const r = await g.startWithGrpc(configText, opts);
  routers.push(r);
  return r;
}
// Calls that never reject: unary resolves { err, res, ms }; streaming is lib/grpc.js's.
const unary = (client, request, opts) => g.unary(client, request, opts).done;
const { streaming } = g;

function assertCode(err, code, what = '') {
  assert.ok(err, `${what}: expected status ${code} (${codeName(code)}), got OK`);
  assert.equal(err.code, code, `${what}: expected ${codeName(code)}, got ${codeName(err.code)}: ${err.details}`);
}
function codeName(c) { return Object.keys(S).find((k) => S[k] === c) || String(c); }

// Inference requests the mock received for one backend model.
const seen = (model) => mock.requests.filter((r) => r.method === 'POST' && r.model === model);

// A POST of a JSON body (a string is sent as is): { status, headers, text, json }.
const post = (base, p, body, { headers = {}, timeout = 20000 } = {}) =>
  fetchRaw(base, 'POST', p, { headers: { 'content-type': 'application/json', ...headers }, timeout, ...(typeof body === 'string' ? { body } : { json: body }) });

function mainConfig(mockUrl) {
  const m = (name, backendModel, extra = '') => `{ name = "${name}"; backend = "mock"; backend_model = "${backendModel}"; ${extra} }`;
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 10; };
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; cooldown = 1; };
backends = (
  { name = "echo"; type = "echo"; chunk_delay_ms = 0; },
  { name = "mock"; type = "openai"; url = "${mockUrl}"; },
  { name = "tmock"; type = "openai"; url = "${mockUrl}"; first_byte_timeout = 1.0; timeout = 5.0; },
  { name = "dead"; type = "openai"; url = "http://127.0.0.1:${deadPort}/v1"; connect_timeout = 2.0; }
);
models = (
  { name = "echo"; backend = "echo"; default = true; },
  ${m('mockmodel', 'plain')},
  ${m('g-*', 'plain-glob')},
  ${m('nostream', 'plain-nostream', 'backend_stream = false;')},
  ${m('m500', 'error-500')},
  ${m('m429', 'error-429-a')},
  ${m('m429s', 'error-429-b')},
  ${m('m429h', 'error-429-c')},
  ${m('m400', 'error-400')},
  ${m('mhang', 'hang')},
  ${m('mslow', 'slow-stream-40x100')},
  ${m('mstreamerr', 'stream-error-event')},
  { name = "mdead"; backend = "dead"; },
  { name = "mtimeout"; backend = "tmock"; backend_model = "hang-timeout"; }
);
`;
}

function keysConfig() {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 2;
log = { level = "info"; };
retry = { attempts = 1; };
backends = ( { name = "echo"; type = "echo"; } );
models = (
  { name = "echo"; backend = "echo"; },
  { name = "other"; backend = "echo"; }
);
api_keys = (
  { key = "key-all-0001"; name = "all"; },
  { key = "key-echo-0002"; name = "echoonly"; models = ["echo"]; },
  { key = "key-rpm-00003"; name = "limited"; rpm = 1; }
);
`;
}

before(async () => {
  mock = await startMock({ port: 0 });
  deadPort = await h.freePort();
  MAIN = await startWithGrpc(mainConfig(mock.url));
  KEYS = await startWithGrpc(keysConfig());
});

after(async () => {
  for (const c of clients) { try { c.close(); } catch { } }
  for (const r of routers) await r.stop();
  if (mock) await mock.close();
  if (otlp) await otlp.close();
});

// ---- unary and streaming ----

test('unary: echo answers the prompt; empty model -> the default model name; provider echoed', T, async () => {
  const c = newClient(MAIN.gport);
  let r = await unary(c, { provider: 'echo', prompt: 'hello there world' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'hello there world', provider: 'echo', model: 'echo' });
  // provider empty: any backend; the reply's provider is the request's (empty)
  r = await unary(c, { prompt: 'héllo wörld ✓ 日本語' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'héllo wörld ✓ 日本語', provider: '', model: 'echo' });
  // provider by type
  r = await unary(c, { provider: 'echo', model: 'echo', prompt: 'by type' });
  assert.ifError(r.err);
  assert.equal(r.res.content, 'by type');
});

test('unary through the mock: prompt is one user message, model is the client-facing name (exact and glob)', T, async () => {
  const c = newClient(MAIN.gport);
  const before = mock.requests.length;
  let r = await unary(c, { provider: 'mock', model: 'mockmodel', prompt: 'hello world' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'you said: hello world', provider: 'mock', model: 'mockmodel' });
  const got = mock.requests.slice(before).filter((q) => q.method === 'POST');
  assert.equal(got.length, 1);
  assert.equal(got[0].path, '/v1/chat/completions');
  assert.equal(got[0].body.model, 'plain');
  assert.deepEqual(got[0].body.messages, [{ role: 'user', content: 'hello world' }]);
  assert.notEqual(got[0].body.stream, true);
  assert.equal('max_tokens' in got[0].body, false, 'max_tokens 0 must not be sent (model default)');
  // provider as the backend's type; glob model: the reply names what the client asked for
  r = await unary(c, { provider: 'openai', model: 'g-something', prompt: 'glob me' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'you said: glob me', provider: 'openai', model: 'g-something' });
  assert.equal(mock.last((q) => q.method === 'POST').body.model, 'plain-glob');
});

test('unary: an unknown model name falls to the default model and is answered under the asked name', T, async () => {
  const c = newClient(MAIN.gport);
  const r = await unary(c, { model: 'no-such-model', prompt: 'fall through' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'fall through', provider: '', model: 'no-such-model' });
});

test('streaming (echo): one message per word, in order, joined text exact, model/provider in each', T, async () => {
  const c = newClient(MAIN.gport);
  const prompt = 'the quick brown fox jumps over the lazy dog';
  const { done } = streaming(c, { provider: 'echo', prompt });
  const r = await done;
  assert.ifError(r.err);
  assert.equal(r.status.code, S.OK);
  assert.deepEqual(r.msgs.map((m) => m.content), ['the ', 'quick ', 'brown ', 'fox ', 'jumps ', 'over ', 'the ', 'lazy ', 'dog']);
  assert.equal(r.msgs.map((m) => m.content).join(''), prompt);
  for (const m of r.msgs) { assert.equal(m.provider, 'echo'); assert.equal(m.model, 'echo'); }
});

test('streaming (mock): empty deltas skipped, pieces in order, joined exact, backend asked to stream', T, async () => {
  const c = newClient(MAIN.gport);
  const before = mock.requests.length;
  const { done } = streaming(c, { provider: 'mock', model: 'mockmodel', prompt: 'line one\nline two  end' });
  const r = await done;
  assert.ifError(r.err);
  const pieces = r.msgs.map((m) => m.content);
  assert.deepEqual(pieces, ['you ', 'said: ', 'line ', 'one\n', 'line ', 'two  ', 'end']);
  assert.ok(pieces.every((p) => p.length > 0), 'no empty messages');
  assert.equal(pieces.join(''), 'you said: line one\nline two  end');
  for (const m of r.msgs) { assert.equal(m.model, 'mockmodel'); assert.equal(m.provider, 'mock'); }
  const q = mock.requests.slice(before).find((x) => x.method === 'POST');
  assert.equal(q.body.stream, true);
  assert.equal(q.body.model, 'plain');
});

test('streaming from a model with backend_stream = false: the whole answer as one message, status OK', T, async () => {
  const c = newClient(MAIN.gport);
  const r = await streaming(c, { model: 'nostream', prompt: 'a b c' }).done;
  assert.ifError(r.err);
  assert.equal(r.msgs.map((m) => m.content).join(''), 'you said: a b c');
  assert.equal(r.msgs[0].model, 'nostream');
});

test('streaming: pieces arrive as the backend sends them (not buffered to the end)', T, async () => {
  const c = newClient(MAIN.gport);
  const r = await streaming(c, { model: 'mslow', prompt: 'x' }).done;
  assert.ifError(r.err);
  assert.equal(r.msgs.length, 40);
  assert.equal(r.msgs.map((m) => m.content).join(''), Array.from({ length: 40 }, (_, i) => `w${i} `).join(''));
  const spread = r.msgs[39].at - r.msgs[0].at;
  assert.ok(spread > 2500, `40 pieces 100 ms apart arrived within ${spread} ms`);
});

test('both workers serve gRPC (SO_REUSEPORT): fresh channels are spread over the workers', T, async () => {
  const pids = MAIN.workers();
  assert.equal(pids.length, 2);
  const n0 = grpcAccessLines(MAIN).length;
  for (let i = 0; i < 24; i++) {
    const c = new ai.AIRouter(`127.0.0.1:${MAIN.gport}`, grpc.credentials.createInsecure(), OWN);
    const r = await unary(c, { prompt: `spread ${i}` });
    c.close();
    assert.ifError(r.err);
  }
  const lines = await h.waitFor(() => { const l = grpcAccessLines(MAIN).slice(n0); return l.length >= 24 && l; }, { timeout: 3000, what: 'access log lines' });
  const workers = new Set(lines.map((l) => l.worker));
  for (const w of workers) assert.ok(pids.includes(w), `access log worker ${w} not among ${pids}`);
  assert.equal(workers.size, 2, `all 24 calls went to worker(s) ${[...workers]}`);
});

// ---- parameters and max_tokens ----

test('parameters reach the backend with OpenAI JSON types (numbers, integers, booleans, JSON text)', T, async () => {
  const c = newClient(MAIN.gport);
  const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
  const parameters = {
    temperature: '0.7', top_p: '0.9', presence_penalty: '-0.5', frequency_penalty: '1',
    n: '1', seed: '42', top_k: '40', top_logprobs: '2', max_completion_tokens: '50',
    logprobs: 'true', store: 'false', parallel_tool_calls: 'false',
    stop: '["\\n", "END"]', response_format: '{"type":"json_object"}', tools: JSON.stringify(tools),
    tool_choice: 'auto', logit_bias: '{"50256": -100}', metadata: '{"a":"b"}',
    user: 'alice', service_tier: 'default',
  };
  const before = mock.requests.length;
  const r = await unary(c, { model: 'mockmodel', prompt: 'typed', parameters });
  assert.ifError(r.err);
  const b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.temperature, 0.7);
  assert.equal(b.top_p, 0.9);
  assert.equal(b.presence_penalty, -0.5);
  assert.equal(b.frequency_penalty, 1);
  for (const k of ['temperature', 'top_p', 'presence_penalty', 'frequency_penalty']) assert.equal(typeof b[k], 'number', k);
  assert.equal(b.n, 1);
  assert.equal(b.seed, 42);
  assert.equal(b.top_k, 40);
  assert.equal(b.top_logprobs, 2);
  assert.equal(b.max_completion_tokens, 50);
  assert.equal(b.logprobs, true);
  assert.equal(b.store, false);
  assert.equal(b.parallel_tool_calls, false);
  assert.deepEqual(b.stop, ['\n', 'END']);
  assert.deepEqual(b.response_format, { type: 'json_object' });
  assert.deepEqual(b.tools, tools);
  assert.equal(b.tool_choice, 'auto'); // plain text stays text
  assert.deepEqual(b.logit_bias, { 50256: -100 });
  assert.deepEqual(b.metadata, { a: 'b' });
  assert.equal(b.user, 'alice'); // unknown to the converter: stays a string
  assert.equal(b.service_tier, 'default');
  // the raw JSON carries real numbers, not strings (json-c may print 0.7 as 0.69999999999999996,
  // which is the same double)
  const raw = mock.requests.slice(before).find((x) => x.method === 'POST').rawBody;
  assert.match(raw, /"temperature":\s*0\.(7|69999999999999996)[,}]/);
  assert.match(raw, /"seed":\s*42[,}]/);
  assert.match(raw, /"logprobs":\s*true[,}]/);
});

test('parameters: a plain-text stop stays a string; the same conversion applies to streams', T, async () => {
  const c = newClient(MAIN.gport);
  const before = mock.requests.length;
  const r = await streaming(c, { model: 'mockmodel', prompt: 'p', parameters: { stop: 'END', temperature: '0', seed: '-3' } }).done;
  assert.ifError(r.err);
  const b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.stop, 'END');
  assert.equal(b.temperature, 0);
  assert.equal(typeof b.temperature, 'number');
  assert.equal(b.seed, -3);
  assert.equal(b.stream, true);
});

test('bad parameter values and reserved parameters -> INVALID_ARGUMENT, nothing reaches the backend', T, async () => {
  const c = newClient(MAIN.gport);
  const bad = [
    { temperature: 'hot' }, { temperature: '' }, { top_p: '0.5x' }, { seed: '4.5' }, { n: 'one' },
    { max_tokens: '10tokens' }, { logprobs: 'yes' }, { store: '1' }, { tools: '[{' }, { response_format: '{"type":' },
    { model: 'gpt-4o' }, { messages: '[]' }, { stream: 'true' },
  ];
  const before = mock.requests.length;
  for (const parameters of bad) {
    const r = await unary(c, { model: 'mockmodel', prompt: 'p', parameters });
    assertCode(r.err, S.INVALID_ARGUMENT, JSON.stringify(parameters));
    const s = await streaming(c, { model: 'mockmodel', prompt: 'p', parameters }).done;
    assertCode(s.err, S.INVALID_ARGUMENT, `stream ${JSON.stringify(parameters)}`);
    assert.equal(s.msgs.length, 0);
  }
  assert.equal(mock.requests.slice(before).filter((x) => x.method === 'POST').length, 0);
});

test('max_tokens: N is sent as an integer and truncates the answer; 0 means the model default; negative -> INVALID_ARGUMENT', T, async () => {
  const c = newClient(MAIN.gport);
  let before = mock.requests.length;
  let r = await unary(c, { model: 'mockmodel', prompt: 'one two three four', max_tokens: 3 });
  assert.ifError(r.err);
  assert.equal(r.res.content, 'you said: one ');
  let b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.max_tokens, 3);
  before = mock.requests.length;
  const s = await streaming(c, { model: 'mockmodel', prompt: 'one two three four', max_tokens: 2 }).done;
  assert.ifError(s.err);
  assert.deepEqual(s.msgs.map((m) => m.content), ['you ', 'said: ']);
  b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.max_tokens, 2);
  before = mock.requests.length;
  r = await unary(c, { model: 'mockmodel', prompt: 'one two', max_tokens: 0 });
  assert.ifError(r.err);
  assert.equal(r.res.content, 'you said: one two');
  b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal('max_tokens' in b, false);
  r = await unary(c, { model: 'mockmodel', prompt: 'one two', max_tokens: -1 });
  assertCode(r.err, S.INVALID_ARGUMENT, 'max_tokens -1');
});

// ---- status codes ----

test('INVALID_ARGUMENT: a provider that does not serve the model (name, type, unknown), empty prompt', T, async () => {
  const c = newClient(MAIN.gport);
  const before = mock.requests.length;
  for (const [provider, model] of [['echo', 'mockmodel'], ['mock', 'echo'], ['openai', 'echo'], ['anthropic', 'mockmodel'], ['nosuch', '']]) {
    const r = await unary(c, { provider, model, prompt: 'p' });
    assertCode(r.err, S.INVALID_ARGUMENT, `provider ${provider} model ${model}`);
    const s = await streaming(c, { provider, model, prompt: 'p' }).done;
    assertCode(s.err, S.INVALID_ARGUMENT, `stream provider ${provider} model ${model}`);
  }
  const r = await unary(c, { prompt: '' });
  assertCode(r.err, S.INVALID_ARGUMENT, 'empty prompt');
  assert.equal(mock.requests.slice(before).filter((x) => x.method === 'POST').length, 0);
});

test('UNAUTHENTICATED: missing key, wrong key, key in the wrong metadata', T, async () => {
  const c = newClient(KEYS.gport);
  let r = await unary(c, { model: 'echo' });
  assertCode(r.err, S.UNAUTHENTICATED, 'no key');
  r = await unary(c, { model: 'echo' }, { key: 'key-wrong-0009' });
  assertCode(r.err, S.UNAUTHENTICATED, 'wrong key');
  const md = new grpc.Metadata();
  md.set('x-other', 'Bearer key-all-0001');
  r = await unary(c, { model: 'echo' }, { md });
  assertCode(r.err, S.UNAUTHENTICATED, 'key not in authorization');
  const s = await streaming(c, { model: 'echo' }).done;
  assertCode(s.err, S.UNAUTHENTICATED, 'stream without key');
  r = await unary(c, { model: 'echo', prompt: 'authorised' }, { key: 'key-all-0001' });
  assert.ifError(r.err);
  assert.equal(r.res.content, 'authorised');
});

test('PERMISSION_DENIED: a valid key asking for an existing model it may not use; allowed model works', T, async () => {
  const c = newClient(KEYS.gport);
  let r = await unary(c, { model: 'other' }, { key: 'key-echo-0002' });
  assertCode(r.err, S.PERMISSION_DENIED, 'k-echo -> other');
  const s = await streaming(c, { model: 'other' }, { key: 'key-echo-0002' }).done;
  assertCode(s.err, S.PERMISSION_DENIED, 'stream k-echo -> other');
  r = await unary(c, { model: 'echo', prompt: 'ok' }, { key: 'key-echo-0002' });
  assert.ifError(r.err);
  assert.equal(r.res.content, 'ok');
  r = await unary(c, { model: 'other', prompt: 'ok2' }, { key: 'key-all-0001' });
  assert.ifError(r.err);
  assert.deepEqual({ ...r.res }, { content: 'ok2', provider: '', model: 'other' });
});

test('NOT_FOUND: an unknown model (and an empty one) where there is no default model', T, async () => {
  const c = newClient(KEYS.gport);
  let r = await unary(c, { model: 'no-such-model' }, { key: 'key-all-0001' });
  assertCode(r.err, S.NOT_FOUND, 'unknown model');
  r = await unary(c, { model: '' }, { key: 'key-all-0001' });
  assertCode(r.err, S.NOT_FOUND, 'empty model, no default');
  const s = await streaming(c, { model: 'nope' }, { key: 'key-all-0001' }).done;
  assertCode(s.err, S.NOT_FOUND, 'stream unknown model');
});

test('RESOURCE_EXHAUSTED: a key over its rpm', T, async () => {
  await awayFromMinuteEdge(5);
  const c = newClient(KEYS.gport);
  const r1 = await unary(c, { model: 'echo', prompt: 'first' }, { key: 'key-rpm-00003' });
  assert.ifError(r1.err);
  const r2 = await unary(c, { model: 'echo', prompt: 'second' }, { key: 'key-rpm-00003' });
  assertCode(r2.err, S.RESOURCE_EXHAUSTED, 'second call within the minute');
  const s = await streaming(c, { model: 'echo', prompt: 'third' }, { key: 'key-rpm-00003' }).done;
  assertCode(s.err, S.RESOURCE_EXHAUSTED, 'stream within the minute');
  // other keys are not affected
  const r3 = await unary(c, { model: 'echo', prompt: 'x' }, { key: 'key-all-0001' });
  assert.ifError(r3.err);
});

test('backend errors: 5xx and down -> UNAVAILABLE, 429 -> RESOURCE_EXHAUSTED, other 4xx -> INVALID_ARGUMENT', T, async () => {
  const c = newClient(MAIN.gport);
  let r = await unary(c, { model: 'm500' });
  assertCode(r.err, S.UNAVAILABLE, 'backend 500');
  r = await unary(c, { model: 'mdead' });
  assertCode(r.err, S.UNAVAILABLE, 'backend down');
  r = await unary(c, { model: 'm429' });
  assertCode(r.err, S.RESOURCE_EXHAUSTED, 'backend 429');
  r = await unary(c, { model: 'm400' });
  assertCode(r.err, S.INVALID_ARGUMENT, 'backend 400');
  assert.match(r.err.details, /temperature/);
  assert.doesNotMatch(r.err.details, /error-400/, 'the backend model name should be hidden behind the client name');
  // the same over streams (errors before the first piece)
  let s = await streaming(c, { model: 'm500' }).done;
  assertCode(s.err, S.UNAVAILABLE, 'stream backend 500');
  assert.equal(s.msgs.length, 0);
  s = await streaming(c, { model: 'mdead' }).done;
  assertCode(s.err, S.UNAVAILABLE, 'stream backend down');
  s = await streaming(c, { model: 'm429s' }).done;
  assertCode(s.err, S.RESOURCE_EXHAUSTED, 'stream backend 429');
  s = await streaming(c, { model: 'm400' }).done;
  assertCode(s.err, S.INVALID_ARGUMENT, 'stream backend 400');
});

test('retry attempts = 1: a failing backend is called exactly once per call', T, async () => {
  const c = newClient(MAIN.gport);
  const n0 = seen('error-500').length;
  const r = await unary(c, { model: 'm500' });
  assertCode(r.err, S.UNAVAILABLE);
  await idle(MAIN); // a second try, had there been one, has reached the mock by now
  assert.equal(seen('error-500').length - n0, 1);
});

test('a stream that fails after some pieces: the pieces, then the error status (not OK)', T, async () => {
  const c = newClient(MAIN.gport);
  const r = await streaming(c, { model: 'mstreamerr', prompt: 'a b c' }).done;
  assert.deepEqual(r.msgs.map((m) => m.content), ['you ']);
  assert.ok(r.err, 'the call should end with an error status');
  assert.notEqual(r.status.code, S.OK);
  assert.ok([S.UNAVAILABLE, S.INTERNAL, S.UNKNOWN].includes(r.err.code), `status ${codeName(r.err.code)}: ${r.err.details}`);
});

test('DEADLINE_EXCEEDED: a backend timeout (first byte 1 s) with a long call deadline', T, async () => {
  const c = newClient(MAIN.gport);
  let r = await unary(c, { model: 'mtimeout' }, { deadlineMs: 10000 });
  assertCode(r.err, S.DEADLINE_EXCEEDED, 'backend first-byte timeout');
  assert.ok(r.ms >= 900 && r.ms < 4000, `answered after ${r.ms} ms`);
  const s = await streaming(c, { model: 'mtimeout' }, { deadlineMs: 10000 }).done;
  assertCode(s.err, S.DEADLINE_EXCEEDED, 'stream backend first-byte timeout');
  assert.ok(s.ms < 4000, `stream answered after ${s.ms} ms`);
});

test('DEADLINE_EXCEEDED: a hanging backend and a 1 s call deadline; the backend call is dropped', T, async () => {
  const c = newClient(MAIN.gport);
  const n0 = seen('hang').length;
  const r = await unary(c, { model: 'mhang' }, { deadlineMs: 1000 });
  assertCode(r.err, S.DEADLINE_EXCEEDED, 'call deadline');
  assert.ok(r.ms < 2500, `took ${r.ms} ms`);
  const rec = await mock.waitFor((q) => q.model === 'hang' && seen('hang').indexOf(q) >= n0, 2000);
  // the backend's own timeouts are minutes away: a close within a few seconds of the deadline is the call being dropped
  const closedAt = await mock.waitClosed(rec, 4000);
  assert.ok(closedAt - (rec.time + 1000) < 3000, `backend connection closed ${closedAt - rec.time} ms after the request`);
  // streaming too
  const n1 = seen('hang').length;
  const s = await streaming(c, { model: 'mhang' }, { deadlineMs: 1000 }).done;
  assertCode(s.err, S.DEADLINE_EXCEEDED, 'stream call deadline');
  const rec2 = await mock.waitFor((q) => q.model === 'hang' && seen('hang').indexOf(q) >= n1, 2000);
  const closed2 = await mock.waitClosed(rec2, 4000);
  assert.ok(closed2 - (rec2.time + 1000) < 3000, `backend connection closed ${closed2 - rec2.time} ms after the request`);
});

test('UNIMPLEMENTED: an unknown method of the service and an unknown service', T, async () => {
  const raw = new grpc.Client(`127.0.0.1:${MAIN.gport}`, grpc.credentials.createInsecure(), OWN);
  clients.push(raw);
  const call = (p) => new Promise((resolve) => {
    raw.makeUnaryRequest(p, (x) => x, (x) => x, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) => resolve({ err, res }));
  });
  let r = await call('/ai_router.AIRouter/NoSuchMethod');
  assertCode(r.err, S.UNIMPLEMENTED, 'unknown method');
  r = await call('/other.Service/Do');
  assertCode(r.err, S.UNIMPLEMENTED, 'unknown service');
  // the server still answers real calls afterwards
  const c = newClient(MAIN.gport);
  const ok = await unary(c, { prompt: 'still here' });
  assert.ifError(ok.err);
});

test('client cancel mid-stream cancels the backend call (the mock sees its connection closed within ~1.5 s)', T, async () => {
  const c = newClient(MAIN.gport);
  const n0 = seen('slow-stream-40x100').length;
  let cancelledAt = 0;
  const st = streaming(c, { model: 'mslow', prompt: 'x' }, {
    onMessage: (m, msgs) => { if (msgs.length === 3 && !cancelledAt) { cancelledAt = Date.now(); st.call.cancel(); } },
  });
  const r = await st.done;
  assert.ok(cancelledAt, 'got 3 pieces before cancelling');
  assertCode(r.err, S.CANCELLED, 'client cancel');
  const rec = seen('slow-stream-40x100')[n0];
  assert.ok(rec, 'the mock got the request');
  const closedAt = await mock.waitClosed(rec, 3000);
  // the backend stream would go on for ~3.6 s more: closed well before that
  assert.ok(closedAt - cancelledAt < 2000, `backend connection closed ${closedAt - cancelledAt} ms after the cancel`);
  assert.ok(rec.chunksSent < 25, `the backend sent ${rec.chunksSent} chunks: it was not stopped`);
  assert.equal(rec.aborted, true);
  // the worker is fine afterwards
  const ok = await unary(c, { prompt: 'after cancel' });
  assert.ifError(ok.err);
  assert.equal(ok.res.content, 'after cancel');
});

test('metrics: a streaming call counts in the time-to-first-token and chunk-gap histograms; a cancelled call in client_aborts_total', T, async () => {
  const c = newClient(MAIN.gport);
  const ttft0 = await metricSum(MAIN, 'airouter_time_to_first_token_seconds_count', { model: 'mockmodel' });
  const gap0 = await metricSum(MAIN, 'airouter_stream_chunk_gap_seconds_count', { model: 'mockmodel' });
  const s = await streaming(c, { model: 'mockmodel', prompt: 'one two three four' }).done;
  assert.ifError(s.err);
  assert.ok(s.msgs.length >= 2, `pieces: ${s.msgs.length}`);
  await h.waitFor(async () => (await metricSum(MAIN, 'airouter_time_to_first_token_seconds_count', { model: 'mockmodel' })) === ttft0 + 1,
    { timeout: 3000, what: 'TTFT counted once' });
  assert.equal(await metricSum(MAIN, 'airouter_stream_chunk_gap_seconds_count', { model: 'mockmodel' }), gap0 + s.msgs.length - 1,
    'one gap between each two pieces');
  // a unary call adds no TTFT
  assert.ifError((await unary(c, { model: 'mockmodel', prompt: 'unary' })).err);
  await idle(MAIN); // the call's metrics are counted by now
  assert.equal(await metricSum(MAIN, 'airouter_time_to_first_token_seconds_count', { model: 'mockmodel' }), ttft0 + 1);

  const ab0 = await metricSum(MAIN, 'airouter_client_aborts_total', { model: 'mslow' });
  let cancelled = false;
  const st = streaming(c, { model: 'mslow', prompt: 'x' }, {
    onMessage: (m, msgs) => { if (msgs.length === 2 && !cancelled) { cancelled = true; st.call.cancel(); } },
  });
  assertCode((await st.done).err, S.CANCELLED, 'client cancel');
  await h.waitFor(async () => (await metricSum(MAIN, 'airouter_client_aborts_total', { model: 'mslow' })) === ab0 + 1,
    { timeout: 3000, what: 'the cancelled call counted as a client abort' });
});

// ---- HTTP gateway: /generate and /stream ----

test('POST /generate: {"content","provider","model"}; empty model -> default name; glob name kept', T, async () => {
  let r = await post(MAIN.base, '/generate', { provider: 'echo', prompt: 'hello gateway' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.deepEqual(r.json, { content: 'hello gateway', provider: 'echo', model: 'echo' });
  r = await post(MAIN.base, '/generate', { provider: 'mock', model: 'g-x', prompt: 'hi' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { content: 'you said: hi', provider: 'mock', model: 'g-x' });
  r = await post(MAIN.base, '/generate', { provider: 'openai', model: 'mockmodel', prompt: 'multi\nline' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, 'you said: multi\nline');
});

test('POST /generate: parameters (strings converted, numbers kept) and max_tokens reach the backend typed', T, async () => {
  let before = mock.requests.length;
  let r = await post(MAIN.base, '/generate', {
    provider: 'mock', model: 'mockmodel', prompt: 'one two three', max_tokens: 3,
    parameters: { temperature: '0.7', seed: '7', logprobs: 'false', stop: '["x"]', user: 'bob' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.content, 'you said: one ');
  let b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.temperature, 0.7);
  assert.equal(b.seed, 7);
  assert.equal(b.logprobs, false);
  assert.deepEqual(b.stop, ['x']);
  assert.equal(b.user, 'bob');
  assert.equal(b.max_tokens, 3);
  assert.deepEqual(b.messages, [{ role: 'user', content: 'one two three' }]);
  before = mock.requests.length;
  r = await post(MAIN.base, '/generate', { provider: 'mock', model: 'mockmodel', prompt: 'p', max_tokens: '2', parameters: { temperature: 0.25, n: 1 } });
  assert.equal(r.status, 200, r.text);
  b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.temperature, 0.25);
  assert.equal(b.n, 1);
  assert.equal(b.max_tokens, 2);
});

test('POST /generate errors are HTTP statuses with OpenAI-style JSON errors', T, async () => {
  const cases = [
    [{ provider: 'echo', model: 'mockmodel', prompt: 'p' }, 400, 'unsupported_provider'],
    [{ provider: 'mock', model: 'mockmodel', prompt: 'p', parameters: { temperature: 'hot' } }, 400, null],
    [{ provider: 'mock', model: 'mockmodel', prompt: 'p', parameters: { logprobs: 'maybe' } }, 400, null],
    [{ provider: 'mock', model: 'mockmodel', prompt: 'p', max_tokens: -5 }, 400, null],
    [{ provider: 'mock', model: 'mockmodel' }, 400, 'missing_required_parameter'],
    [{ model: 'mockmodel', prompt: 'p' }, 400, 'missing_required_parameter'],
    [{ provider: 'mock', model: 'm500', prompt: 'p' }, 502, 'backend_error'],
    [{ provider: 'dead', model: 'mdead', prompt: 'p' }, 502, 'backend_unavailable'],
    [{ provider: 'mock', model: 'm429h', prompt: 'p' }, 429, null],
    [{ provider: 'mock', model: 'm400', prompt: 'p' }, 400, null],
    [{ provider: 'tmock', model: 'mtimeout', prompt: 'p' }, 504, 'backend_timeout'],
  ];
  for (const [body, status, code] of cases) {
    const r = await post(MAIN.base, '/generate', body);
    assert.equal(r.status, status, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', `OpenAI-style error for ${JSON.stringify(body)}: ${r.text}`);
    assert.ok('type' in r.json.error && 'code' in r.json.error && 'param' in r.json.error, r.text);
    if (code) assert.equal(r.json.error.code, code, `${JSON.stringify(body)}: ${r.text}`);
  }
  const bad = await post(MAIN.base, '/generate', '{"provider": ');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'invalid_json');
});

test('POST /generate with keys: 401 without a key, 404 for an unknown model, 200 with a key', T, async () => {
  let r = await post(KEYS.base, '/generate', { provider: 'echo', model: 'echo', prompt: 'p' });
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json.error.code, 'invalid_api_key');
  r = await post(KEYS.base, '/generate', { provider: 'echo', model: 'nope', prompt: 'p' }, { headers: { authorization: 'Bearer key-all-0001' } });
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'model_not_found');
  r = await post(KEYS.base, '/generate', { provider: 'echo', model: 'echo', prompt: 'with key' }, { headers: { authorization: 'Bearer key-all-0001' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { content: 'with key', provider: 'echo', model: 'echo' });
});

test('POST /stream: SSE text pieces, exact text, ends with event: done + empty data', T, async () => {
  const r = await post(MAIN.base, '/stream', { provider: 'echo', prompt: 'stream me please' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const ev = sseMessages(r.text);
  const data = ev.filter((e) => e.event === 'message');
  assert.deepEqual(data.map((e) => e.data), ['stream ', 'me ', 'please']);
  assert.deepEqual(ev[ev.length - 1], { event: 'done', data: '' });
  assert.ok(r.text.endsWith('event: done\ndata: \n\n'), `ends with: ${JSON.stringify(r.text.slice(-40))}`);
  assert.equal(r.text.includes('[DONE]'), false);
  assert.equal(ev.filter((e) => e.event === 'done').length, 1);
});

test('POST /stream: a newline in a piece continues on another data: line; joined text exact (echo and mock)', T, async () => {
  const prompt = 'line one\nline two\n\nend';
  let r = await post(MAIN.base, '/stream', { provider: 'echo', prompt });
  assert.equal(r.status, 200, r.text);
  let pieces = sseMessages(r.text).filter((e) => e.event === 'message').map((e) => e.data);
  assert.equal(pieces.join(''), prompt);
  assert.ok(r.text.includes('data: one\ndata: \n\n'), JSON.stringify(r.text));
  assert.ok(r.text.includes('data: two\ndata: \ndata: \n\n'), JSON.stringify(r.text));
  // no raw blank line inside an event: every non-empty line is a field or a comment
  for (const line of r.text.split('\n')) if (line) assert.match(line, /^(data: |data:$|event: |:)/, `stray line ${JSON.stringify(line)}`);
  r = await post(MAIN.base, '/stream', { provider: 'mock', model: 'mockmodel', prompt });
  assert.equal(r.status, 200, r.text);
  pieces = sseMessages(r.text).filter((e) => e.event === 'message').map((e) => e.data);
  assert.deepEqual(pieces, ['you ', 'said: ', 'line ', 'one\n', 'line ', 'two\n\n', 'end']);
  assert.equal(pieces.join(''), `you said: ${prompt}`);
  assert.deepEqual(sseMessages(r.text).pop(), { event: 'done', data: '' });
});

test('POST /stream from a model with backend_stream = false ends with event: done too', T, async () => {
  const r = await post(MAIN.base, '/stream', { provider: 'mock', model: 'nostream', prompt: 'whole answer' });
  assert.equal(r.status, 200, r.text);
  const ev = sseMessages(r.text);
  assert.equal(ev.filter((e) => e.event === 'message').map((e) => e.data).join(''), 'you said: whole answer');
  assert.deepEqual(ev[ev.length - 1], { event: 'done', data: '' }, `body: ${JSON.stringify(r.text)}`);
  assert.equal(r.text.includes('[DONE]'), false, `body: ${JSON.stringify(r.text)}`);
});

test('POST /stream: max_tokens and parameters reach the backend typed', T, async () => {
  const before = mock.requests.length;
  const r = await post(MAIN.base, '/stream', { provider: 'mock', model: 'mockmodel', prompt: 'a b c', max_tokens: 2, parameters: { top_p: '0.5' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(sseMessages(r.text).filter((e) => e.event === 'message').map((e) => e.data), ['you ', 'said: ']);
  const b = mock.requests.slice(before).find((x) => x.method === 'POST').body;
  assert.equal(b.stream, true);
  assert.equal(b.max_tokens, 2);
  assert.equal(b.top_p, 0.5);
});

test('POST /stream errors before the start are HTTP statuses with JSON errors', T, async () => {
  const cases = [
    [{ provider: 'echo', model: 'mockmodel', prompt: 'p' }, 400, 'unsupported_provider'],
    [{ provider: 'mock', model: 'mockmodel', prompt: 'p', parameters: { seed: 'x' } }, 400, null],
    [{ provider: 'mock', model: 'mockmodel' }, 400, 'missing_required_parameter'],
    [{ provider: 'mock', model: 'm500', prompt: 'p' }, 502, 'backend_error'],
    [{ provider: 'dead', model: 'mdead', prompt: 'p' }, 502, 'backend_unavailable'],
    [{ provider: 'mock', model: 'm400', prompt: 'p' }, 400, null],
    [{ provider: 'tmock', model: 'mtimeout', prompt: 'p' }, 504, 'backend_timeout'],
  ];
  for (const [body, status, code] of cases) {
    const r = await post(MAIN.base, '/stream', body);
    assert.equal(r.status, status, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.ok(r.json && r.json.error, `JSON error for ${JSON.stringify(body)}: ${r.text}`);
    if (code) assert.equal(r.json.error.code, code, r.text);
  }
});

test('POST /stream error after the start: the pieces, then event: error with {"error":{...}}, no event: done', T, async () => {
  const r = await post(MAIN.base, '/stream', { provider: 'mock', model: 'mstreamerr', prompt: 'a b c' });
  assert.equal(r.status, 200, r.text);
  const ev = sseMessages(r.text);
  assert.deepEqual(ev.filter((e) => e.event === 'message').map((e) => e.data), ['you ']);
  const last = ev[ev.length - 1];
  assert.equal(last.event, 'error', r.text);
  const err = JSON.parse(last.data);
  assert.ok(err.error && typeof err.error.message === 'string', last.data);
  assert.equal(ev.some((e) => e.event === 'done'), false);
  assert.match(r.text, /event: error\ndata: \{"error":/);
});

// ---- tracing: a SERVER span per call, CLIENT spans per backend try (OTLP/JSON to scripts/mock-otlp.js) ----
//
// TRACE router: tracing to the mock collector (flush every 100 ms), retry attempts = 2 with short
// back-offs, no default model (unknown names are NOT_FOUND). Every span is found from the call it
// belongs to: by the traceparent the backend got (calls that reached the mock), by a unique model
// name (glob "tr-dead-*", unknown names) or by the client's own traceparent metadata.

let otlp;
let TRACE;

function traceConfig(otlpUrl) {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 5; };
retry = { attempts = 2; backoff_ms = 10; max_backoff_ms = 20; };
circuit_breaker = { failures = 1000; cooldown = 1; };
tracing = { otlp_endpoint = "${otlpUrl}"; service_name = "airouter-grpc-test"; flush_interval_ms = 100; };
backends = (
  { name = "tmock"; type = "openai"; url = "${mock.url}"; },
  { name = "tdead"; type = "openai"; url = "http://127.0.0.1:${deadPort}/v1"; connect_timeout = 2.0; }
);
models = (
  { name = "tr-ok"; backend = "tmock"; backend_model = "trace-plain"; },
  { name = "tr-dead-*"; backend = "tdead"; backend_model = "trace-dead"; },
  { name = "tr-bad-*"; backend = "tmock"; backend_model = "trace-error-400"; },
  { name = "tr-failover"; strategy = "ordered";
    targets = ( { backend = "tdead"; backend_model = "trace-fo-dead"; }, { backend = "tmock"; backend_model = "trace-fo-live"; } ); }
);
`;
}

async function traceRouter() {
  if (!TRACE) {
    otlp = await startOtlpMock({ port: 0 });
    TRACE = await startWithGrpc(traceConfig(otlp.url));
  }
  return TRACE;
}

const usageOf = (text) => replyFor({ messages: [{ role: 'user', content: text }] }, 'chat').usage;
const isError = (span) => (span.status && span.status.code) === 2;
const TRACE_MS = 8000;

// The backend request that carried this prompt (the mock's record), once it is there.
const backendReq = (prompt) => mock.waitFor((q) => q.method === 'POST' && q.body && q.body.messages && q.body.messages[0].content === prompt, 3000);

// The SERVER span matching pred and `children` CLIENT spans of its trace (ordered by attempt).
async function grpcTrace(pred, { children = 1 } = {}) {
  const [server] = await otlp.waitForSpans((s) => s.kind === 2 && pred(s), TRACE_MS);
  const kids = children
    ? (await otlp.waitForSpans((s) => s.kind === 3 && s.traceId === server.traceId, TRACE_MS, { count: children }))
      .sort((a, b) => a.attrs['airouter.attempt'] - b.attrs['airouter.attempt'])
    : [];
  return { server, kids, client: kids[0] };
}

// All spans of a trace, once any span of it the router was still to export has reached the
// collector. The barrier: a call on the same channel (so the same worker) after every call so far
// has finished; a worker exports its spans in the order the calls ended, one batch after the other,
// so the barrier's SERVER span comes after any span of an earlier call.
async function settledTrace(traceId, c) {
  await idle(TRACE);
  const prompt = `trace barrier ${hex(8)}`;
  assert.ifError((await unary(c, { model: 'tr-ok', prompt })).err);
  const m = /^00-([0-9a-f]{32})-/.exec((await backendReq(prompt)).headers.traceparent || '');
  assert.ok(m, 'the barrier call is traced');
  await grpcTrace((s) => s.traceId === m[1]);
  return otlp.spans.filter((s) => s.traceId === traceId);
}

function checkGrpcServerSpan(s, method, { code, model }) {
  assert.ok(isHex(s.traceId, 32), `traceId: ${s.traceId}`);
  assert.ok(isHex(s.spanId, 16), `spanId: ${s.spanId}`);
  assert.equal(s.kind, 2, 'SERVER');
  assert.equal(s.name, `ai_router.AIRouter/${method}`);
  assert.equal(s.attrs['rpc.system'], 'grpc');
  assert.equal(s.attrs['rpc.service'], 'ai_router.AIRouter');
  assert.equal(s.attrs['rpc.method'], method);
  assert.equal(s.attrs['rpc.grpc.status_code'], code);
  assert.ok(rawAttr(s, 'rpc.grpc.status_code') && 'intValue' in rawAttr(s, 'rpc.grpc.status_code').value, 'status code is an int attribute');
  assert.equal(s.attrs['gen_ai.request.model'], model);
  assert.ok(isHex(s.attrs['airouter.request_id'], 16), `airouter.request_id: ${s.attrs['airouter.request_id']}`);
  assert.deepEqual(Object.keys(s.attrs).filter((k) => k.startsWith('http.')), [], 'no http.* attributes on a gRPC span');
  assert.equal(s.resource.attrs['service.name'], 'airouter-grpc-test');
  assert.equal(s.scope.name, 'airouter');
  assert.ok(BigInt(s.startTimeUnixNano) <= BigInt(s.endTimeUnixNano), 'start <= end');
}

function checkClientSpan(c, server, { model, backend, backendModel, attempt, port }) {
  assert.equal(c.kind, 3, 'CLIENT');
  assert.equal(c.name, `chat ${model}`);
  assert.equal(c.traceId, server.traceId, 'same trace');
  assert.equal(c.parentSpanId, server.spanId, 'child of the SERVER span');
  assert.ok(isHex(c.spanId, 16) && c.spanId !== server.spanId);
  assert.equal(c.attrs['gen_ai.operation.name'], 'chat');
  assert.equal(c.attrs['gen_ai.system'], 'openai');
  assert.equal(c.attrs['gen_ai.request.model'], model);
  assert.equal(c.attrs['gen_ai.response.model'], backendModel);
  assert.equal(c.attrs['airouter.backend'], backend);
  assert.equal(c.attrs['airouter.attempt'], attempt);
  assert.equal(c.attrs['server.address'], '127.0.0.1');
  assert.equal(c.attrs['server.port'], port);
  assert.ok(BigInt(server.startTimeUnixNano) <= BigInt(c.startTimeUnixNano) && BigInt(c.endTimeUnixNano) <= BigInt(server.endTimeUnixNano),
    'the backend span lies within the call span');
}

test('traces: a unary call -> one SERVER span (rpc.*, status OK) and a CLIENT span; the backend gets its traceparent', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const prompt = `unary trace ${hex(8)}`;
  const r = await unary(c, { model: 'tr-ok', prompt });
  assert.ifError(r.err);
  assert.equal(r.res.content, `you said: ${prompt}`);
  const brec = await backendReq(prompt);
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(brec.headers.traceparent || '');
  assert.ok(m, `backend traceparent: ${brec.headers.traceparent}`);
  const { server, client: cl } = await grpcTrace((s) => s.traceId === m[1]);
  const all = await settledTrace(server.traceId, c);
  assert.equal(all.filter((s) => s.kind === 2).length, 1, 'exactly one SERVER span');
  assert.equal(all.length, 2, `exactly 2 spans in the trace: ${all.map((s) => s.name)}`);

  checkGrpcServerSpan(server, 'RouteRequest', { code: S.OK, model: 'tr-ok' });
  assert.ok(!server.parentSpanId, 'root span (no client traceparent)');
  assert.ok(!('error.type' in server.attrs), 'no error.type on success');
  assert.ok(!('airouter.attempts' in server.attrs), 'one try: no airouter.attempts');
  assert.ok(!isError(server), `status not ERROR: ${JSON.stringify(server.status)}`);

  checkClientSpan(cl, server, { model: 'tr-ok', backend: 'tmock', backendModel: 'trace-plain', attempt: 1, port: mock.port });
  assert.equal(m[2], cl.spanId, 'backend traceparent names the CLIENT span');
  assert.ok(!('error.type' in cl.attrs));
  assert.ok(!isError(cl));
  const u = usageOf(prompt);
  assert.equal(cl.attrs['gen_ai.usage.input_tokens'], u.prompt_tokens);
  assert.equal(cl.attrs['gen_ai.usage.output_tokens'], u.completion_tokens);
  // the span's request id is the call's, as the access log has it
  const line = await h.waitFor(() => grpcAccessLines(TRACE).find((l) => l.request_id === server.attrs['airouter.request_id']),
    { timeout: 3000, what: `access log line of request ${server.attrs['airouter.request_id']}` });
  assert.equal(line.grpc_status, 'OK');
  assert.deepEqual(otlp.rejected.map((q) => q.error), [], 'the collector rejected nothing');
});

test('traces: a streaming call -> SERVER span ai_router.AIRouter/StreamingRouteRequest; stream usage on the CLIENT span', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const prompt = `stream trace words ${hex(8)}`;
  const r = await streaming(c, { model: 'tr-ok', prompt }).done;
  assert.ifError(r.err);
  assert.equal(r.msgs.map((x) => x.content).join(''), `you said: ${prompt}`);
  const brec = await backendReq(prompt);
  assert.equal(brec.body.stream, true);
  const { server, client: cl } = await grpcTrace((s) => `00-${s.traceId}-` === (brec.headers.traceparent || '').slice(0, 36));
  checkGrpcServerSpan(server, 'StreamingRouteRequest', { code: S.OK, model: 'tr-ok' });
  assert.ok(!isError(server));
  assert.ok(!('error.type' in server.attrs));
  checkClientSpan(cl, server, { model: 'tr-ok', backend: 'tmock', backendModel: 'trace-plain', attempt: 1, port: mock.port });
  assert.equal(brec.headers.traceparent, `00-${server.traceId}-${cl.spanId}-01`, 'backend traceparent names the CLIENT span');
  const u = usageOf(prompt);
  assert.equal(cl.attrs['gen_ai.usage.input_tokens'], u.prompt_tokens, 'stream usage on the backend span');
  assert.equal(cl.attrs['gen_ai.usage.output_tokens'], u.completion_tokens);
  assert.equal((await settledTrace(server.traceId, c)).length, 2, 'exactly 2 spans in the trace');
});

test('traces: a client traceparent in the call metadata is continued (trace id, parent span id)', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const trace = hex(32);
  const parent = hex(16);
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${trace}-${parent}-01`);
  const prompt = `continued trace ${hex(8)}`;
  const r = await unary(c, { model: 'tr-ok', prompt }, { md });
  assert.ifError(r.err);
  const { server, client: cl } = await grpcTrace((s) => s.traceId === trace);
  checkGrpcServerSpan(server, 'RouteRequest', { code: S.OK, model: 'tr-ok' });
  assert.equal(server.traceId, trace, 'same trace id as the client');
  assert.equal(server.parentSpanId, parent, "the SERVER span's parent is the client's span");
  assert.notEqual(server.spanId, parent);
  checkClientSpan(cl, server, { model: 'tr-ok', backend: 'tmock', backendModel: 'trace-plain', attempt: 1, port: mock.port });
  const brec = await backendReq(prompt);
  assert.equal(brec.headers.traceparent, `00-${trace}-${cl.spanId}-01`, 'the backend gets the CLIENT span, not the client\'s');
  // the same over a stream
  const trace2 = hex(32);
  const md2 = new grpc.Metadata();
  md2.set('traceparent', `00-${trace2}-${parent}-01`);
  const s = await streaming(c, { model: 'tr-ok', prompt: 'continued stream' }, { md: md2 }).done;
  assert.ifError(s.err);
  const t2 = await grpcTrace((x) => x.traceId === trace2);
  checkGrpcServerSpan(t2.server, 'StreamingRouteRequest', { code: S.OK, model: 'tr-ok' });
  assert.equal(t2.server.parentSpanId, parent);
  assert.equal(t2.client.parentSpanId, t2.server.spanId);
});

test('traces: NOT_FOUND -> SERVER span with status code 5, not ERROR, no CLIENT span', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const model = `no-such-${hex(8)}`;
  const r = await unary(c, { model, prompt: 'p' });
  assertCode(r.err, S.NOT_FOUND, 'unknown model');
  const { server } = await grpcTrace((s) => s.attrs['gen_ai.request.model'] === model, { children: 0 });
  checkGrpcServerSpan(server, 'RouteRequest', { code: S.NOT_FOUND, model });
  assert.ok(!isError(server), `NOT_FOUND is the client's doing, not an ERROR: ${JSON.stringify(server.status)}`);
  assert.ok(!server.parentSpanId);
  const all = await settledTrace(server.traceId, c);
  assert.deepEqual(all.filter((s) => s.kind === 3).map((s) => s.name), [], 'no CLIENT span without a backend call');
  // the same over a stream
  const model2 = `no-such-${hex(8)}`;
  const s = await streaming(c, { model: model2, prompt: 'p' }).done;
  assertCode(s.err, S.NOT_FOUND, 'stream unknown model');
  const t2 = await grpcTrace((x) => x.attrs['gen_ai.request.model'] === model2, { children: 0 });
  checkGrpcServerSpan(t2.server, 'StreamingRouteRequest', { code: S.NOT_FOUND, model: model2 });
  assert.ok(!isError(t2.server));
});

test('traces: a dead backend -> UNAVAILABLE, SERVER span ERROR with error.type, CLIENT span(s) with error.type', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const model = `tr-dead-${hex(8)}`;
  const r = await unary(c, { model, prompt: 'nobody home' });
  assertCode(r.err, S.UNAVAILABLE, 'backend down');
  const { server } = await grpcTrace((s) => s.attrs['gen_ai.request.model'] === model);
  const kids = (await settledTrace(server.traceId, c)).filter((s) => s.kind === 3)
    .sort((a, b) => a.attrs['airouter.attempt'] - b.attrs['airouter.attempt']);
  checkGrpcServerSpan(server, 'RouteRequest', { code: S.UNAVAILABLE, model });
  assert.ok(isError(server), `SERVER span status ERROR: ${JSON.stringify(server.status)}`);
  assert.equal(server.attrs['error.type'], 'backend_connect');
  assert.equal(server.status.message, 'backend_connect');
  // retry attempts = 2 may try the one target again: every try has its span, counted in airouter.attempts
  assert.ok(kids.length >= 1 && kids.length <= 2, `CLIENT spans: ${kids.length}`);
  if (kids.length > 1) assert.equal(server.attrs['airouter.attempts'], kids.length);
  else assert.ok(!('airouter.attempts' in server.attrs));
  kids.forEach((k, i) => {
    checkClientSpan(k, server, { model, backend: 'tdead', backendModel: 'trace-dead', attempt: i + 1, port: deadPort });
    assert.equal(k.attrs['error.type'], 'backend_connect', `try ${i + 1}`);
    assert.ok(isError(k), `try ${i + 1} status ERROR`);
    assert.ok(!('gen_ai.usage.input_tokens' in k.attrs));
  });
});

test('traces: a backend 400 -> INVALID_ARGUMENT; the SERVER span is not ERROR (the client\'s doing), the CLIENT span is', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const model = `tr-bad-${hex(8)}`;
  const r = await unary(c, { model, prompt: 'rejected' });
  assertCode(r.err, S.INVALID_ARGUMENT, 'backend 400');
  const { server, client } = await grpcTrace((s) => s.attrs['gen_ai.request.model'] === model);
  assert.equal(server.attrs['rpc.grpc.status_code'], S.INVALID_ARGUMENT);
  assert.equal(server.attrs['error.type'], 'backend_4xx');
  assert.ok(!isError(server), `SERVER span not ERROR: ${JSON.stringify(server.status)}`);
  assert.equal(client.attrs['error.type'], 'backend_4xx');
  assert.ok(isError(client), 'the failed backend call is ERROR');
});

test('traces: failover (dead first target, live second) -> airouter.attempts 2, two CLIENT spans, the first with error.type', T, async () => {
  await traceRouter();
  const c = newClient(TRACE.gport);
  const prompt = `failover trace ${hex(8)}`;
  const r = await unary(c, { model: 'tr-failover', prompt });
  assert.ifError(r.err);
  assert.equal(r.res.content, `you said: ${prompt}`);
  const brec = await backendReq(prompt);
  assert.equal(brec.body.model, 'trace-fo-live');
  const { server, kids } = await grpcTrace((s) => `00-${s.traceId}-` === (brec.headers.traceparent || '').slice(0, 36), { children: 2 });
  assert.equal((await settledTrace(server.traceId, c)).length, 3, 'SERVER + 2 CLIENT spans');
  checkGrpcServerSpan(server, 'RouteRequest', { code: S.OK, model: 'tr-failover' });
  assert.equal(server.attrs['airouter.attempts'], 2);
  assert.ok(!isError(server), `a call that succeeded on the second try is not an ERROR: ${JSON.stringify(server.status)}`);
  assert.ok(!('error.type' in server.attrs), `no error.type on the call: ${server.attrs['error.type']}`);
  const [first, second] = kids;
  checkClientSpan(first, server, { model: 'tr-failover', backend: 'tdead', backendModel: 'trace-fo-dead', attempt: 1, port: deadPort });
  assert.equal(first.attrs['error.type'], 'backend_connect');
  assert.ok(isError(first));
  assert.ok(!('gen_ai.usage.input_tokens' in first.attrs), 'token counts on the last try only');
  checkClientSpan(second, server, { model: 'tr-failover', backend: 'tmock', backendModel: 'trace-fo-live', attempt: 2, port: mock.port });
  assert.ok(!('error.type' in second.attrs));
  assert.ok(!isError(second));
  assert.equal(second.attrs['gen_ai.usage.input_tokens'], usageOf(prompt).prompt_tokens);
  assert.equal(second.attrs['gen_ai.usage.output_tokens'], usageOf(prompt).completion_tokens);
  assert.ok(BigInt(first.endTimeUnixNano) <= BigInt(second.startTimeUnixNano), 'the tries one after the other');
  assert.equal(brec.headers.traceparent, `00-${server.traceId}-${second.spanId}-01`, 'the live backend gets the second try\'s span');
  assert.deepEqual(otlp.rejected.map((q) => q.error), [], 'the collector rejected nothing');
});

test('tracing off: a client traceparent in the metadata reaches the backend unchanged; an invalid one does not', T, async () => {
  const c = newClient(MAIN.gport);
  const tp = `00-${hex(32)}-${hex(16)}-01`;
  const md = new grpc.Metadata();
  md.set('traceparent', tp);
  const prompt = `untraced ${hex(8)}`;
  const r = await unary(c, { model: 'mockmodel', prompt }, { md });
  assert.ifError(r.err);
  assert.equal((await backendReq(prompt)).headers.traceparent, tp);
  // streaming too
  const tp2 = `00-${hex(32)}-${hex(16)}-01`;
  const md2 = new grpc.Metadata();
  md2.set('traceparent', tp2);
  const prompt2 = `untraced stream ${hex(8)}`;
  const s = await streaming(c, { model: 'mockmodel', prompt: prompt2 }, { md: md2 }).done;
  assert.ifError(s.err);
  assert.equal((await backendReq(prompt2)).headers.traceparent, tp2);
  // the client's flags are kept: a context that is not sampled stays not sampled
  const tp3 = `00-${hex(32)}-${hex(16)}-00`;
  const md3 = new grpc.Metadata();
  md3.set('traceparent', tp3);
  const prompt3 = `untraced unsampled ${hex(8)}`;
  assert.ifError((await unary(c, { model: 'mockmodel', prompt: prompt3 }, { md: md3 })).err);
  assert.equal((await backendReq(prompt3)).headers.traceparent, tp3, 'flags 00 passed on as they are');
  // no traceparent, or one that is not valid: none is made up
  for (const [what, bad] of [['none', null], ['junk', 'not-a-traceparent'], ['all-zero trace id', `00-${'0'.repeat(32)}-${hex(16)}-01`],
    ['version 00 with an extra field', `00-${hex(32)}-${hex(16)}-01-extra`], ['flags not hex', `00-${hex(32)}-${hex(16)}-zz`],
    ['version ff', `ff-${hex(32)}-${hex(16)}-01`], ['upper-case hex', `00-${hex(32).toUpperCase()}-${hex(16)}-01`]]) {
    const m = new grpc.Metadata();
    if (bad) m.set('traceparent', bad);
    const p = `untraced ${what} ${hex(8)}`;
    const x = await unary(c, { model: 'mockmodel', prompt: p }, { md: m });
    assert.ifError(x.err);
    assert.equal((await backendReq(p)).headers.traceparent, undefined, `${what}: no traceparent to the backend`);
  }
});

// ---- graceful stop and rolling restart ----

function lifecycleConfig() {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 2;
log = { level = "debug"; };
limits = { drain_timeout = 20; };
retry = { attempts = 1; };
backends = (
  { name = "slow"; type = "echo"; chunk_delay_ms = 100; },
  { name = "fast"; type = "echo"; }
);
models = (
  { name = "slow"; backend = "slow"; default = true; },
  { name = "after"; backend = "fast"; }
);
`;
}

const words = (n, tag) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

test('QUIT while a slow stream is in flight: the stream completes with every piece, then the master exits 0', T, async () => {
  const R = await startWithGrpc(lifecycleConfig());
  const c = newClient(R.gport);
  const prompt = words(25, 'q');
  let quitAt = 0;
  const st = streaming(c, { model: 'slow', prompt }, {
    deadlineMs: 20000,
    onMessage: (m, msgs) => { if (msgs.length === 3 && !quitAt) { quitAt = Date.now(); R.signal('SIGQUIT'); } },
  });
  const r = await st.done;
  assert.ok(quitAt, 'QUIT was sent mid-stream');
  assert.ifError(r.err);
  assert.equal(r.status.code, S.OK);
  assert.equal(r.msgs.length, 25);
  assert.equal(r.msgs.map((m) => m.content).join(''), prompt);
  assert.ok(r.msgs[24].at - quitAt > 1500, 'the stream went on after QUIT');
  const t = setTimeout(() => { try { R.proc.kill('SIGKILL'); } catch { } }, 15000);
  const ex = await R.exited;
  clearTimeout(t);
  assert.deepEqual(ex, { code: 0, signal: null }, R.log);
});

test('rolling restart (HUP) during a slow stream: the stream completes; new calls succeed on new workers', T, async () => {
  const R = await startWithGrpc(lifecycleConfig());
  const c = newClient(R.gport);
  const oldPids = R.workers();
  assert.equal(oldPids.length, 2);
  // 60 pieces 100 ms apart: the reload and the 12 calls below must fit in the stream's 6 s on a slow machine
  const prompt = words(60, 'h');
  let hupAt = 0;
  const st = streaming(c, { model: 'slow', prompt }, {
    deadlineMs: 25000,
    onMessage: (m, msgs) => { if (msgs.length === 3 && !hupAt) { hupAt = Date.now(); R.signal('SIGHUP'); } },
  });
  await h.waitFor(() => hupAt, { timeout: 5000, what: 'HUP sent' });
  await h.waitFor(() => R.log.includes('reload: generation 2 started'), { timeout: 5000, what: `reload\n${R.log}` });
  // the old workers were told to drain (they stop taking gRPC calls)
  await h.waitFor(() => oldPids.every((p) => new RegExp(`\\[${p}\\][^\\n]*graceful stop`).test(R.log)), { timeout: 5000, what: `old workers draining\n${R.log}` });
  const newPids = R.workers().filter((p) => !oldPids.includes(p));
  assert.equal(newPids.length, 2, `new workers: ${R.workers()} (old ${oldPids})`);
  assert.equal(st.msgs.length < 60, true, 'the stream is still in flight');
  // new calls: on the channel that carries the draining stream, and on fresh channels
  const c2 = newClient(R.gport);
  for (let i = 0; i < 4; i++) {
    const a = await unary(c, { model: 'after', prompt: `same channel ${i}` });
    assert.ifError(a.err);
    assert.equal(a.res.content, `same channel ${i}`);
    const b = await unary(c2, { model: 'after', prompt: `new channel ${i}` });
    assert.ifError(b.err);
    assert.equal(b.res.content, `new channel ${i}`);
    const s = await streaming(c2, { model: 'after', prompt: `new stream ${i}` }).done;
    assert.ifError(s.err);
    assert.equal(s.msgs.map((m) => m.content).join(''), `new stream ${i}`);
  }
  assert.equal(st.msgs.length < 60, true, 'the calls after the HUP were made while the old stream ran');
  const r = await st.done;
  assert.ifError(r.err);
  assert.equal(r.status.code, S.OK);
  assert.equal(r.msgs.length, 60);
  assert.equal(r.msgs.map((m) => m.content).join(''), prompt);
  // the old generation exits once drained
  await h.waitFor(() => oldPids.every((p) => !h.alive(p) || !R.workers().includes(p)), { timeout: 10000, what: 'old workers gone' });
  // the worker logs a call after it has sent the status, so the client can be ahead of the log
  const lines = await h.waitFor(() => {
    const l = grpcAccessLines(R);
    return l.filter((x) => x.model === 'after').length >= 12 && l.some((x) => x.model === 'slow' && x.stream === true) && l;
  }, { timeout: 3000, what: 'access log' });
  const afterLines = lines.filter((x) => x.model === 'after');
  for (const l of afterLines) {
    assert.ok(!oldPids.includes(l.worker), `a call after the HUP was served by old worker ${l.worker}`);
    assert.ok(newPids.includes(l.worker), `worker ${l.worker} not among the new ${newPids}`);
    assert.equal(l.grpc_status, 'OK');
  }
  const slowLine = lines.find((x) => x.model === 'slow' && x.stream === true && x.grpc_status === 'OK' && oldPids.includes(x.worker));
  assert.ok(slowLine, `the long stream was served to the end by an old worker: ${JSON.stringify(lines)}`);
  await R.stop();
});
