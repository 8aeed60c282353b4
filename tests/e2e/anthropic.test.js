'use strict';
// End-to-end tests of the Anthropic backend: the official `openai` npm client (and raw
// fetch where the wire format itself is checked) against the real airouter binary, routing to the
// mock Anthropic Messages server in scripts/mock-anthropic.js, which validates requests like the real
// API (so a bad translation shows up as a 400 from it) and records what it got.
//
// Every backend model name starts with "upstream-" and every backend name with "bk-", so that a
// single substring finds any leak of one.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { Traffic } = require('./lib/traffic.js');
const { fetchRaw, readBody } = require('./lib/http.js');
const { parseSse } = require('./lib/sse.js');
const { assertOpenAIError, assertNoLeak: noLeak, sdkError } = require('./lib/assert.js');
const { startMock, replyChunks, TOOL_INPUT, TOOL_INPUT2, TOOL_JSON_PARTS } = require('../../scripts/mock-anthropic.js');

const T = { timeout: 30000 };
const BACKEND_KEY = 'sk-ant-backend-SECRET-7d41c2';
const WRONG_KEY = 'sk-ant-wrong-SECRET-0b9e11';
const CLIENT_KEY = 'sk-client-anthropic-test-1';
const B = { claude: 'bk-claude-4d2e', badkey: 'bk-badkey-9f1a', nokey: 'bk-nokey-3c7b' };

// [client model, backend, backend model, extra]
const MODELS = [
  ['claude-text', B.claude, 'upstream-claude-m1', 'default = true;'],
  ['claude-dflt', B.claude, 'upstream-claude-m2', 'max_tokens = 321;'],
  ['claude-agg', B.claude, 'upstream-claude-m3', 'backend_stream = true;'],
  ['claude-synth', B.claude, 'upstream-claude-m4', 'backend_stream = false;'],
  ['claude-stopseq', B.claude, 'upstream-stop-sequence-m5'],
  ['claude-maxtok', B.claude, 'upstream-max-tokens-m6'],
  ['claude-multitool', B.claude, 'upstream-multi-tool-m7'],
  ['err-400', B.claude, 'upstream-error-400-m8'],
  ['err-401', B.claude, 'upstream-error-401-m9'],
  ['err-429', B.claude, 'upstream-error-429-retry-after-13-m10'],
  ['err-500', B.claude, 'upstream-error-500-m11'],
  ['err-529', B.claude, 'upstream-error-529-m12'],
  ['stream-err', B.claude, 'upstream-stream-error-m13'],
  ['claude-slow', B.claude, 'upstream-slow-stream-60x100-m14'],
  ['badkey-model', B.badkey, 'upstream-claude-m15'],
  ['nokey-model', B.nokey, 'upstream-claude-m16'],
  ['agg-tools', B.claude, 'upstream-multi-tool-m17', 'backend_stream = true;'],
  ['err-403', B.claude, 'upstream-error-403-m18'],
  // A 429 keeps its target out for Retry-After seconds (resilience), so each 429 check has its own model.
  ['err-429s', B.claude, 'upstream-error-429-retry-after-13-m19'],
  ['claude-dated', B.claude, 'upstream-dated-m20'],
];
const bm = (name) => MODELS.find((m) => m[0] === name)[2];

let mock; let router;
const traffic = new Traffic(); // every response a test received, for the leak check at the end

function config(mockUrl) {
  const models = MODELS.map(([name, backend, bmodel, extra]) =>
    `  { name = "${name}"; backend = "${backend}"; backend_model = "${bmodel}"; ${extra || ''} }`).join(',\n');
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 5; };
# One backend call per request: errors are checked as the backend gave them.
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "${B.claude}"; type = "anthropic"; url = "${mockUrl}"; api_key = "\${AN_KEY}";
    connect_timeout = 2.0; first_byte_timeout = 10.0; idle_timeout = 10.0; timeout = 60.0; },
  { name = "${B.badkey}"; type = "anthropic"; url = "${mockUrl}"; api_key = "${WRONG_KEY}"; },
  { name = "${B.nokey}"; type = "anthropic"; url = "${mockUrl}"; }
);
models = (
${models}
);
`;
}

// ---------------------------------------------------------------- helpers

const client = (opts = {}) => clients.openai(router, { apiKey: CLIENT_KEY, fetch: traffic.fetch('sdk'), ...opts });
const raw = (path, json, headers = {}) =>
  fetchRaw(router.base, 'POST', path, { json, headers: { authorization: `Bearer ${CLIENT_KEY}`, ...headers }, traffic });

// A chat stream read to its end: { status, headers, events, comments, badLines, raw, cleanEnd }.
async function rawStream(json, headers = {}) {
  const res = await fetch(`${router.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, ...headers },
    body: JSON.stringify(json), signal: AbortSignal.timeout(20000),
  });
  const b = await readBody(res);
  traffic.push({ where: 'rawStream', status: res.status, headers: [...res.headers], body: b.raw });
  return { status: res.status, headers: res.headers, ...b, ...parseSse(b.raw) };
}

function leakNeedles() {
  return [BACKEND_KEY, WRONG_KEY, 'SECRET', 'upstream-', 'bk-', `127.0.0.1:${mock.port}`, `localhost:${mock.port}`, mock.url,
    'anthropic-version', 'x-api-key'];
}
const assertNoLeak = (text, what) => noLeak(text, what, leakNeedles());
const assertError = (r, status, code, { type } = {}) => assertOpenAIError(r, status, code, { type, needles: leakNeedles() });

