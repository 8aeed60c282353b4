'use strict';
// End-to-end tests of the OpenAI-compatible API: the official `openai` npm client (and raw
// fetch / node:http where the wire format itself is checked) against the real airouter binary,
// routing to the mock OpenAI-compatible backend in scripts/mock-openai.js, which records what it got.
//
// Two routers are started: OPEN (no api_keys; every backend/model variant) and KEYED (api_keys with
// per-key model lists, no defaults). Both route to one mock. Every backend model name starts with
// "upstream-" so that a single substring finds any leak of one.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { Traffic } = require('./lib/traffic.js');
const { fetchRaw, rawHttp: rawHttpTo, readBody } = require('./lib/http.js');
const { parseSse } = require('./lib/sse.js');
const { assertOpenAIError, assertNoLeak: noLeak, sdkError, assertCleanLog } = require('./lib/assert.js');
const { startMock, embed, replyFor, replyChunks, TOOL_ARGS } = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };
const BACKEND_KEY = 'sk-backend-SECRET-91ab77';
const KEY_A = 'sk-team-a-0123456789abcdef';
const KEY_B = 'sk-team-b-fedcba9876543210';
const CLIENT_KEY = 'sk-client-abc-555';
const B = {
  primary: 'bk-primary-7f3a', nokey: 'bk-nokey-2c4d', passkey: 'bk-passkey-5e6f',
  impatient: 'bk-impatient-8a9b', dead: 'bk-dead-0c1d', idle: 'bk-idle-3e4f',
};

let mock; let open; let keyed; let deadPort;
const traffic = new Traffic(); // every response a test received, for the leak check at the end

// Model groups of the OPEN router, in config order.
const OPEN_MODELS = [
  ['chat-exact', B.primary, 'upstream-exact-m1'],
  ['gpt-4o*', B.primary, 'upstream-glob-m2'],
  ['fallback-chat', B.primary, 'upstream-default-m3', 'kinds = ["chat"]; default = true;'],
  ['passthru-model', B.primary, null],
  ['pass-*', B.primary, null],
  ['text-model', B.primary, 'upstream-text-m4', 'kinds = ["completions"]; default = true;'],
  ['embed-model', B.primary, 'upstream-embed-m5', 'kinds = ["embeddings"];'],
  ['tools-model', B.primary, 'upstream-tool-call-m6'],
  ['err-400', B.primary, 'upstream-error-400-m7'],
  ['err-leaky', B.primary, 'upstream-error-400-leaky-m8'],
  ['err-404', B.primary, 'upstream-error-404-m9'],
  ['err-429', B.primary, 'upstream-error-429-m10'],
  ['err-500', B.primary, 'upstream-error-500-m11'],
  ['err-503', B.primary, 'upstream-error-503-m12'],
  ['slow-first', B.impatient, 'upstream-slow-first-byte-3000-m13'],
  ['hang-model', B.impatient, 'upstream-hang-m14'],
  ['slow-stream', B.primary, 'upstream-slow-stream-40x100-m15'],
  ['trickle', B.primary, 'upstream-slow-stream-10x150-m23'],
  ['die-model', B.primary, 'upstream-stream-then-die-m16'],
  ['agg-model', B.primary, 'upstream-agg-m17', 'backend_stream = true;'],
  ['synth-model', B.primary, 'upstream-synth-m18', 'backend_stream = false;'],
  ['delay-model', B.primary, 'upstream-delay-20-m19'],
  ['nokey-model', B.nokey, 'upstream-nokey-m20'],
  ['passkey-model', B.passkey, 'upstream-passkey-m21'],
  ['dead-model', B.dead, 'upstream-dead-m22'],
  ['echo-model', 'echo', null],
  ['stall-model', B.idle, 'upstream-stall-2-3000-m24'],
  ['slow-first-long', B.primary, 'upstream-slow-first-byte-4000-m25'],
  ['err-html', B.primary, 'upstream-error-html-m26'],
  ['garbage-model', B.primary, 'upstream-garbage-m27'],
  ['agg-slow', B.primary, 'upstream-slow-stream-40x100-m28', 'backend_stream = true;'],
  ['sse-crlf', B.primary, 'upstream-sse-crlf-m29'],
  ['sse-nospace', B.primary, 'upstream-sse-nospace-m30'],
  ['sse-comments', B.primary, 'upstream-sse-comments-m31'],
  ['fragmented', B.primary, 'upstream-fragmented-m32'],
  ['dated-model', B.primary, 'upstream-dated-m33'],
  ['stream-err', B.primary, 'upstream-stream-error-event-m34'],
  ['agg-tools', B.primary, 'upstream-tool-call-m35', 'backend_stream = true;'],
  ['synth-tools', B.primary, 'upstream-tool-call-m36', 'backend_stream = false;'],
  ['meta-llama/Llama-3.1-8B-Instruct', B.primary, null],
  ['err-long', B.primary, 'upstream-error-400-long-m37'],
];
const backendModelOf = (name) => OPEN_MODELS.find((m) => m[0] === name)[2];
const isGlob = (n) => /[*?[]/.test(n);

function openConfig(mockUrl) {
  const models = OPEN_MODELS.map(([name, backend, bm, extra]) =>
    `  { name = "${name}"; backend = "${backend}";${bm ? ` backend_model = "${bm}";` : ''} ${extra || ''} }`).join(',\n');
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { max_body_bytes = 65536; drain_timeout = 5; };
# These tests check translation and errors of one backend call: no retries, no circuit
# breaking (tests/e2e/resilience.test.js covers those).
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "${B.primary}"; type = "openai"; url = "${mockUrl}"; api_key = "\${BK_KEY}";
    headers = ( "X-Org: acme" ); connect_timeout = 2.0; first_byte_timeout = 10.0; idle_timeout = 10.0; timeout = 60.0; },
  { name = "${B.nokey}"; type = "openai"; url = "${mockUrl}"; },
  { name = "${B.passkey}"; type = "openai"; url = "${mockUrl}"; pass_client_key = true; },
  { name = "${B.impatient}"; type = "openai"; url = "${mockUrl}"; api_key = "\${BK_KEY}"; connect_timeout = 2.0; first_byte_timeout = 0.5; idle_timeout = 5.0; },
  { name = "${B.idle}"; type = "openai"; url = "${mockUrl}"; first_byte_timeout = 5.0; idle_timeout = 1.0; },
  { name = "${B.dead}"; type = "openai"; url = "http://127.0.0.1:${deadPort}/v1"; connect_timeout = 1.0; },
  { name = "echo"; type = "echo"; }
);
models = (
${models}
);
`;
}

const KEYED_MODELS = [['chat-a', 'upstream-ka'], ['gpt-4o*', 'upstream-kglob'], ['chat-b', 'upstream-kb'], ['other', 'upstream-kother']];
function keyedConfig(mockUrl) {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 5; };
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; };
backends = ( { name = "${B.primary}"; type = "openai"; url = "${mockUrl}"; } );
models = (
${KEYED_MODELS.map(([n, bm]) => `  { name = "${n}"; backend = "${B.primary}"; backend_model = "${bm}"; }`).join(',\n')}
);
api_keys = (
  { key = "\${KEY_A}"; name = "team-a"; models = ["chat-*"]; },
  { key = "\${KEY_B}"; name = "team-b"; }
);
`;
}

// ---------------------------------------------------------------- helpers

const client = (router, apiKey = CLIENT_KEY, opts = {}) => clients.openai(router, { apiKey, fetch: traffic.fetch('sdk'), ...opts });
const raw = (router, method, path, opts = {}) => fetchRaw(router.base, method, path, { ...opts, traffic });
const rawHttp = (router, method, path, opts = {}) => rawHttpTo(router.port, method, path, { ...opts, traffic });

// An SSE answer read to its end: { status, headers, events, comments, badLines, raw, cleanEnd }.
async function rawStream(router, path, json, headers = {}) {
  const res = await fetch(`${router.base}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json), signal: AbortSignal.timeout(20000),
  });
  const b = await readBody(res);
  traffic.push({ where: `rawStream ${path}`, status: res.status, headers: [...res.headers], body: b.raw });
  return { status: res.status, headers: res.headers, ...parseSse(b.raw), ...b };
}

// Everything a client must never see.
function leakNeedles() {
  const n = [BACKEND_KEY, 'SECRET', 'upstream-', ...Object.values(B), `127.0.0.1:${mock.port}`, `localhost:${mock.port}`,
    `127.0.0.1:${deadPort}`, mock.url];
  return n;
}
const assertNoLeak = (text, what) => noLeak(text, what, leakNeedles());
const assertError = (r, status, code, opts = {}) => assertOpenAIError(r, status, code, { ...opts, needles: leakNeedles() });

const chatBody = (model, text, extra = {}) => ({ model, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: text }], ...extra });
const expectedChat = (text, extra = {}) => replyFor({ messages: chatBody('x', text).messages, ...extra }, 'chat');
const lastReqFor = (backendModel) => mock.last((r) => r.model === backendModel);

// ---------------------------------------------------------------- setup

before(async () => {
  mock = await startMock({ port: await h.freePort() });
  deadPort = await h.freePort(); // nothing listens there
  open = await h.startRouter(openConfig(mock.url), { env: { BK_KEY: BACKEND_KEY } });
  keyed = await h.startRouter(keyedConfig(mock.url), { env: { KEY_A, KEY_B } });
}, { timeout: 30000 });

after(async () => {
  if (open) await open.stop();
  if (keyed) await keyed.stop();
  if (mock) await mock.close();
});

// ---------------------------------------------------------------- chat

test('chat: plain completion, model rewritten both ways, body relayed untouched', T, async () => {
  const c = client(open);
  const r = await c.chat.completions.create(chatBody('chat-exact', 'hello there, router'));
  const exp = expectedChat('hello there, router');
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'chat-exact');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, exp.text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.deepEqual(r.usage, exp.usage);
  const rec = lastReqFor('upstream-exact-m1');
  assert.ok(rec, 'mock received the request with the backend model');
  assert.equal(rec.path, '/v1/chat/completions');
  assert.equal(rec.method, 'POST');
  // The client got exactly what the backend sent, apart from `model`.
  assert.deepEqual(r, { ...rec.response, model: 'chat-exact' });
});

test('chat: streamed via the SDK, deltas in order exactly as the backend sent them, model in every chunk', T, async () => {
  const c = client(open);
  const text = 'stream me these seven words please ok';
  const stream = await c.chat.completions.create({ ...chatBody('chat-exact', text), stream: true });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  const exp = expectedChat(text);
  for (const ch of chunks) {
    assert.equal(ch.model, 'chat-exact');
    assert.equal(ch.object, 'chat.completion.chunk');
  }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const deltas = chunks.filter((c) => c.choices[0] && c.choices[0].delta.content).map((c) => c.choices[0].delta.content);
  assert.deepEqual(deltas, exp.chunks, 'one delta per backend chunk, in order (no coalescing)');
  assert.equal(deltas.join(''), exp.text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.ok(!chunks.some((c) => c.usage), 'no usage chunk unless asked for');
  const rec = lastReqFor('upstream-exact-m1');
  assert.equal(rec.body.stream, true);
});

test('chat: raw SSE framing, every event relayed untouched except model, include_usage, [DONE] last', T, async () => {
  const text = 'raw framing check with ünïcödé 🌍 text';
  const r = await rawStream(open, '/v1/chat/completions', { ...chatBody('chat-exact', text), stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
  assert.ok(r.cleanEnd, 'stream ended cleanly');
  assert.ok(r.raw.endsWith('data: [DONE]\n\n'), `ends with data: [DONE]\\n\\n: ...${JSON.stringify(r.raw.slice(-80))}`);
  assert.equal(r.events.filter((e) => e === '[DONE]').length, 1, '[DONE] exactly once');
  assert.equal(r.events.at(-1), '[DONE]');
  assert.ok(!r.raw.includes('!!unexpected'), 'only data: lines (and comments)');
  const rec = lastReqFor('upstream-exact-m1');
  assert.deepEqual(rec.body.stream_options, { include_usage: true });
  const got = r.events.slice(0, -1);
  assert.equal(got.length, rec.response.length, 'same number of events as the backend sent');
  got.forEach((ev, i) => assert.deepEqual(ev, { ...rec.response[i], model: 'chat-exact' }, `event ${i}`));
  const exp = expectedChat(text);
  const usageChunk = got.at(-1);
  assert.deepEqual(usageChunk.choices, []);
  assert.deepEqual(usageChunk.usage, exp.usage);
  assert.equal(got.map((e) => (e.choices[0] && e.choices[0].delta.content) || '').join(''), exp.text);
});

test('chat: unknown and future fields pass through untouched; only model is replaced', T, async () => {
  const sent = {
    model: 'chat-exact',
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two ✓' }], name: 'alice' },
    ],
    temperature: 0.25, top_p: 0.9, seed: 42, n: 1, user: 'user-1', stop: ['\n\nEND'],
    logit_bias: { 50256: -100 }, metadata: { trace: 'abc' }, response_format: { type: 'text' },
    some_future_field: { nested: [1, 'two', null, true, { deep: 1.5, empty: {} }], s: 'q"uote\\back' },
    another_unknown: 'x', parallel_tool_calls: false,
  };
  const r = await raw(open, 'POST', '/v1/chat/completions', { json: sent });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.model, 'chat-exact');
  assert.equal(r.json.choices[0].message.content, 'you said: part one part two ✓');
  const rec = lastReqFor('upstream-exact-m1');
  assert.deepEqual(rec.body, { ...sent, model: 'upstream-exact-m1' });
  assert.match(rec.headers['content-type'] || '', /application\/json/);
});

test('chat: tool_calls streamed with arguments split across chunks, relayed intact', T, async () => {
  const c = client(open);
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }];
  const stream = await c.chat.completions.create({ ...chatBody('tools-model', 'weather in Paris?'), tools, stream: true });
  let args = ''; let name; let id; let finish;
  for await (const ch of stream) {
    assert.equal(ch.model, 'tools-model');
    const ch0 = ch.choices[0];
    if (!ch0) continue;
    for (const tc of ch0.delta.tool_calls || []) {
      if (tc.id) id = tc.id;
      if (tc.function && tc.function.name) name = tc.function.name;
      if (tc.function && tc.function.arguments) args += tc.function.arguments;
    }
    if (ch0.finish_reason) finish = ch0.finish_reason;
  }
  assert.equal(id, 'call_mock1');
  assert.equal(name, 'get_weather');
  assert.equal(args, TOOL_ARGS);
  assert.deepEqual(JSON.parse(args), { location: 'Paris, France', unit: 'celsius' });
  assert.equal(finish, 'tool_calls');
  assert.deepEqual(lastReqFor('upstream-tool-call-m6').body.tools, tools);

  const r = await c.chat.completions.create({ ...chatBody('tools-model', 'again'), tools });
  assert.equal(r.model, 'tools-model');
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.tool_calls[0].function.arguments, TOOL_ARGS);
});

test('chat: X-Request-Id from the client is kept (the backend\'s is not forwarded)', T, async () => {
  const r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('chat-exact', 'rid'), headers: { 'X-Request-Id': 'test-rid-123' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-request-id'), 'test-rid-123');
  const r2 = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('chat-exact', 'rid') });
  assert.ok(r2.headers.get('x-request-id'), 'a generated X-Request-Id');
  assert.ok(!/^req_mock_/.test(r2.headers.get('x-request-id')), 'not the backend\'s request id');
});

// ---------------------------------------------------------------- routing / rewriting

test('routing: glob, default and pass-through (exact and glob) rewrite the model both ways', T, async () => {
  const c = client(open);
  const cases = [
    // [requested, what the backend must see]
    ['gpt-4o-mini', 'upstream-glob-m2'],
    ['gpt-4o', 'upstream-glob-m2'],
    ['no-such-model-xyz', 'upstream-default-m3'],
    ['passthru-model', 'passthru-model'],
    ['pass-anything-42', 'pass-anything-42'],
  ];
  for (const [asked, backendSees] of cases) {
    const text = `routing ${asked}`;
    const r = await c.chat.completions.create(chatBody(asked, text));
    assert.equal(r.model, asked, `non-stream response model for ${asked}`);
    assert.equal(r.choices[0].message.content, expectedChat(text).text);
    assert.equal(mock.last().model, backendSees, `backend model for ${asked}`);

    const stream = await c.chat.completions.create({ ...chatBody(asked, text), stream: true, stream_options: { include_usage: true } });
    let content = ''; let n = 0;
    for await (const ch of stream) {
      n++;
      assert.equal(ch.model, asked, `stream chunk model for ${asked}`);
      if (ch.choices[0] && ch.choices[0].delta.content) content += ch.choices[0].delta.content;
    }
    assert.ok(n > 2);
    assert.equal(content, expectedChat(text).text);
    assert.equal(mock.last().model, backendSees, `backend model for streamed ${asked}`);
  }
});

test('routing: a model name with a slash (Hugging Face style) routes, passes through and can be retrieved', T, async () => {
  const name = 'meta-llama/Llama-3.1-8B-Instruct';
  const c = client(open);
  const r = await c.chat.completions.create(chatBody(name, 'slash name'));
  assert.equal(r.model, name);
  assert.equal(mock.last().model, name);
  const m = await c.models.retrieve(name);
  assert.equal(m.id, name);
  const enc = await raw(open, 'GET', `/v1/models/${encodeURIComponent(name)}`);
  assert.equal(enc.status, 200, `percent-encoded id: ${enc.text}`);
  assert.equal(enc.json.id, name);
});

test('routing: completions default model', T, async () => {
  const c = client(open);
  const r = await c.completions.create({ model: 'some-unknown-text-model', prompt: 'default completion' });
  assert.equal(r.model, 'some-unknown-text-model');
  assert.equal(r.choices[0].text, 'you said: default completion');
  assert.equal(mock.last().model, 'upstream-text-m4');
});

// ---------------------------------------------------------------- completions / embeddings / models

test('completions: plain and streamed', T, async () => {
  const c = client(open);
  const prompt = 'complete this sentence for me';
  const exp = replyFor({ prompt }, 'completions');
  const r = await c.completions.create({ model: 'text-model', prompt, max_tokens: 50 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.model, 'text-model');
  assert.equal(r.choices[0].text, exp.text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.deepEqual(r.usage, exp.usage);
  const rec = lastReqFor('upstream-text-m4');
  assert.equal(rec.path, '/v1/completions');
  assert.deepEqual(rec.body, { model: 'upstream-text-m4', prompt, max_tokens: 50 });

  const stream = await c.completions.create({ model: 'text-model', prompt, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  for (const ch of chunks) assert.equal(ch.model, 'text-model');
  const texts = chunks.filter((ch) => ch.choices.length && ch.choices[0].text).map((ch) => ch.choices[0].text);
  assert.deepEqual(texts, exp.chunks);
  assert.ok(chunks.some((ch) => ch.choices[0] && ch.choices[0].finish_reason === 'stop'));
  assert.deepEqual(chunks.at(-1).usage, exp.usage);
  assert.deepEqual(chunks.at(-1).choices, []);

  const raw1 = await rawStream(open, '/v1/completions', { model: 'text-model', prompt, stream: true });
  assert.equal(raw1.status, 200);
  assert.equal(raw1.events.at(-1), '[DONE]');
});

test('embeddings: SDK default (base64) and explicit float, deterministic vectors, model rewritten', T, async () => {
  const c = client(open);
  const inputs = ['first input', 'second input'];
  const r = await c.embeddings.create({ model: 'embed-model', input: inputs });
  assert.equal(r.object, 'list');
  assert.equal(r.model, 'embed-model');
  assert.equal(r.data.length, 2);
  r.data.forEach((d, i) => {
    assert.equal(d.index, i);
    assert.equal(d.object, 'embedding');
    assert.deepEqual(Array.from(d.embedding), embed(inputs[i], 8));
  });
  const rec = lastReqFor('upstream-embed-m5');
  assert.equal(rec.path, '/v1/embeddings');
  assert.equal(rec.body.encoding_format, 'base64');
  assert.deepEqual(rec.body.input, inputs);
  assert.deepEqual(r.usage, rec.response.usage);

  const f = await raw(open, 'POST', '/v1/embeddings', { json: { model: 'embed-model', input: 'one string', encoding_format: 'float', dimensions: 4 } });
  assert.equal(f.status, 200, f.text);
  assert.equal(f.json.model, 'embed-model');
  assert.deepEqual(f.json.data[0].embedding, embed('one string', 4));
  assert.deepEqual(lastReqFor('upstream-embed-m5').body, { model: 'upstream-embed-m5', input: 'one string', encoding_format: 'float', dimensions: 4 });
});

test('models: list in config order without globs; retrieve; unknown -> 404', T, async () => {
  const c = client(open);
  const expected = OPEN_MODELS.map((m) => m[0]).filter((n) => !isGlob(n));
  const page = await c.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, expected);
  for (const m of page.data) {
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, 'airouter');
    assert.equal(typeof m.created, 'number');
  }
  const raw1 = await raw(open, 'GET', '/v1/models');
  assert.equal(raw1.status, 200);
  assert.equal(raw1.json.object, 'list');
  assert.deepEqual(Object.keys(raw1.json.data[0]).sort(), ['created', 'id', 'object', 'owned_by']);

  const one = await c.models.retrieve('chat-exact');
  assert.equal(one.id, 'chat-exact');
  assert.equal(one.object, 'model');
  assert.equal(one.owned_by, 'airouter');
  const e = await raw(open, 'GET', '/v1/models/definitely-not-a-model');
  assertError(e, 404, 'model_not_found');
});

// ---------------------------------------------------------------- keys and backend authorization

test('keys: Bearer and x-api-key accepted, bad or missing rejected with 401 invalid_api_key', T, async () => {
  const body = chatBody('chat-a', 'key check');
  const ok1 = await raw(keyed, 'POST', '/v1/chat/completions', { json: body, headers: { Authorization: `Bearer ${KEY_A}` } });
  assert.equal(ok1.status, 200, ok1.text);
  assert.equal(ok1.json.model, 'chat-a');
  const ok2 = await raw(keyed, 'POST', '/v1/chat/completions', { json: body, headers: { 'x-api-key': KEY_B } });
  assert.equal(ok2.status, 200, ok2.text);
  const okSdk = await client(keyed, KEY_A).chat.completions.create(body);
  assert.equal(okSdk.choices[0].message.content, expectedChat('key check').text);

  for (const headers of [{}, { Authorization: 'Bearer sk-wrong' }, { 'x-api-key': 'sk-wrong' }, { Authorization: `Bearer ${KEY_A}x` },
    { Authorization: `Bearer ${KEY_A.slice(0, -1)}` }, { Authorization: KEY_A }]) {
    const r = await raw(keyed, 'POST', '/v1/chat/completions', { json: body, headers });
    assertError(r, 401, 'invalid_api_key', { type: 'invalid_request_error' });
  }
  const r = await raw(keyed, 'GET', '/v1/models');
  assertError(r, 401, 'invalid_api_key', { type: 'invalid_request_error' });
  const e = await sdkError(client(keyed, 'sk-nope').chat.completions.create(body));
  assert.equal(e.status, 401);
  assert.equal(e.code, 'invalid_api_key');
});

test('keys: per-key model list, retrieve and use (404 for models a key may not use)', T, async () => {
  const nonGlob = KEYED_MODELS.map((m) => m[0]).filter((n) => !isGlob(n));
  const listA = await client(keyed, KEY_A).models.list();
  assert.deepEqual(listA.data.map((m) => m.id), nonGlob.filter((n) => n.startsWith('chat-')));
  const listB = await client(keyed, KEY_B).models.list();
  assert.deepEqual(listB.data.map((m) => m.id), nonGlob);

  assertError(await raw(keyed, 'GET', '/v1/models/other', { headers: { Authorization: `Bearer ${KEY_A}` } }), 404, 'model_not_found');
  const ok = await raw(keyed, 'GET', '/v1/models/other', { headers: { Authorization: `Bearer ${KEY_B}` } });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.id, 'other');

  const before = mock.requests.length;
  const denied = await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('other', 'x'), headers: { Authorization: `Bearer ${KEY_A}` } });
  assertError(denied, 404, 'model_not_found');
  const deniedGlob = await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('gpt-4o-mini', 'x'), headers: { Authorization: `Bearer ${KEY_A}` } });
  assertError(deniedGlob, 404, 'model_not_found');
  assert.equal(mock.requests.length, before, 'denied requests never reach the backend');
  const allowed = await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('other', 'x'), headers: { Authorization: `Bearer ${KEY_B}` } });
  assert.equal(allowed.status, 200, allowed.text);
  assert.equal(allowed.json.model, 'other');
  assert.equal(mock.last().model, 'upstream-kother');
  const unknown = await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('nope-model', 'x'), headers: { Authorization: `Bearer ${KEY_B}` } });
  assertError(unknown, 404, 'model_not_found');
});

test('backend authorization: api_key sent, none without it, client key only with pass_client_key', T, async () => {
  const c = client(open, CLIENT_KEY);
  await c.chat.completions.create(chatBody('chat-exact', 'auth'));
  let rec = lastReqFor('upstream-exact-m1');
  assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`);
  assert.equal(rec.headers['x-org'], 'acme', 'extra backend header sent');
  assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY), 'client key not forwarded');

  await c.chat.completions.create(chatBody('nokey-model', 'auth'));
  rec = lastReqFor('upstream-nokey-m20');
  assert.equal(rec.headers.authorization, undefined, 'no Authorization without api_key');
  assert.equal(rec.headers['x-api-key'], undefined);
  assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY), 'client key not forwarded');

  await c.chat.completions.create(chatBody('passkey-model', 'auth'));
  rec = lastReqFor('upstream-passkey-m21');
  assert.equal(rec.headers.authorization, `Bearer ${CLIENT_KEY}`, 'pass_client_key forwards the client key');

  // Keyed router, backend without api_key: the router key must not reach the backend.
  await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('chat-a', 'auth'), headers: { Authorization: `Bearer ${KEY_A}` } });
  await raw(keyed, 'POST', '/v1/chat/completions', { json: chatBody('chat-b', 'auth'), headers: { 'x-api-key': KEY_A } });
  for (const bm of ['upstream-ka', 'upstream-kb']) {
    rec = lastReqFor(bm);
    assert.equal(rec.headers.authorization, undefined);
    assert.ok(!JSON.stringify(rec.headers).includes(KEY_A), 'router key not forwarded');
  }
});