// A message's content as a list of blocks (a string is one text block).
const blocks = (content) => (typeof content === 'string' ? [{ type: 'text', text: content }] : content);
const texts = (content) => blocks(content).filter((b) => b.type === 'text').map((b) => b.text);
const systemOf = (body) => (body.system === undefined ? undefined
  : typeof body.system === 'string' ? body.system : body.system.map((b) => b.text).join('\n\n'));

const lastReqFor = (client) => mock.last((r) => r.model === bm(client));
const mockEvents = (rec, name) => rec.response.filter((e) => e.event === name);

const chatBody = (model, text, extra = {}) => ({ model, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: text }], ...extra });

const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['location'] } } },
  { type: 'function', function: { name: 'get_time', description: 'Local time in a city', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
];

// ---------------------------------------------------------------- setup

before(async () => {
  mock = await startMock({ port: await h.freePort(), apiKey: BACKEND_KEY });
  router = await h.startRouter(config(mock.url), { env: { AN_KEY: BACKEND_KEY } });
}, { timeout: 30000 });

after(async () => {
  if (router) await router.stop();
  if (mock) await mock.close();
});

// ---------------------------------------------------------------- text

test('text: non-streaming answer translated to a chat.completion, request as Anthropic wants it', T, async () => {
  const r = await client().chat.completions.create(chatBody('claude-text', 'hello there, claude'));
  const rec = lastReqFor('claude-text');
  assert.ok(rec, 'mock received the request with the backend model');
  assert.equal(rec.status, 200, `mock accepted the request: ${JSON.stringify(rec.error)}`);
  // The HTTP request.
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/messages');
  assert.equal(rec.headers['x-api-key'], BACKEND_KEY);
  assert.equal(rec.headers['anthropic-version'], '2023-06-01');
  assert.match(rec.headers['content-type'] || '', /^application\/json/);
  assert.equal(rec.headers.authorization, undefined, 'the client key is not forwarded');
  // The body.
  assert.equal(rec.body.model, 'upstream-claude-m1');
  assert.equal(systemOf(rec.body), 'be brief');
  assert.equal(rec.body.messages.length, 1);
  assert.equal(rec.body.messages[0].role, 'user');
  assert.deepEqual(texts(rec.body.messages[0].content), ['hello there, claude']);
  assert.equal(rec.body.max_tokens, 4096, 'default max_tokens');
  assert.ok(rec.body.stream !== true, 'not streamed');
  // The answer.
  const msg = rec.response;
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'claude-text', 'the client sees its own model name');
  assert.equal(typeof r.id, 'string');
  assert.equal(typeof r.created, 'number');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'you said: hello there, claude');
  assert.equal(r.choices[0].message.content, msg.content[0].text);
  assert.ok(!r.choices[0].message.tool_calls || r.choices[0].message.tool_calls.length === 0, 'no tool calls');
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(r.choices[0].finish_reason, 'stop', 'end_turn -> stop');
  assert.deepEqual(r.usage, {
    prompt_tokens: msg.usage.input_tokens, completion_tokens: msg.usage.output_tokens,
    total_tokens: msg.usage.input_tokens + msg.usage.output_tokens,
  });
});

test('text: streamed via the SDK, deltas in order, own model name in every chunk', T, async () => {
  const text = 'stream me these seven words please ok';
  const stream = await client().chat.completions.create({ ...chatBody('claude-text', text), stream: true });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.equal(rec.body.stream, true, 'the backend call streams');
  assert.ok(chunks.length > 0);
  for (const ch of chunks) {
    assert.equal(ch.model, 'claude-text');
    assert.equal(ch.object, 'chat.completion.chunk');
    assert.equal(ch.id, chunks[0].id, 'one id for the whole stream');
  }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'first chunk carries the role');
  const deltas = chunks.filter((c) => c.choices[0] && c.choices[0].delta.content).map((c) => c.choices[0].delta.content);
  const sent = mockEvents(rec, 'content_block_delta').map((e) => e.data.delta.text);
  assert.deepEqual(deltas, sent, 'one content delta per text_delta, in order');
  assert.equal(deltas.join(''), `you said: ${text}`);
  const finishes = chunks.filter((c) => c.choices[0] && c.choices[0].finish_reason);
  assert.equal(finishes.length, 1, 'one finish_reason');
  assert.equal(finishes[0].choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop', 'the finish chunk is last');
  assert.ok(!chunks.some((c) => c.usage), 'no usage chunk unless asked for');
});

test('text: raw SSE, only data lines, ping ignored, include_usage chunk with cumulative output tokens, [DONE] last', T, async () => {
  const text = 'raw framing with ünïcödé 🌍 text';
  const r = await rawStream({ ...chatBody('claude-text', text), stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
  assert.ok(r.cleanEnd);
  assert.deepEqual(r.badLines, [], 'no event:/other lines relayed');
  assert.ok(!r.raw.includes('message_start') && !r.raw.includes('content_block') && !r.raw.includes('ping'), 'no Anthropic events relayed');
  assert.ok(r.raw.endsWith('data: [DONE]\n\n'), `ends with data: [DONE]: ${JSON.stringify(r.raw.slice(-80))}`);
  assert.equal(r.events.filter((e) => e === '[DONE]').length, 1);
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.ok(rec.body.stream_options === undefined, 'stream_options is not an Anthropic field');
  assert.equal(mockEvents(rec, 'ping').length, 1, 'the mock did send a ping');
  const chunks = r.events.filter((e) => e !== '[DONE]');
  assert.ok(chunks.every((c) => !c.unparsable), 'every event is JSON');
  const content = chunks.filter((c) => c.choices && c.choices[0] && typeof c.choices[0].delta.content === 'string' && c.choices[0].delta.content);
  assert.equal(content.length, mockEvents(rec, 'content_block_delta').length, 'one chunk per text delta (ping produced nothing)');
  assert.equal(content.map((c) => c.choices[0].delta.content).join(''), `you said: ${text}`);
  // Usage chunk: last before [DONE], choices empty; output tokens from message_delta (cumulative, not summed).
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], `usage chunk has empty choices: ${JSON.stringify(last)}`);
  const start = mockEvents(rec, 'message_start')[0].data.message.usage;
  const md = mockEvents(rec, 'message_delta')[0].data.usage;
  assert.deepEqual(last.usage, { prompt_tokens: start.input_tokens, completion_tokens: md.output_tokens, total_tokens: start.input_tokens + md.output_tokens });
  assert.equal(last.model, 'claude-text');
  for (const c of chunks.slice(0, -1)) assert.ok(c.usage === undefined || c.usage === null, 'usage only in the last chunk');
  const fin = chunks.filter((c) => c.choices && c.choices[0] && c.choices[0].finish_reason);
  assert.equal(fin.length, 1);
  assert.equal(fin[0].choices[0].finish_reason, 'stop');
  assertNoLeak(r.raw, 'stream');
});

// ---------------------------------------------------------------- request translation

test('system and developer messages become the top-level system; no system role is sent', T, async () => {
  const r = await client().chat.completions.create({
    model: 'claude-text',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'developer', content: 'Answer in English.' },
      { role: 'user', content: 'hi' },
      { role: 'system', content: [{ type: 'text', text: 'Never swear.' }] },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'again' },
    ],
  });
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  const sys = systemOf(rec.body);
  assert.equal(typeof sys, 'string');
  const a = sys.indexOf('You are terse.'); const b = sys.indexOf('Answer in English.'); const c = sys.indexOf('Never swear.');
  assert.ok(a >= 0 && b > a && c > b, `system holds all three in order: ${JSON.stringify(sys)}`);
  assert.deepEqual(rec.body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.ok(!JSON.stringify(rec.body.messages).includes('terse'), 'system text not in messages');
  assert.equal(r.choices[0].message.content, 'you said: again');
});