// ---------------------------------------------------------------- errors

test('errors: routing and request errors (404 unknown_url, 405, 400 invalid_json / missing params, 404 model, 400 unsupported_kind)', T, async () => {
  assertError(await raw(open, 'GET', '/v1/nonexistent'), 404, 'unknown_url', { type: 'invalid_request_error' });
  assertError(await raw(open, 'POST', '/v2/chat/completions', { json: {} }), 404, 'unknown_url', { type: 'invalid_request_error' });

  let r = await raw(open, 'GET', '/v1/chat/completions');
  assertError(r, 405, 'method_not_allowed');
  assert.match(r.headers.get('allow') || '', /POST/);
  r = await raw(open, 'DELETE', '/v1/models');
  assertError(r, 405, 'method_not_allowed');
  assert.match(r.headers.get('allow') || '', /GET/);

  const before = mock.requests.length;
  for (const body of ['{"model": "chat-exact", "messages": [', 'not json at all', '{"model":"chat-exact","messages":[]}}', '']) {
    r = await raw(open, 'POST', '/v1/chat/completions', { body, headers: { 'content-type': 'application/json' } });
    assertError(r, 400, 'invalid_json', { type: 'invalid_request_error' });
  }
  r = await raw(open, 'POST', '/v1/chat/completions', { json: { messages: [{ role: 'user', content: 'x' }] } });
  assertError(r, 400, 'missing_required_parameter', { param: 'model' });
  r = await raw(open, 'POST', '/v1/chat/completions', { json: { model: 'chat-exact' } });
  assertError(r, 400, 'missing_required_parameter', { param: 'messages' });
  assert.equal(mock.requests.length, before, 'invalid requests never reach the backend');

  r = await raw(open, 'POST', '/v1/embeddings', { json: { model: 'no-such-embedding-model', input: 'x' } });
  assertError(r, 404, 'model_not_found');
  const e = await sdkError(client(open).embeddings.create({ model: 'no-such-embedding-model', input: 'x' }));
  assert.equal(e.status, 404);
  assert.equal(e.code, 'model_not_found');

  r = await raw(open, 'POST', '/v1/embeddings', { json: { model: 'echo-model', input: 'x' } });
  assertError(r, 400, 'unsupported_kind');
  assert.equal(mock.requests.length, before);
});

test('errors: error bodies are valid UTF-8 JSON whatever the model name or path (quotes, controls, long multibyte, bad bytes)', T, async () => {
  const names = ['we"ird\\name\n\u0001<x>', 'é'.repeat(150), `a${'é'.repeat(300)}`, `ab${'🌍'.repeat(200)}`, 'x'.repeat(5000)];
  const reqs = [];
  for (const model of names) {
    reqs.push([`embeddings model ${JSON.stringify(model.slice(0, 12))}... (${model.length} chars)`, open, 'POST', '/v1/embeddings', { model, input: 'x' }, {}]);
    reqs.push([`keyed chat model ${JSON.stringify(model.slice(0, 12))}... (${model.length} chars)`, keyed, 'POST', '/v1/chat/completions', chatBody(model, 'x'), { Authorization: `Bearer ${KEY_B}` }]);
  }
  reqs.push(['unknown path, long multibyte', open, 'GET', `/v1/${encodeURIComponent(`a${'é'.repeat(150)}`)}`, undefined, {}]);
  reqs.push(['unknown path, invalid UTF-8 bytes', open, 'GET', '/v1/%FF%FEabc', undefined, {}]);
  const bad = [];
  for (const [what, router, method, path, body, headers] of reqs) {
    const init = { method, headers: { 'content-type': 'application/json', ...headers }, signal: AbortSignal.timeout(10000) };
    if (body) init.body = JSON.stringify(body);
    const res = await fetch(`${router.base}${path}`, init);
    const buf = Buffer.from(await res.arrayBuffer());
    let text;
    try { text = new TextDecoder('utf-8', { fatal: true }).decode(buf); } catch {
      bad.push(`${what}: the ${res.status} error body is not valid UTF-8: ${buf.toString('latin1').slice(0, 50)}...${buf.subarray(-40).toString('latin1')}`);
      continue;
    }
    let j;
    try { j = JSON.parse(text); } catch { bad.push(`${what}: not JSON: ${text.slice(0, 100)}`); continue; }
    if (![400, 404].includes(res.status)) bad.push(`${what}: status ${res.status}`);
    if (!(j.error && typeof j.error.message === 'string')) bad.push(`${what}: not an OpenAI-style error: ${text.slice(0, 100)}`);
  }
  assert.deepEqual(bad, []);
});