test('consecutive same-role messages are merged into alternating turns', T, async () => {
  const r = await client().chat.completions.create({
    model: 'claude-text',
    messages: [
      { role: 'user', content: 'first' },
      { role: 'user', content: [{ type: 'text', text: 'second' }] },
      { role: 'assistant', content: 'x' },
      { role: 'assistant', content: 'y' },
      { role: 'user', content: 'third' },
    ],
  });
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.deepEqual(rec.body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.deepEqual(texts(rec.body.messages[0].content), ['first', 'second']);
  assert.deepEqual(texts(rec.body.messages[1].content), ['x', 'y']);
  assert.deepEqual(texts(rec.body.messages[2].content), ['third']);
  assert.equal(r.choices[0].message.content, 'you said: third');
});

test('max_tokens, max_completion_tokens and the model default become max_tokens; max_tokens stop -> length', T, async () => {
  const c = client();
  const r1 = await c.chat.completions.create(chatBody('claude-text', 'one two three four five six', { max_tokens: 3 }));
  const rec1 = lastReqFor('claude-text');
  assert.equal(rec1.body.max_tokens, 3);
  assert.equal(rec1.response.stop_reason, 'max_tokens');
  assert.equal(r1.choices[0].message.content, 'you said: one ');
  assert.equal(r1.choices[0].finish_reason, 'length', 'max_tokens -> length');

  await c.chat.completions.create(chatBody('claude-text', 'short', { max_completion_tokens: 55 }));
  assert.equal(lastReqFor('claude-text').body.max_tokens, 55);
  assert.equal(lastReqFor('claude-text').body.max_completion_tokens, undefined);

  await c.chat.completions.create(chatBody('claude-dflt', 'short'));
  assert.equal(lastReqFor('claude-dflt').body.max_tokens, 321, "the model's configured default");
  await c.chat.completions.create(chatBody('claude-dflt', 'short', { max_tokens: 12 }));
  assert.equal(lastReqFor('claude-dflt').body.max_tokens, 12, 'the request wins over the model default');

  // Streamed, the max_tokens stop reason arrives in message_delta.
  const stream = await c.chat.completions.create({ ...chatBody('claude-maxtok', 'a b c d e f g h'), stream: true });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  const rec = lastReqFor('claude-maxtok');
  assert.equal(mockEvents(rec, 'message_delta')[0].data.delta.stop_reason, 'max_tokens');
  assert.equal(chunks.filter((ch) => ch.choices[0] && ch.choices[0].finish_reason).map((ch) => ch.choices[0].finish_reason).join(), 'length');
});

test('stop -> stop_sequences; stop_sequence stop reason -> stop', T, async () => {
  const c = client();
  const r = await c.chat.completions.create(chatBody('claude-text', 'alpha beta END gamma', { stop: 'END' }));
  let rec = lastReqFor('claude-text');
  assert.deepEqual(rec.body.stop_sequences, ['END']);
  assert.equal(rec.body.stop, undefined);
  assert.equal(rec.response.stop_reason, 'stop_sequence');
  assert.equal(r.choices[0].message.content, 'you said: alpha beta ');
  assert.equal(r.choices[0].finish_reason, 'stop', 'stop_sequence -> stop');

  await c.chat.completions.create(chatBody('claude-text', 'nothing here', { stop: ['<<X>>', 'STOP'] }));
  rec = lastReqFor('claude-text');
  assert.deepEqual(rec.body.stop_sequences, ['<<X>>', 'STOP']);

  const stream = await c.chat.completions.create({ ...chatBody('claude-stopseq', 'a b c d e f'), stop: ['###'], stream: true });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  rec = lastReqFor('claude-stopseq');
  assert.equal(mockEvents(rec, 'message_delta')[0].data.delta.stop_reason, 'stop_sequence');
  assert.equal(mockEvents(rec, 'message_delta')[0].data.delta.stop_sequence, '###');
  assert.equal(chunks.filter((ch) => ch.choices[0] && ch.choices[0].finish_reason).map((ch) => ch.choices[0].finish_reason).join(), 'stop');
});

test('temperature is clamped to Anthropic range 0..1; top_p passed; OpenAI-only parameters dropped', T, async () => {
  const c = client();
  await c.chat.completions.create(chatBody('claude-text', 'hot', { temperature: 1.7, top_p: 0.9 }));
  let rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.equal(rec.body.temperature, 1, 'temperature 1.7 clamped to 1');
  assert.equal(rec.body.top_p, 0.9);
  await c.chat.completions.create(chatBody('claude-text', 'cool', { temperature: 0.25 }));
  assert.equal(lastReqFor('claude-text').body.temperature, 0.25);
  await c.chat.completions.create(chatBody('claude-text', 'cold', { temperature: 0 }));
  assert.equal(lastReqFor('claude-text').body.temperature, 0);
  await c.chat.completions.create(chatBody('claude-text', 'max', { temperature: 2 }));
  assert.equal(lastReqFor('claude-text').body.temperature, 1);

  // Anthropic rejects unknown fields ("Extra inputs are not permitted"): none may leak through.
  const r = await c.chat.completions.create(chatBody('claude-text', 'extras', {
    presence_penalty: 0.5, frequency_penalty: 0.2, seed: 7, logit_bias: { 50256: -100 }, n: 1, user: 'user-42',
    parallel_tool_calls: true, logprobs: false,
  }));
  rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted (no OpenAI-only fields): ${JSON.stringify(rec.error)}`);
  assert.equal(r.choices[0].message.content, 'you said: extras');
  if (rec.body.metadata !== undefined) assert.deepEqual(rec.body.metadata, { user_id: 'user-42' });
});

test('image parts: data: URL -> base64 image source; an unsupported image type -> 400 passed through', T, async () => {
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
  const r = await client().chat.completions.create({
    model: 'claude-text',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] }],
  });
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  const bl = blocks(rec.body.messages[0].content);
  assert.deepEqual(bl.map((b) => b.type), ['text', 'image']);
  assert.deepEqual(bl[1].source, { type: 'base64', media_type: 'image/png', data: png });
  assert.equal(r.choices[0].message.content, 'you said: what is this');

  const bad = await raw('/v1/chat/completions', {
    model: 'claude-text',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'bmp' }, { type: 'image_url', image_url: { url: `data:image/bmp;base64,${png}` } }] }],
  });
  const e = assertError(bad, 400);
  assert.equal(e.message, lastReqFor('claude-text').error.message, "Anthropic's validation message passed through");
  assert.match(e.message, /media_type/);

  // An http(s) image URL becomes a url source.
  await client().chat.completions.create({
    model: 'claude-text',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } }, { type: 'text', text: 'and this' }] }],
  });
  const urec = lastReqFor('claude-text');
  assert.equal(urec.status, 200, `mock accepted: ${JSON.stringify(urec.error)}`);
  assert.deepEqual(blocks(urec.body.messages[0].content)[0], { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } });
});

test('a dated model in the Message (alias resolved by Anthropic) is still shown as the client model', T, async () => {
  const c = client();
  const r = await c.chat.completions.create(chatBody('claude-dated', 'snapshot'));
  assert.equal(lastReqFor('claude-dated').response.model, 'upstream-dated-m20-20241022');
  assert.equal(r.model, 'claude-dated');
  const stream = await c.chat.completions.create({ ...chatBody('claude-dated', 'snapshot'), stream: true, stream_options: { include_usage: true } });
  let n = 0;
  for await (const ch of stream) { assert.equal(ch.model, 'claude-dated'); n++; }
  assert.ok(n > 2);
});

// ---------------------------------------------------------------- tools

test('tools and tool_choice auto: translated to Anthropic; tool_use -> tool_calls, finish tool_calls', T, async () => {
  const r = await client().chat.completions.create({
    model: 'claude-text', tools: TOOLS, tool_choice: 'auto',
    messages: [{ role: 'user', content: "What's the weather in Paris?" }],
  });
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.deepEqual(rec.body.tools, TOOLS.map((t) => ({ name: t.function.name, description: t.function.description, input_schema: t.function.parameters })));
  assert.deepEqual(rec.body.tool_choice, { type: 'auto' });
  const tu = rec.response.content.find((b) => b.type === 'tool_use');
  const m = r.choices[0].message;
  assert.equal(m.content, 'Let me check that.', 'the text block before the tool call');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].id, tu.id);
  assert.equal(m.tool_calls[0].type, 'function');
  assert.equal(m.tool_calls[0].function.name, 'get_weather');
  assert.equal(typeof m.tool_calls[0].function.arguments, 'string');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), TOOL_INPUT);
  assert.equal(rec.response.stop_reason, 'tool_use');
  assert.equal(r.choices[0].finish_reason, 'tool_calls', 'tool_use -> tool_calls');
});

test('tool_choice required -> any, none -> none, function -> tool with name', T, async () => {
  const c = client();
  const ask = (tool_choice, text = 'hello') => c.chat.completions.create({ model: 'claude-text', tools: TOOLS, tool_choice, messages: [{ role: 'user', content: text }] });

  let r = await ask('required');
  let rec = lastReqFor('claude-text');
  assert.deepEqual(rec.body.tool_choice, { type: 'any' });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(rec.response.content.map((b) => b.type), ['tool_use']);
  assert.equal(r.choices[0].message.content, null, 'only a tool_use block: content null, as OpenAI sends');

  r = await ask('none', 'weather please');
  rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.deepEqual(rec.body.tool_choice, { type: 'none' });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.content, 'you said: weather please');
  assert.ok(!r.choices[0].message.tool_calls || r.choices[0].message.tool_calls.length === 0);

  r = await ask({ type: 'function', function: { name: 'get_time' } });
  rec = lastReqFor('claude-text');
  assert.deepEqual(rec.body.tool_choice, { type: 'tool', name: 'get_time' });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.tool_calls.length, 1);
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');

  r = await ask('auto');
  assert.deepEqual(lastReqFor('claude-text').body.tool_choice, { type: 'auto' });
  assert.equal(r.choices[0].finish_reason, 'stop', 'auto without a reason to call a tool: text');

  // A function without parameters still gets the object input_schema Anthropic requires.
  r = await c.chat.completions.create({
    model: 'claude-text', tool_choice: 'required', messages: [{ role: 'user', content: 'ping it' }],
    tools: [{ type: 'function', function: { name: 'ping_server' } }],
  });
  rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.equal(rec.body.tools[0].name, 'ping_server');
  assert.equal(rec.body.tools[0].input_schema.type, 'object');
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'ping_server');
});

test('assistant tool_calls and tool messages become tool_use and tool_result blocks', T, async () => {
  const r = await client().chat.completions.create({
    model: 'claude-text', tools: TOOLS,
    messages: [
      { role: 'system', content: 'use tools' },
      { role: 'user', content: 'weather and time in Paris?' },
      {
        role: 'assistant', content: 'Checking both.', tool_calls: [
          { id: 'call_abc1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
          { id: 'call_abc2', type: 'function', function: { name: 'get_time', arguments: '{"location":"Paris"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_abc1', content: '18 degrees' },
      { role: 'tool', tool_call_id: 'call_abc2', content: [{ type: 'text', text: '14:05' }] },
      { role: 'user', content: 'thanks, summarise' },
    ],
  });
  const rec = lastReqFor('claude-text');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  const msgs = rec.body.messages;
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user'], 'tool results and the next user text share one user turn');
  const asst = blocks(msgs[1].content);
  assert.deepEqual(asst.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  assert.equal(asst[0].text, 'Checking both.');
  assert.deepEqual({ id: asst[1].id, name: asst[1].name, input: asst[1].input }, { id: 'call_abc1', name: 'get_weather', input: { location: 'Paris' } });
  assert.deepEqual({ id: asst[2].id, name: asst[2].name, input: asst[2].input }, { id: 'call_abc2', name: 'get_time', input: { location: 'Paris' } });
  const user = blocks(msgs[2].content);
  assert.deepEqual(user.map((b) => b.type), ['tool_result', 'tool_result', 'text']);
  assert.equal(user[0].tool_use_id, 'call_abc1');
  assert.deepEqual(texts(typeof user[0].content === 'string' ? user[0].content : user[0].content), ['18 degrees']);
  assert.equal(user[1].tool_use_id, 'call_abc2');
  assert.deepEqual(texts(user[1].content), ['14:05']);
  assert.equal(user[2].text, 'thanks, summarise');
  assert.equal(r.choices[0].finish_reason, 'stop');

  // A tool result as the last turn: the answer is about it.
  const r2 = await client().chat.completions.create({
    model: 'claude-text', tools: TOOLS,
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_x9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Oslo","unit":"celsius"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_x9', content: 'minus 3' },
    ],
  });
  const rec2 = lastReqFor('claude-text');
  assert.equal(rec2.status, 200, `mock accepted: ${JSON.stringify(rec2.error)}`);
  assert.deepEqual(blocks(rec2.body.messages[1].content).map((b) => b.type), ['tool_use'], 'content null: only the tool_use block');
  assert.deepEqual(blocks(rec2.body.messages[1].content)[0].input, { location: 'Oslo', unit: 'celsius' });
  assert.equal(r2.choices[0].message.content, 'tool said: minus 3');
});

test('streamed tool calls: arguments split over input_json_delta events are assembled by the client', T, async () => {
  const c = client();
  const stream = await c.chat.completions.create({
    model: 'claude-multitool', tools: TOOLS, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'weather in Paris and Tokyo?' }],
  });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  const rec = lastReqFor('claude-multitool');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.ok(mockEvents(rec, 'content_block_delta').filter((e) => e.data.delta.type === 'input_json_delta').length >= 8, 'several input_json_delta events');
  // Assemble the way OpenAI clients do: by tool call index.
  const calls = [];
  let content = '';
  for (const ch of chunks) {
    assert.equal(ch.model, 'claude-multitool');
    const d = ch.choices[0] && ch.choices[0].delta;
    if (!d) continue;
    if (d.content) content += d.content;
    for (const tc of d.tool_calls || []) {
      calls[tc.index] = calls[tc.index] || { id: '', name: '', args: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function && tc.function.name) calls[tc.index].name += tc.function.name;
      if (tc.function && tc.function.arguments) calls[tc.index].args += tc.function.arguments;
    }
  }
  const uses = rec.response.filter((e) => e.event === 'content_block_start' && e.data.content_block.type === 'tool_use').map((e) => e.data.content_block);
  assert.equal(content, 'Let me check that.');
  assert.equal(calls.length, 2, `two tool calls with indexes 0 and 1: ${JSON.stringify(calls)}`);
  assert.equal(calls[0].id, uses[0].id);
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].args), TOOL_INPUT);
  assert.equal(calls[1].id, uses[1].id);
  assert.equal(calls[1].name, 'get_time');
  assert.deepEqual(JSON.parse(calls[1].args), TOOL_INPUT2);
  const fin = chunks.filter((ch) => ch.choices[0] && ch.choices[0].finish_reason);
  assert.equal(fin.length, 1);
  assert.equal(fin[0].choices[0].finish_reason, 'tool_calls');
  const md = mockEvents(rec, 'message_delta')[0].data.usage.output_tokens;
  assert.equal(chunks.at(-1).usage.completion_tokens, md);

  // The SDK's own stream helper assembles the same message.
  const runner = c.beta.chat.completions.stream({
    model: 'claude-text', tools: TOOLS, tool_choice: 'required', messages: [{ role: 'user', content: 'go' }],
  });
  const final = await runner.finalChatCompletion();
  const fm = final.choices[0].message;
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(fm.tool_calls.length, 1);
  assert.equal(fm.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(fm.tool_calls[0].function.arguments), TOOL_INPUT);
  assert.ok(TOOL_JSON_PARTS(TOOL_INPUT).length > 3);
});

// ---------------------------------------------------------------- backend_stream

test('backend_stream = true: a non-streaming request is aggregated from the Anthropic stream', T, async () => {
  const c = client();
  const r = await c.chat.completions.create(chatBody('claude-agg', 'aggregate these words please'));
  const rec = lastReqFor('claude-agg');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.equal(rec.body.stream, true, 'the backend was called streaming');
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'claude-agg');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'you said: aggregate these words please');
  assert.equal(r.choices[0].finish_reason, 'stop');
  const inTok = mockEvents(rec, 'message_start')[0].data.message.usage.input_tokens;
  const outTok = mockEvents(rec, 'message_delta')[0].data.usage.output_tokens;
  assert.deepEqual(r.usage, { prompt_tokens: inTok, completion_tokens: outTok, total_tokens: inTok + outTok });

  const t = await c.chat.completions.create({ model: 'agg-tools', tools: TOOLS, messages: [{ role: 'user', content: 'weather in two places' }] });
  const trec = lastReqFor('agg-tools');
  assert.equal(trec.body.stream, true);
  assert.equal(t.choices[0].finish_reason, 'tool_calls');
  assert.equal(t.choices[0].message.content, 'Let me check that.');
  assert.equal(t.choices[0].message.tool_calls.length, 2);
  assert.deepEqual(t.choices[0].message.tool_calls.map((x) => x.function.name), ['get_weather', 'get_time']);
  assert.deepEqual(JSON.parse(t.choices[0].message.tool_calls[0].function.arguments), TOOL_INPUT);
  assert.deepEqual(JSON.parse(t.choices[0].message.tool_calls[1].function.arguments), TOOL_INPUT2);
});

test('backend_stream = false: a streaming request is served from a non-streaming Anthropic call', T, async () => {
  const r = await rawStream({ ...chatBody('claude-synth', 'synthesise a stream'), stream: true });
  const rec = lastReqFor('claude-synth');
  assert.equal(rec.status, 200, `mock accepted: ${JSON.stringify(rec.error)}`);
  assert.ok(rec.body.stream !== true, 'the backend was called without streaming');
  assert.equal(r.status, 200);
  assert.equal(r.events.at(-1), '[DONE]');
  const chunks = r.events.filter((e) => e !== '[DONE]');
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), 'you said: synthesise a stream');
  assert.ok(chunks.every((c) => c.model === 'claude-synth'));
  assert.equal(chunks.filter((c) => c.choices[0] && c.choices[0].finish_reason).map((c) => c.choices[0].finish_reason).join(), 'stop');
});

// ---------------------------------------------------------------- errors

test('errors: a 400 is passed through with its status and message (backend model replaced)', T, async () => {
  const r = await raw('/v1/chat/completions', chatBody('err-400', 'x'));
  const e = assertError(r, 400, undefined, { type: 'invalid_request_error' });
  const sent = lastReqFor('err-400').error.message;
  assert.equal(e.message, sent.replaceAll(bm('err-400'), 'err-400'));
  assert.match(e.message, /prompt is too long/);

  const se = await sdkError(client().chat.completions.create(chatBody('err-400', 'x')));
  assert.equal(se.status, 400);
  assert.ok(se instanceof OpenAI.BadRequestError);
  assert.match(se.message, /prompt is too long for err-400/);

  // Streamed requests get the same JSON error (nothing was streamed yet).
  const s = await raw('/v1/chat/completions', { ...chatBody('err-400', 'x'), stream: true });
  assertError(s, 400);
});

test('errors: 401/403 from Anthropic (airouter credentials refused) -> 502 backend_auth_failed', T, async () => {
  for (const model of ['err-401', 'badkey-model', 'nokey-model', 'err-403']) {
    const r = await raw('/v1/chat/completions', chatBody(model, 'x'));
    const rec = lastReqFor(model);
    assert.ok(rec, `${model} reached the mock`);
    assert.ok(rec.status === 401 || rec.status === 403, `${model}: mock refused it (${rec.status})`);
    assertError(r, 502, 'backend_auth_failed');
  }
  assert.equal(lastReqFor('badkey-model').headers['x-api-key'], WRONG_KEY);
  assert.equal(lastReqFor('nokey-model').headers['x-api-key'], undefined, 'no api_key: no x-api-key header');
  const se = await sdkError(client().chat.completions.create(chatBody('badkey-model', 'x')));
  assert.equal(se.status, 502);
});

test('errors: 429 stays 429 with Retry-After and the message', T, async () => {
  const r = await raw('/v1/chat/completions', chatBody('err-429', 'x'));
  const e = assertError(r, 429);
  assert.equal(r.headers.get('retry-after'), '13');
  assert.equal(e.message, lastReqFor('err-429').error.message.replaceAll(bm('err-429'), 'err-429'));
  const se = await sdkError(client().chat.completions.create({ ...chatBody('err-429s', 'x'), stream: true }));
  assert.equal(lastReqFor('err-429s').status, 429, 'the streamed request reached the mock');
  assert.equal(se.status, 429);
  assert.ok(se instanceof OpenAI.RateLimitError);
  assert.equal(se.headers['retry-after'], '13');
});

test('errors: 529 overloaded -> 503 backend_overloaded; 500 -> 502 backend_error', T, async () => {
  const o = await raw('/v1/chat/completions', chatBody('err-529', 'x'));
  assert.equal(lastReqFor('err-529').status, 529);
  assertError(o, 503, 'backend_overloaded');
  const os = await raw('/v1/chat/completions', { ...chatBody('err-529', 'x'), stream: true });
  assertError(os, 503, 'backend_overloaded');

  const f = await raw('/v1/chat/completions', chatBody('err-500', 'x'));
  assert.equal(lastReqFor('err-500').status, 500);
  assertError(f, 502, 'backend_error', { type: 'server_error' });
  const se = await sdkError(client().chat.completions.create(chatBody('err-500', 'x')));
  assert.equal(se.status, 502);
});

test('errors: an error event after 200 becomes a final SSE error event (no [DONE])', T, async () => {
  const r = await rawStream({ ...chatBody('stream-err', 'one two three four five six'), stream: true });
  const rec = lastReqFor('stream-err');
  assert.equal(mockEvents(rec, 'error').length, 1, 'the mock sent an error event');
  assert.equal(r.status, 200);
  assert.ok(!r.events.includes('[DONE]'), 'no [DONE] after an error');
  const last = r.events.at(-1);
  assert.ok(last && last.error && typeof last.error.message === 'string' && last.error.message, `final event is an error: ${JSON.stringify(last)}`);
  const content = r.events.filter((e) => e.choices && e.choices[0] && e.choices[0].delta && e.choices[0].delta.content).map((e) => e.choices[0].delta.content);
  assert.deepEqual(content, ['you ', 'said: '], 'the deltas before the error were relayed');
  assertNoLeak(r.raw, 'stream error');

  // The SDK raises on it.
  const stream = await client().chat.completions.create({ ...chatBody('stream-err', 'a b c d'), stream: true });
  const got = [];
  const err = await sdkError((async () => { for await (const ch of stream) got.push(ch); })());
  assert.ok(err instanceof Error);
  assert.ok(got.length >= 1, 'chunks arrived before the error');
});

// ---------------------------------------------------------------- client abort

test('client abort mid-stream closes the connection to Anthropic', T, async () => {
  const ac = new AbortController();
  const res = await fetch(`${router.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify({ ...chatBody('claude-slow', 'go slowly'), stream: true }), signal: ac.signal,
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  while ((text.match(/"content":"w\d+ ?"/g) || []).length < 3) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  traffic.push({ where: 'abort stream', status: res.status, headers: [...res.headers], body: text });
  const rec = lastReqFor('claude-slow');
  assert.ok(rec && !rec.finishedAt, 'the backend stream is still running');
  const t0 = Date.now();
  ac.abort();
  await mock.waitClosed(rec, 3000);
  assert.ok(Date.now() - t0 < 3000, 'closed promptly');
  assert.equal(rec.aborted, true, 'the mock saw its stream cut before the end');
  assert.ok(rec.chunksSent < 60, `not all deltas were sent (${rec.chunksSent})`);
  // The router is fine afterwards.
  const r = await client().chat.completions.create(chatBody('claude-text', 'still alive'));
  assert.equal(r.choices[0].message.content, 'you said: still alive');
});

// ---------------------------------------------------------------- the mock itself

test('mock: validates like Anthropic (headers, error shape, roles) and streams in the documented order', T, async () => {
  const post = async (body, headers = {}) => {
    const res = await fetch(`${mock.url}/messages`, {
      method: 'POST', signal: AbortSignal.timeout(10000),
      headers: { 'content-type': 'application/json', 'x-api-key': BACKEND_KEY, 'anthropic-version': '2023-06-01', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const ok = { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] };
  const errOf = (r) => { const j = JSON.parse(r.text); assert.equal(j.type, 'error'); return j.error; };
  let r = await post(ok, { 'x-api-key': '' });
  assert.equal(r.status, 401); assert.equal(errOf(r).type, 'authentication_error');
  r = await post(ok, { 'x-api-key': 'nope' });
  assert.equal(r.status, 401);
  r = await post(ok, { 'anthropic-version': '' });
  assert.equal(r.status, 400); assert.match(errOf(r).message, /anthropic-version/);
  r = await post({ ...ok, max_tokens: undefined });
  assert.equal(r.status, 400); assert.equal(errOf(r).message, 'max_tokens: Field required');
  r = await post({ ...ok, messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }] });
  assert.equal(r.status, 400); assert.match(errOf(r).message, /system/);
  r = await post({ ...ok, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] });
  assert.equal(r.status, 400); assert.match(errOf(r).message, /alternate/);
  r = await post({ ...ok, messages: [{ role: 'assistant', content: 'a' }] });
  assert.equal(r.status, 400); assert.match(errOf(r).message, /first message/);
  r = await post({ ...ok, n: 1 });
  assert.equal(r.status, 400); assert.equal(errOf(r).message, 'n: Extra inputs are not permitted');
  r = await post(ok);
  assert.equal(r.status, 200); assert.ok(r.headers.get('request-id'));
  assert.equal(JSON.parse(r.text).type, 'message');
  r = await post({ ...ok, stream: true }); // "you said: hi": three text deltas
  const names = [...r.text.matchAll(/^event: (\w+)$/gm)].map((x) => x[1]);
  assert.deepEqual(names, ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta',
    'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  for (const block of r.text.trim().split('\n\n')) {
    const [ev, data] = block.split('\n');
    assert.equal(JSON.parse(data.slice(6)).type, ev.slice(7), 'data type repeats the event name');
  }
});

// ---------------------------------------------------------------- health checks

test('health checks on an anthropic backend: GET /v1/models with x-api-key and anthropic-version; failing checks take it out, passing ones bring it back', T, async () => {
  const m = await startMock({ port: 0, apiKey: BACKEND_KEY });
  let r;
  try {
    r = await h.startRouter(`
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
retry = { attempts = 1; };
backends = ( { name = "hc"; type = "anthropic"; url = "${m.url}"; api_key = "\${AN_KEY}"; health_check = { interval = 0.3; timeout = 1; }; } );
models = ( { name = "claude-hc"; backend = "hc"; backend_model = "claude-hc-model"; } );
`, { env: { AN_KEY: BACKEND_KEY } });
    const checks = () => m.requests.filter((q) => q.method === 'GET' && q.path === '/v1/models');
    await h.waitFor(() => checks().some((q) => q.status === 200), { timeout: 5000, what: 'a passing health check' });
    const q = checks()[0];
    assert.equal(q.headers['x-api-key'], BACKEND_KEY, 'the backend key in x-api-key');
    assert.equal(q.headers['anthropic-version'], '2023-06-01');
    assert.equal(q.headers.authorization, undefined, 'no Bearer header');
    const c = clients.openai(r, { apiKey: 'unused', timeout: 10000 });
    const ok = await c.chat.completions.create({ model: 'claude-hc', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.choices[0].message.content, 'you said: hi');

    m.modelsStatus = 500; // the backend fails its checks: no more requests go there
    const down = async () => {
      const res = await fetch(`${r.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-hc', messages: [{ role: 'user', content: 'hi' }] }) });
      const body = await res.json();
      return res.status === 503 && body.error.code === 'model_unavailable';
    };
    await h.waitFor(down, { timeout: 5000, what: '503 model_unavailable once the checks fail' });
    const before = m.requests.filter((x) => x.method === 'POST').length;
    assert.ok(await down(), 'still out');
    assert.equal(m.requests.filter((x) => x.method === 'POST').length, before, 'no request reached the unhealthy backend');

    m.modelsStatus = 0; // checks pass again: back in use
    await h.waitFor(async () => !(await down()), { timeout: 5000, what: 'the backend back after passing checks' });
    const again = await c.chat.completions.create({ model: 'claude-hc', messages: [{ role: 'user', content: 'back' }] });
    assert.equal(again.choices[0].message.content, 'you said: back');
  } finally {
    if (r) await r.stop();
    await m.close();
  }
});

// ---------------------------------------------------------------- leaks

test('no backend name, URL, key or backend model leaks to clients', T, async () => {
  // /v1/models lists client names only.
  const list = await fetch(`${router.base}/v1/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
  const lt = await list.text();
  traffic.push({ where: 'models', status: list.status, headers: [...list.headers], body: lt });
  assert.ok(traffic.entries.length > 20, `traffic recorded (${traffic.entries.length})`);
  await traffic.settle();
  for (const t of traffic.entries) {
    assertNoLeak(t.body, `${t.where} body`);
    for (const [k, v] of t.headers) assertNoLeak(`${k}: ${v}`, `${t.where} header`);
  }
});