test('errors: body too large -> 413 request_too_large (Content-Length and chunked)', T, async () => {
  const big = JSON.stringify(chatBody('chat-exact', 'x'.repeat(200000)));
  const before = mock.requests.length;
  let r = await rawHttp(open, 'POST', '/v1/chat/completions', {
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big), connection: 'close' }, chunks: [big],
  });
  assertError(r, 413, 'request_too_large');
  const pieces = [];
  for (let i = 0; i < big.length; i += 16384) pieces.push(big.slice(i, i + 16384));
  r = await rawHttp(open, 'POST', '/v1/chat/completions', {
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', connection: 'close' }, chunks: pieces,
  });
  assertError(r, 413, 'request_too_large');
  assert.equal(mock.requests.length, before, 'oversized requests never reach the backend');
  // Over keep-alive (undici): the refused body must not be read as the next request.
  for (let i = 0; i < 3; i++) {
    let status;
    try {
      const res = await fetch(`${open.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big, signal: AbortSignal.timeout(10000) });
      status = res.status; await res.text();
    } catch (e) { status = `network error ${e.cause && e.cause.code}`; }
    assert.equal(status, 413);
    const ok = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('chat-exact', `after 413 ${i}`) });
    assert.equal(ok.status, 200, ok.text);
  }
  // Just under the limit still works.
  const fits = JSON.stringify(chatBody('chat-exact', 'y'.repeat(60000)));
  const ok = await raw(open, 'POST', '/v1/chat/completions', { body: fits, headers: { 'content-type': 'application/json' } });
  assert.equal(ok.status, 200, ok.text.slice(0, 300));
});

test('errors: backend 4xx passed through with status, type and code, sanitised of backend details', T, async () => {
  let r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-400', 'x', { temperature: 1.5 }) });
  let e = assertError(r, 400, 'invalid_value', { type: 'invalid_request_error' });
  assert.equal(e.message, "Invalid value for 'temperature': model 'err-400' does not support temperature=7.");

  r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-404', 'x') });
  e = assertError(r, 404, 'model_not_found', { type: 'invalid_request_error' });
  assert.equal(e.message, 'The model `err-404` does not exist or you do not have access to it.');

  r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-429', 'x') });
  e = assertError(r, 429, 'rate_limit_exceeded', { type: 'requests' });
  assert.match(e.message, /err-429/);

  // A long backend message with multibyte text: passed on (perhaps shortened) as valid UTF-8 JSON.
  for (const text of [`a${'é'.repeat(700)}`, `${'日本語'.repeat(300)}`, `ab${'🌍'.repeat(400)}`]) {
    const res = await fetch(`${open.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody('err-long', text)), signal: AbortSignal.timeout(10000) });
    assert.equal(res.status, 400);
    const buf = Buffer.from(await res.arrayBuffer());
    let body;
    try { body = new TextDecoder('utf-8', { fatal: true }).decode(buf); } catch {
      assert.fail(`long backend 400 message (${text.slice(0, 3)}...): the error body is not valid UTF-8: ...${buf.subarray(-120).toString('latin1')}`);
    }
    const j = JSON.parse(body);
    assert.equal(j.error.code, 'invalid_value');
    assert.match(j.error.message, /^1 validation error for model err-long: /);
    assertNoLeak(body, 'long backend 400');
  }

  // The backend names its own URL in the message: the client must not see it.
  r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-leaky', 'x') });
  assertError(r, 400, 'invalid_value');

  // Streaming request: the error comes before the stream starts -> a plain HTTP error.
  const se = await sdkError(client(open).chat.completions.create({ ...chatBody('err-400', 'x'), stream: true }));
  assert.equal(se.status, 400);
  assert.equal(se.code, 'invalid_value');
  assertNoLeak(se.message, 'SDK error message');
});

test('errors: backend 5xx -> 502 backend_error; unreachable -> 502 backend_unavailable', T, async () => {
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-500', 'x') }), 502, 'backend_error', { type: 'server_error' });
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-503', 'x') }), 502, 'backend_error', { type: 'server_error' });
  assertError(await raw(open, 'POST', '/v1/embeddings', { json: { model: 'err-500', input: 'x' } }), 502, 'backend_error', { type: 'server_error' });
  const t0 = Date.now();
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('dead-model', 'x') }), 502, 'backend_unavailable');
  assert.ok(Date.now() - t0 < 5000, 'refused connection reported promptly');
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: { ...chatBody('dead-model', 'x'), stream: true } }), 502, 'backend_unavailable');
  const e = await sdkError(client(open).chat.completions.create({ ...chatBody('err-500', 'x'), stream: true }));
  assert.equal(e.status, 502);
  assert.equal(e.code, 'backend_error');
});

test('errors: backend answers that are not OpenAI JSON (HTML 404, garbage 200) become sanitised OpenAI errors', T, async () => {
  let r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('err-html', 'x') });
  assert.equal(r.status, 404, r.text);
  assert.match(r.headers.get('content-type') || '', /application\/json/);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', `OpenAI-style error: ${r.text}`);
  assertNoLeak(r.text, 'HTML 404 passthrough');
  assert.ok(!r.text.includes('<html'), 'no backend HTML page relayed');

  r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('garbage-model', 'x') });
  assert.equal(r.status, 502, r.text);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', `OpenAI-style error: ${r.text}`);
  assertNoLeak(r.text, 'garbage 200');
});

test('errors: missing input for embeddings -> 400 missing_required_parameter', T, async () => {
  assertError(await raw(open, 'POST', '/v1/embeddings', { json: { model: 'embed-model' } }), 400, 'missing_required_parameter', { param: 'input' });
});

test('errors: first-byte timeout -> 504 backend_timeout, backend connection closed', T, async () => {
  let t0 = Date.now();
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('slow-first', 'x') }), 504, 'backend_timeout');
  let took = Date.now() - t0;
  assert.ok(took >= 400 && took < 2500, `timed out after first_byte_timeout (0.5 s), took ${took} ms`);

  t0 = Date.now();
  assertError(await raw(open, 'POST', '/v1/chat/completions', { json: { ...chatBody('hang-model', 'x'), stream: true } }), 504, 'backend_timeout');
  took = Date.now() - t0;
  assert.ok(took < 2500, `hang: took ${took} ms`);
  const rec = lastReqFor('upstream-hang-m14');
  await mock.waitClosed(rec, 3000); // the router gave up on the backend connection
});

test('errors: backend dies after the stream started -> final SSE error event, no [DONE]', T, async () => {
  const r = await rawStream(open, '/v1/chat/completions', { ...chatBody('die-model', 'one two three four five'), stream: true });
  assert.equal(r.status, 200);
  assert.ok(r.events.length >= 2, `got events: ${r.raw}`);
  assert.equal(r.events[0].choices[0].delta.role, 'assistant');
  assert.equal(r.events[0].model, 'die-model');
  const last = r.events.at(-1);
  assert.ok(last && last.error, `last event is an error event: ${r.raw}`);
  assert.equal(typeof last.error.message, 'string');
  assert.ok(!r.events.includes('[DONE]'), 'no [DONE] after an error');
  assert.equal(r.events.filter((x) => x.error).length, 1);
  assertNoLeak(r.raw, 'stream error');
  assert.ok(r.cleanEnd, 'the stream is ended properly (chunked terminator), not cut');

  // The SDK surfaces it as an APIError while iterating.
  const stream = await client(open).chat.completions.create({ ...chatBody('die-model', 'one two three'), stream: true });
  let got = 0; let err;
  try { for await (const ch of stream) { got++; assert.equal(ch.model, 'die-model'); } } catch (e) { err = e; }
  assert.ok(got >= 1);
  assert.ok(err, 'SDK iteration threw');
  assert.ok(err instanceof OpenAI.APIError, `APIError, got ${err && err.constructor.name}: ${err && err.message}`);
});

test('errors: backend goes silent mid-stream (idle timeout) -> final SSE error event, backend connection closed', T, async () => {
  const t0 = Date.now();
  const r = await rawStream(open, '/v1/chat/completions', { ...chatBody('stall-model', 'a b c d'), stream: true });
  const took = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.ok(took < 2900, `ended by the 1 s idle timeout, not by the backend (took ${took} ms)`);
  assert.equal(r.events[0].choices[0].delta.role, 'assistant');
  const last = r.events.at(-1);
  assert.ok(last && last.error, `last event is an error event: ${r.raw}`);
  assert.equal(last.error.code, 'backend_timeout');
  assert.ok(!r.events.includes('[DONE]'));
  assertNoLeak(r.raw, 'idle timeout stream');
  await mock.waitClosed(lastReqFor('upstream-stall-2-3000-m24'), 2000);
});

test('errors: an error event inside the backend stream is relayed sanitised, and the stream ends', T, async () => {
  const r = await rawStream(open, '/v1/chat/completions', { ...chatBody('stream-err', 'a b c d e'), stream: true });
  assert.equal(r.status, 200);
  assert.ok(r.cleanEnd);
  const last = r.events.at(-1);
  assert.ok(last && last.error, `last event is an error event: ${r.raw}`);
  assert.equal(typeof last.error.message, 'string');
  assert.ok(!r.events.includes('[DONE]'), 'no [DONE] after an error');
  assert.equal(r.events.filter((x) => x.error).length, 1, 'exactly one error event');
  assertNoLeak(r.raw, 'backend error event');
  for (const ev of r.events.slice(0, -1)) assert.equal(ev.model, 'stream-err');
});

// ---------------------------------------------------------------- stream mixing

test('backend_stream=true with a non-streaming client: aggregated completion (content, finish_reason, usage)', T, async () => {
  const c = client(open);
  const text = 'aggregate these words into one';
  const r = await c.chat.completions.create(chatBody('agg-model', text));
  const rec = lastReqFor('upstream-agg-m17');
  assert.equal(rec.body.stream, true, 'backend called with stream: true');
  const exp = expectedChat(text);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'agg-model');
  assert.equal(typeof r.id, 'string');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, exp.text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.deepEqual(r.usage, exp.usage);

  const r2 = await c.chat.completions.create(chatBody('agg-model', text, { max_tokens: 2 }));
  assert.equal(r2.choices[0].message.content, 'you said: ');
  assert.equal(r2.choices[0].finish_reason, 'length');

  // A streaming client on the same model: a normal relay, no usage chunk unless asked.
  const s = await rawStream(open, '/v1/chat/completions', { ...chatBody('agg-model', text), stream: true });
  assert.equal(s.events.at(-1), '[DONE]');
  assert.ok(!s.events.some((ev) => ev !== '[DONE]' && ev.usage), 'no usage chunk when include_usage was not asked for');
  assert.equal(s.events.filter((ev) => ev !== '[DONE]').map((ev) => (ev.choices[0] && ev.choices[0].delta.content) || '').join(''), exp.text);

  const cr = await c.completions.create({ model: 'agg-model', prompt: 'agg completion' });
  assert.equal(cr.choices[0].text, 'you said: agg completion');
  assert.equal(cr.choices[0].finish_reason, 'stop');
  assert.equal(cr.model, 'agg-model');
});

test('backend_stream=false with a streaming client: synthesised chunks, [DONE], include_usage honoured', T, async () => {
  const text = 'synthesise a stream from me';
  const exp = expectedChat(text);
  const s = await rawStream(open, '/v1/chat/completions', { ...chatBody('synth-model', text), stream: true, stream_options: { include_usage: true } });
  const rec = lastReqFor('upstream-synth-m18');
  assert.notEqual(rec.body.stream, true, 'backend called without streaming');
  assert.equal(rec.status, 200, 'backend accepted the request (no stream_options without stream)');
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type') || '', /^text\/event-stream/);
  assert.equal(s.events.at(-1), '[DONE]');
  const evs = s.events.slice(0, -1);
  for (const ev of evs) {
    assert.equal(ev.object, 'chat.completion.chunk');
    assert.equal(ev.model, 'synth-model');
  }
  const withChoices = evs.filter((ev) => ev.choices.length);
  assert.equal(withChoices[0].choices[0].delta.role, 'assistant');
  assert.equal(withChoices.map((ev) => ev.choices[0].delta.content || '').join(''), exp.text);
  assert.equal(withChoices.at(-1).choices[0].finish_reason, 'stop');
  assert.deepEqual(evs.at(-1).choices, []);
  assert.deepEqual(evs.at(-1).usage, exp.usage);

  // SDK, no include_usage: no usage chunk.
  const stream = await client(open).chat.completions.create({ ...chatBody('synth-model', text), stream: true });
  let content = ''; let finish;
  for await (const ch of stream) {
    assert.ok(!ch.usage, 'no usage chunk unless asked for');
    if (ch.choices[0]) { content += ch.choices[0].delta.content || ''; finish = ch.choices[0].finish_reason || finish; }
  }
  assert.equal(content, exp.text);
  assert.equal(finish, 'stop');

  // Completions too.
  const cs = await rawStream(open, '/v1/completions', { model: 'synth-model', prompt: 'synth completion', stream: true });
  assert.equal(cs.events.at(-1), '[DONE]');
  assert.equal(cs.events.slice(0, -1).map((ev) => (ev.choices[0] && ev.choices[0].text) || '').join(''), 'you said: synth completion');
  assert.ok(cs.events.slice(0, -1).every((ev) => ev.model === 'synth-model' && ev.object === 'text_completion'));
});

test('backend_stream forced: tool calls survive aggregation and synthesis', T, async () => {
  const c = client(open);
  const r = await c.chat.completions.create(chatBody('agg-tools', 'weather?'));
  assert.equal(lastReqFor('upstream-tool-call-m35').body.stream, true);
  assert.equal(r.model, 'agg-tools');
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const tc = r.choices[0].message.tool_calls;
  assert.ok(Array.isArray(tc) && tc.length === 1, `aggregated message has the tool call: ${JSON.stringify(r.choices[0].message)}`);
  assert.equal(tc[0].id, 'call_mock1');
  assert.equal(tc[0].type, 'function');
  assert.equal(tc[0].function.name, 'get_weather');
  assert.equal(tc[0].function.arguments, TOOL_ARGS);

  const stream = await c.chat.completions.create({ ...chatBody('synth-tools', 'weather?'), stream: true });
  assert.notEqual(lastReqFor('upstream-tool-call-m36').body.stream, true);
  let args = ''; let name; let finish;
  for await (const ch of stream) {
    assert.equal(ch.model, 'synth-tools');
    const ch0 = ch.choices[0];
    if (!ch0) continue;
    for (const t of ch0.delta.tool_calls || []) {
      if (t.function && t.function.name) name = t.function.name;
      if (t.function && t.function.arguments) args += t.function.arguments;
    }
    if (ch0.finish_reason) finish = ch0.finish_reason;
  }
  assert.equal(name, 'get_weather');
  assert.equal(args, TOOL_ARGS);
  assert.equal(finish, 'tool_calls');
});

// ---------------------------------------------------------------- relay behaviour

test('stream: backend SSE variants (CRLF, "data:" without space, comments, 7-byte fragments) relayed exactly', T, async () => {
  const text = 'héllo wörld 🌍 ünïcode ✓ — 日本語 fin';
  for (const model of ['sse-crlf', 'sse-nospace', 'sse-comments', 'fragmented']) {
    const r = await rawStream(open, '/v1/chat/completions', { ...chatBody(model, text), stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200, model);
    assert.ok(r.cleanEnd, model);
    const rec = lastReqFor(backendModelOf(model));
    assert.equal(r.events.at(-1), '[DONE]', `${model}: [DONE] last`);
    const got = r.events.slice(0, -1);
    assert.equal(got.length, rec.response.length, `${model}: same number of events`);
    got.forEach((ev, i) => assert.deepEqual(ev, { ...rec.response[i], model }, `${model}: event ${i}`));
    // And what the SDK makes of it.
    const stream = await client(open).chat.completions.create({ ...chatBody(model, text), stream: true });
    let content = '';
    for await (const ch of stream) { assert.equal(ch.model, model); if (ch.choices[0]) content += ch.choices[0].delta.content || ''; }
    assert.equal(content, expectedChat(text).text, `${model}: SDK content`);
  }
  // Non-stream body sent chunked in fragments.
  const r = await client(open).chat.completions.create(chatBody('fragmented', text));
  assert.equal(r.choices[0].message.content, expectedChat(text).text);
  assert.equal(r.model, 'fragmented');
});

test('model rewriting: a backend answering with another model name (dated snapshot) is still rewritten', T, async () => {
  const c = client(open);
  const r = await c.chat.completions.create(chatBody('dated-model', 'snapshot'));
  assert.equal(r.model, 'dated-model');
  const stream = await c.chat.completions.create({ ...chatBody('dated-model', 'snapshot'), stream: true, stream_options: { include_usage: true } });
  for await (const ch of stream) assert.equal(ch.model, 'dated-model');
});

test('embeddings: a large answer (40 x 3072 floats, ~2.5 MB) is relayed exactly, float and base64', T, async () => {
  const inputs = Array.from({ length: 40 }, (_, i) => `large embedding input ${i}`);
  const f = await raw(open, 'POST', '/v1/embeddings', { json: { model: 'embed-model', input: inputs, encoding_format: 'float', dimensions: 3072 } });
  assert.equal(f.status, 200, f.text.slice(0, 300));
  assert.equal(f.json.data.length, 40);
  f.json.data.forEach((d, i) => assert.deepEqual(d.embedding, embed(inputs[i], 3072), `input ${i}`));
  const b = await client(open).embeddings.create({ model: 'embed-model', input: inputs, dimensions: 3072 });
  b.data.forEach((d, i) => assert.deepEqual(Array.from(d.embedding), embed(inputs[i], 3072), `base64 input ${i}`));
});


test('stream: chunks are relayed as they arrive (no buffering)', T, async () => {
  const stream = await client(open).chat.completions.create({ ...chatBody('trickle', 'x'), stream: true });
  const t0 = Date.now();
  const times = [];
  const deltas = [];
  for await (const ch of stream) {
    if (ch.choices[0] && ch.choices[0].delta.content) { times.push(Date.now() - t0); deltas.push(ch.choices[0].delta.content); }
  }
  assert.deepEqual(deltas, Array.from({ length: 10 }, (_, i) => `w${i} `));
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  // A buffering router delivers them all at once. A busy machine can merge two arrivals now and
  // then, so most (not all) gaps must be long, and the arrivals must span most of the ~1.35 s.
  assert.ok(gaps.filter((g) => g >= 60).length >= 5, `chunks arrive spread out (~150 ms apart), gaps: ${gaps.join(',')}`);
  assert.ok(times[times.length - 1] - times[0] >= 800, `arrivals spread over ${times[times.length - 1] - times[0]} ms, gaps: ${gaps.join(',')}`);
});

test('stream: client abort mid-stream closes the backend connection within ~1 s', T, async () => {
  const c = clients.openai(open, { apiKey: CLIENT_KEY });
  const stream = await c.chat.completions.create({ ...chatBody('slow-stream', 'abort me'), stream: true });
  let n = 0; let abortAt;
  for await (const ch of stream) {
    if (ch.choices[0] && ch.choices[0].delta.content) n++;
    if (n === 3) { abortAt = Date.now(); stream.controller.abort(); break; }
  }
  assert.equal(n, 3);
  const rec = lastReqFor('upstream-slow-stream-40x100-m15');
  await mock.waitClosed(rec, 3000);
  const lag = rec.socketClosedAt - abortAt;
  // the backend would go on for ~3.7 s more: closing well before that is the behaviour under test
  assert.ok(lag <= 2500, `backend connection closed ${lag} ms after the client left`);
  assert.ok(rec.chunksSent < 30, `backend stopped early (sent ${rec.chunksSent} of 42 events)`);
  assert.equal(rec.aborted, true);
  // The router is fine afterwards.
  const ok = await client(open).chat.completions.create(chatBody('chat-exact', 'still alive'));
  assert.equal(ok.choices[0].message.content, expectedChat('still alive').text);
});

test('client abort before the answer (backend silent; or aggregating a backend stream) closes the backend connection within ~1 s', T, async () => {
  const cases = [
    ['slow-first-long', 'upstream-slow-first-byte-4000-m25', false],
    ['slow-first-long', 'upstream-slow-first-byte-4000-m25', true],
    ['agg-slow', 'upstream-slow-stream-40x100-m28', false], // backend_stream = true, non-streaming client
  ];
  for (const [model, bm, stream] of cases) {
    const what = `early abort ${model} stream=${stream}`;
    const ac = new AbortController();
    const p = fetch(`${open.base}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ ...chatBody(model, what), stream }),
    }).then((r) => r.text());
    const rec = await mock.waitFor((x) => x.model === bm && x.body.messages[1].content === what, 3000);
    // A real wait, not a check that something did not happen: the abort is to come while the
    // router is well into waiting on a silent backend, not as it sends the request.
    await h.sleep(500);
    const abortAt = Date.now();
    ac.abort();
    await assert.rejects(p);
    await mock.waitClosed(rec, 3000);
    const lag = rec.socketClosedAt - abortAt;
    // the backend would answer ~3.5 s after the abort: closing well before that is the behaviour under test
    assert.ok(lag <= 2500, `${what}: backend connection closed ${lag} ms after the client left`);
    assert.equal(rec.aborted, true, `${what}: the backend had not finished`);
  }
});

test('stream: a long stream (thousands of events) is relayed exactly', T, async () => {
  const text = Array.from({ length: 6000 }, (_, i) => `w${i}`).join(' ');
  const r = await rawStream(open, '/v1/chat/completions', { ...chatBody('chat-exact', text), stream: true });
  assert.equal(r.status, 200);
  assert.ok(r.cleanEnd);
  const rec = lastReqFor('upstream-exact-m1');
  assert.equal(r.events.at(-1), '[DONE]');
  const got = r.events.slice(0, -1);
  // airouter asks the backend for usage (token metrics) but hides the usage-only
  // chunk from a client that did not ask for it; every other event is relayed as is.
  const sent = rec.response.filter((ev) => !(Array.isArray(ev.choices) && ev.choices.length === 0 && ev.usage));
  assert.equal(rec.body.stream_options && rec.body.stream_options.include_usage, true);
  assert.equal(sent.length, rec.response.length - 1);
  assert.equal(got.length, sent.length);
  got.forEach((ev, i) => { if (ev.model !== 'chat-exact' || JSON.stringify({ ...sent[i], model: 'chat-exact' }) !== JSON.stringify(ev)) assert.deepEqual(ev, { ...sent[i], model: 'chat-exact' }, `event ${i}`); });
  const nonStream = await client(open).chat.completions.create(chatBody('chat-exact', text));
  assert.equal(nonStream.choices[0].message.content, expectedChat(text).text);
});

test('stream: 10 clients aborting at once all get their backend connections closed', T, async () => {
  const c = clients.openai(open, { apiKey: CLIENT_KEY });
  const tag = `mass abort ${Date.now()}`;
  const streams = await Promise.all(Array.from({ length: 10 }, (_, i) => c.chat.completions.create({ ...chatBody('slow-stream', `${tag} ${i}`), stream: true })));
  await Promise.all(streams.map(async (s) => { let n = 0; for await (const ch of s) { if (ch.choices[0] && ch.choices[0].delta.content && ++n === 2) break; } }));
  const abortAt = Date.now();
  const recs = mock.requests.filter((r) => r.model === 'upstream-slow-stream-40x100-m15' && String(r.body.messages[1].content).startsWith(tag));
  assert.equal(recs.length, 10);
  await Promise.all(recs.map((r) => mock.waitClosed(r, 3500)));
  for (const r of recs) {
    // the backend streams would go on for ~3.7 s more
    assert.ok(r.socketClosedAt - abortAt <= 2500, `closed ${r.socketClosedAt - abortAt} ms after the abort`);
    assert.equal(r.aborted, true);
  }
  const ok = await client(open).chat.completions.create(chatBody('chat-exact', 'after mass abort'));
  assert.equal(ok.choices[0].message.content, expectedChat('after mass abort').text);
});

test('stream: 20 concurrent streams all complete with their own content', T, async () => {
  const c = client(open);
  const N = 20;
  const before = mock.requests.length;
  const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const text = `concurrent stream number ${i} says hello ${'x'.repeat(i)}`;
    const stream = await c.chat.completions.create({ ...chatBody('delay-model', text), stream: true, stream_options: { include_usage: true } });
    let content = ''; let usage; let ids = new Set();
    for await (const ch of stream) {
      assert.equal(ch.model, 'delay-model');
      ids.add(ch.id);
      if (ch.choices[0]) content += ch.choices[0].delta.content || '';
      if (ch.usage) usage = ch.usage;
    }
    return { text, content, usage, ids };
  }));
  for (const r of results) {
    const exp = expectedChat(r.text);
    assert.equal(r.content, exp.text);
    assert.deepEqual(r.usage, exp.usage);
    assert.equal(r.ids.size, 1, 'one id per stream');
  }
  assert.equal(new Set(results.map((r) => [...r.ids][0])).size, N, 'streams not mixed up');
  assert.equal(mock.requests.length - before, N);
});

test('backend connections are kept alive and reused', T, async () => {
  const before = mock.requests.length;
  for (let i = 0; i < 10; i++) {
    const r = await raw(open, 'POST', '/v1/chat/completions', { json: chatBody('chat-exact', `reuse ${i}`) });
    assert.equal(r.status, 200);
  }
  const conns = new Set(mock.requests.slice(before).map((r) => r.conn));
  assert.ok(conns.size <= 3, `10 sequential requests used ${conns.size} backend connections`);
});

// ---------------------------------------------------------------- leaks (runs last)

test('no response, header or error ever contained a backend URL, name, key or backend model name', T, async () => {
  await traffic.settle();
  assert.ok(traffic.entries.length > 50, `recorded ${traffic.entries.length} responses`);
  for (const t of traffic.entries) {
    assertNoLeak(t.body, `${t.where} -> ${t.status} body`);
    assertNoLeak(JSON.stringify(t.headers), `${t.where} -> ${t.status} headers`);
  }
});

test('logs: keys are never logged (the key name is), no backend secret in the log', T, async () => {
  assert.ok(keyed.log.includes('team-a'), 'the access log names the key (team-a)');
  for (const [name, r] of [['open', open], ['keyed', keyed]]) {
    for (const secret of [KEY_A, KEY_B, CLIENT_KEY, BACKEND_KEY]) {
      assert.ok(!r.log.includes(secret), `${name} router log contains the secret ${secret}`);
    }
  }
});

test('config: two defaults for one kind is a config error (-t fails)', T, async () => {
  const { spawnSync } = require('node:child_process');
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = h.tmpDir();
  const f = path.join(dir, 'two-defaults.conf');
  fs.writeFileSync(f, `listen = "127.0.0.1:1";
backends = ( { name = "e"; type = "echo"; } );
models = ( { name = "a"; backend = "e"; default = true; kinds = ["chat"]; },
           { name = "b"; backend = "e"; default = true; kinds = ["chat"]; } );
`);
  const r = spawnSync(h.BIN, ['-t', '-c', f], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, `exit status (stderr: ${r.stderr})`);
  assert.match(r.stderr, /test failed/);
  fs.writeFileSync(f, `listen = "127.0.0.1:1";
backends = ( { name = "e"; type = "echo"; } );
models = ( { name = "a"; backend = "e"; default = true; kinds = ["chat"]; },
           { name = "b"; backend = "e"; default = true; kinds = ["completions"]; } );
`);
  const ok = spawnSync(h.BIN, ['-t', '-c', f], { encoding: 'utf8', timeout: 10000 });
  assert.equal(ok.status, 0, `one default per kind is fine (stderr: ${ok.stderr})`);
});

test('no worker crashed and no sanitizer report during the run', T, async () => {
  for (const [name, r] of [['open', open], ['keyed', keyed]]) {
    assertCleanLog(r.log, `${name} router`);
  }
});
