'use strict';
// End-to-end tests of Anthropic's Messages API for clients: the official
// `@anthropic-ai/sdk` (and raw fetch where the wire itself is checked) against the real airouter,
// routing to the Anthropic mock (relayed: the body goes on but for the model), and to the OpenAI,
// Triton and echo backends (translated both ways).
//
// Backend model names start with "upstream-" and backend names with "bk-", so that one substring
// finds any leak of them.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const Anthropic = require('@anthropic-ai/sdk');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { fetchRaw } = require('./lib/http.js');
const { sseJson } = require('./lib/sse.js');
const { assertAnthropicError, assertNoLeak: noLeak } = require('./lib/assert.js');
const antMock = require('../../scripts/mock-anthropic.js');
const oaiMock = require('../../scripts/mock-openai.js');
const triMock = require('../../scripts/mock-triton.js');

const T = { timeout: 30000 };
const BACKEND_KEY = 'sk-ant-backend-SECRET-5e1f';
const KEY = 'sk-msg-all-0001';
const KEY_LIMITED = 'sk-msg-limited-0002';
const KEY_RPM = 'sk-msg-rpm-0003';
const MAX_BODY = 200000;

let ant; let oai; let tri; let router;

function config() {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { max_body_bytes = ${MAX_BODY}; drain_timeout = 5; };
retry = { attempts = 2; backoff_ms = 0; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "bk-ant"; type = "anthropic"; url = "${ant.url}"; api_key = "${BACKEND_KEY}"; },
  { name = "bk-oai"; type = "openai"; url = "${oai.url}"; },
  { name = "bk-tri"; type = "triton"; url = "${tri.url}"; timeout = 20.0; },
  { name = "bk-echo"; type = "echo"; }
);
models = (
  { name = "claude"; backend = "bk-ant"; backend_model = "upstream-claude-m1"; },
  { name = "claude-cache"; backend = "bk-ant"; backend_model = "upstream-cache-usage-m2"; },
  { name = "claude-529"; backend = "bk-ant"; backend_model = "upstream-error-529-m3"; },
  { name = "claude-tools"; backend = "bk-ant"; backend_model = "upstream-multi-tool-m4"; },
  { name = "claude-streamerr"; backend = "bk-ant"; backend_model = "upstream-stream-error-m5"; },
  { name = "local"; backend = "bk-oai"; backend_model = "upstream-local-m6"; kinds = ["chat"]; },
  { name = "local-tools"; backend = "bk-oai"; backend_model = "upstream-multi-tool-m7"; },
  { name = "local-503"; backend = "bk-oai"; backend_model = "upstream-error-503-m8"; },
  { name = "local-streamerr"; backend = "bk-oai"; backend_model = "upstream-stream-error-event-m9"; },
  { name = "local-maxtok"; backend = "bk-oai"; backend_model = "upstream-local-m10"; },
  { name = "claude-then-local"; backend = "bk-ant"; backend_model = "upstream-error-529-m13"; fallbacks = ["local"]; },
  { name = "claude-slow"; backend = "bk-ant"; backend_model = "upstream-slow-stream-30x100-m14"; },
  { name = "local-slow"; backend = "bk-oai"; backend_model = "upstream-slow-stream-30x100-m15"; },
  { name = "local-notok"; backend = "bk-oai"; backend_model = "upstream-no-tokenize-m12"; },
  { name = "emb-only"; backend = "bk-oai"; backend_model = "upstream-emb-m11"; kinds = ["embeddings"]; },
  { name = "triton-chat"; backend = "bk-tri"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "chatml"; },
  { name = "echo"; backend = "bk-echo"; }
);
api_keys = (
  { key = "${KEY}"; name = "all"; },
  { key = "${KEY_LIMITED}"; name = "limited"; models = ["local"]; },
  { key = "${KEY_RPM}"; name = "rpm1"; rpm = 1; }
);
`;
}

before(async () => {
  ant = await antMock.startMock({ port: 0, apiKey: BACKEND_KEY });
  oai = await oaiMock.startMock({ port: 0 });
  tri = await triMock.startMock({ port: 0 });
  router = await h.startRouter(config());
});

after(async () => {
  if (router) await router.stop();
  for (const m of [ant, oai, tri]) if (m) await m.close();
});

const client = (opts = {}) => clients.anthropic(router, { apiKey: KEY, ...opts });
// A POST with the Anthropic headers; body is sent as is when a string, else as JSON.
const raw = (path, body, headers = {}) => fetchRaw(router.base, 'POST', path, {
  headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'anthropic-version': '2023-06-01', ...headers },
  ...(typeof body === 'string' ? { body } : { json: body }),
});
// The events of an SSE body: [{ event, data }].
const sseEvents = sseJson;
const leakNeedles = () => ['upstream-', 'bk-', BACKEND_KEY, 'SECRET', `127.0.0.1:${ant.port}`, `127.0.0.1:${oai.port}`, tri.url];
const assertNoLeak = (text, what) => noLeak(text, what, leakNeedles());
// Checks an Anthropic-shaped error answer.
const assertError = (r, status, type) => assertAnthropicError(r, status, type, { needles: leakNeedles() });

// The checks an event stream must pass whatever the backend: Anthropic's order, and tool
// arguments that parse. Returns { blocks, stopReason, usage, text, inputs }.
function checkOrder(events) {
  const names = events.map((e) => e.event);
  assert.equal(names[0], 'message_start', names.join(','));
  assert.equal(names[names.length - 1], 'message_stop', names.join(','));
  assert.equal(names[names.length - 2], 'message_delta', names.join(','));
  for (const e of events) assert.equal(e.data.type, e.event, 'the JSON type repeats the event name');
  const blocks = []; let open = -1; let text = '';
  const partial = {};
  for (const e of events.slice(1, -2)) {
    if (e.event === 'ping') continue;
    if (e.event === 'content_block_start') {
      assert.equal(open, -1, 'a block starts only when the previous one stopped');
      assert.equal(e.data.index, blocks.length, 'blocks are numbered in order');
      open = e.data.index;
      blocks.push(e.data.content_block);
      if (e.data.content_block.type === 'tool_use') {
        assert.deepEqual(e.data.content_block.input, {});
        partial[open] = '';
      }
    } else if (e.event === 'content_block_delta') {
      assert.equal(e.data.index, open, 'deltas go to the open block');
      const d = e.data.delta;
      if (blocks[open].type === 'text') { assert.equal(d.type, 'text_delta'); text += d.text; }
      else { assert.equal(d.type, 'input_json_delta'); partial[open] += d.partial_json; }
    } else if (e.event === 'content_block_stop') {
      assert.equal(e.data.index, open);
      open = -1;
    } else {
      assert.fail(`unexpected event ${e.event}`);
    }
  }
  assert.equal(open, -1, 'every block stopped before message_delta');
  const pingAt = names.indexOf('ping');
  assert.ok(pingAt < 0 || pingAt === names.indexOf('content_block_start') + 1, `ping follows the first block's start: ${names}`);
  const inputs = {};
  for (const [i, s] of Object.entries(partial)) inputs[i] = JSON.parse(s); // must parse
  const md = events[events.length - 2].data;
  return { blocks, text, inputs, stopReason: md.delta.stop_reason, usage: md.usage, start: events[0].data.message };
}

const WEATHER = { name: 'get_weather', description: 'Weather in a place', input_schema: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } };
const TIME = { name: 'get_time', description: 'The time now', input_schema: { type: 'object', properties: {} } };

// ---------------------------------------------------------------- relay to Anthropic

test('relay: the body reaches Anthropic as sent but for the model; beta and version headers go along; model rewritten', T, async () => {
  const params = {
    model: 'claude', max_tokens: 200, temperature: 0.5, top_k: 7,
    system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hello relay', cache_control: { type: 'ephemeral' } }] }],
    metadata: { user_id: 'u-1' },
  };
  const { data: msg, response } = await client().messages.create(params, { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11' } }).withResponse();
  assert.equal(msg.model, 'claude');
  assert.equal(msg.content[0].text, 'you said: hello relay');
  assert.equal(msg.stop_reason, 'end_turn');
  assert.ok(response.headers.get('request-id'));
  const rec = ant.last((r) => r.path.startsWith('/v1/messages'));
  assert.deepEqual(rec.body, { ...params, model: 'upstream-claude-m1' });
  assert.equal(rec.headers['anthropic-beta'], 'prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11');
  assert.equal(rec.headers['anthropic-version'], '2023-06-01');
  assert.equal(rec.headers['x-api-key'], BACKEND_KEY);
});

test('relay: ?beta=true (as Claude Code sends it) is accepted and a Bearer key works', T, async () => {
  const r = await raw('/v1/messages?beta=true', { model: 'claude', max_tokens: 50, messages: [{ role: 'user', content: 'beta query' }] },
    { 'x-api-key': '', authorization: `Bearer ${KEY}` });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.model, 'claude');
  assert.equal(r.json.content[0].text, 'you said: beta query');
});

test('relay stream: SDK stream helpers and finalMessage(); the events are Anthropic\'s as they came, model rewritten', T, async () => {
  const stream = client().messages.stream({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: 'stream me please' }] });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, 'you said: stream me please');
  assert.equal(final.model, 'claude');
  assert.equal(final.content[0].text, text);
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.input_tokens > 0 && final.usage.output_tokens > 0);

  const r = await raw('/v1/messages', { model: 'claude', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'raw stream' }] });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const got = sseEvents(r.text);
  const rec = ant.last((x) => x.body && x.body.stream === true);
  assert.deepEqual(got.map((e) => e.event), rec.response.map((e) => e.event));
  assert.equal(got[0].data.message.model, 'claude');
  assertNoLeak(r.text, 'relayed stream');
  checkOrder(got);
});

test('relay: usage with prompt-cache reads and writes counts as input tokens in the metrics', T, async () => {
  const msg = await client().messages.create({ model: 'claude-cache', max_tokens: 50, messages: [{ role: 'user', content: 'one two three' }] });
  assert.equal(msg.usage.cache_read_input_tokens, 100);
  assert.equal(msg.usage.cache_creation_input_tokens, 7);
  const want = msg.usage.input_tokens + 107;
  const s = client().messages.stream({ model: 'claude-cache', max_tokens: 50, messages: [{ role: 'user', content: 'one two three' }] });
  const f = await s.finalMessage();
  assert.equal(f.usage.cache_read_input_tokens, 100);
  await h.waitFor(async () => {
    const m = await (await fetch(`${router.base}/metrics`)).text();
    const line = m.split('\n').find((l) => l.startsWith('airouter_tokens_total{model="claude-cache",type="prompt"}'));
    return line && Number(line.split(' ').pop()) === 2 * want;
  }, { what: 'prompt tokens of claude-cache' });
});

test('relay: tools in an agent loop that sends the SDK\'s own objects back', T, async () => {
  const c = client();
  const messages = [{ role: 'user', content: 'What is the weather and the time? use a tool' }];
  const first = await c.messages.create({ model: 'claude-tools', max_tokens: 200, tools: [WEATHER, TIME], messages });
  assert.equal(first.stop_reason, 'tool_use');
  const uses = first.content.filter((b) => b.type === 'tool_use');
  assert.equal(uses.length, 2);
  messages.push({ role: 'assistant', content: first.content });
  messages.push({ role: 'user', content: uses.map((u, i) => ({ type: 'tool_result', tool_use_id: u.id, content: i ? 'noon' : 'sunny' })) });
  const second = await c.messages.create({ model: 'claude-tools', max_tokens: 200, tools: [WEATHER, TIME], messages });
  assert.equal(second.content[0].text, 'tool said: sunny; noon');
});

test('relay: an error inside a started stream arrives as event: error', T, async () => {
  const r = await raw('/v1/messages', { model: 'claude-streamerr', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'a b c d' }] });
  assert.equal(r.status, 200);
  const ev = sseEvents(r.text);
  const last = ev[ev.length - 1];
  assert.equal(last.event, 'error');
  assert.equal(last.data.type, 'error');
  assert.equal(last.data.error.type, 'overloaded_error');
  assertNoLeak(r.text, 'stream error');
  await assert.rejects(client().messages.stream({ model: 'claude-streamerr', max_tokens: 100, messages: [{ role: 'user', content: 'a b c d' }] }).finalMessage(),
    (e) => /overloaded/i.test(String(e.message)));
});

// ---------------------------------------------------------------- translation

test('translated (OpenAI backend): non-streaming Message with text, stop_reason and usage; the chat request the backend got', T, async () => {
  const msg = await client().messages.create({
    model: 'local', max_tokens: 300, temperature: 0.2, stop_sequences: ['zzz'],
    system: 'You are terse.',
    messages: [{ role: 'user', content: 'hello local world' }],
  });
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.model, 'local');
  assert.match(msg.id, /^msg_/);
  assert.deepEqual(msg.content, [{ type: 'text', text: 'you said: hello local world' }]);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.stop_sequence, null);
  const rec = oai.last((r) => r.path === '/v1/chat/completions');
  assert.equal(msg.usage.input_tokens, rec.response.usage.prompt_tokens);
  assert.equal(msg.usage.output_tokens, rec.response.usage.completion_tokens);
  assert.deepEqual(rec.body.messages, [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hello local world' }]);
  assert.equal(rec.body.model, 'upstream-local-m6');
  assert.equal(rec.body.max_tokens, 300);
  assert.deepEqual(rec.body.stop, ['zzz']);
  assert.equal(rec.body.temperature, 0.2);
});

test('translated: max_tokens reached becomes stop_reason max_tokens', T, async () => {
  const msg = await client().messages.create({ model: 'local-maxtok', max_tokens: 2, messages: [{ role: 'user', content: 'one two three four five' }] });
  assert.equal(msg.stop_reason, 'max_tokens');
  const s = client().messages.stream({ model: 'local-maxtok', max_tokens: 2, messages: [{ role: 'user', content: 'one two three four five' }] });
  assert.equal((await s.finalMessage()).stop_reason, 'max_tokens');
});

test('translated stream (OpenAI backend): SDK helpers, finalMessage(), usage; input tokens exact in message_delta', T, async () => {
  const stream = client().messages.stream({ model: 'local', max_tokens: 100, messages: [{ role: 'user', content: 'stream local please' }] });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, 'you said: stream local please');
  assert.equal(final.content[0].text, text);
  assert.equal(final.model, 'local');
  assert.equal(final.stop_reason, 'end_turn');
  const rec = oai.last((r) => r.path === '/v1/chat/completions' && r.body.stream === true);
  assert.equal(final.usage.output_tokens, rec.response[rec.response.length - 1].usage.completion_tokens);

  const r = await raw('/v1/messages', { model: 'local', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'stream local please' }] });
  const o = checkOrder(sseEvents(r.text));
  assert.equal(o.text, 'you said: stream local please');
  assert.equal(o.stopReason, 'end_turn');
  assert.ok(o.start.usage.input_tokens > 0, 'message_start never reports a made-up 0');
  const last = oai.last((x) => x.path === '/v1/chat/completions' && x.body.stream === true);
  const u = last.response[last.response.length - 1].usage;
  assert.equal(o.usage.input_tokens, u.prompt_tokens);
  assert.equal(o.usage.output_tokens, u.completion_tokens);
  assertNoLeak(r.text, 'translated stream');
});

test('translated stream: exact event order with text then two tool calls, one without arguments; arguments parse', T, async () => {
  const r = await raw('/v1/messages', { model: 'local-tools', max_tokens: 100, stream: true, tools: [WEATHER, TIME], messages: [{ role: 'user', content: 'weather and time?' }] });
  assert.equal(r.status, 200, r.text);
  const ev = sseEvents(r.text);
  const o = checkOrder(ev);
  assert.deepEqual(ev.map((e) => e.event), [
    'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'content_block_stop',
    'content_block_start', ...Array(5).fill('content_block_delta'), 'content_block_stop',
    'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  assert.deepEqual(o.blocks.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  assert.equal(o.text, 'Let me check.');
  assert.equal(o.blocks[1].name, 'get_weather');
  assert.equal(o.blocks[1].id, 'call_mock1');
  assert.equal(o.blocks[2].name, 'get_time');
  assert.deepEqual(o.inputs[1], { location: 'Paris, France', unit: 'celsius' });
  assert.deepEqual(o.inputs[2], {});
  assert.equal(o.stopReason, 'tool_use');
  const rec = oai.last((x) => x.path === '/v1/chat/completions');
  assert.deepEqual(rec.body.tools.map((t) => t.function.name), ['get_weather', 'get_time']);
  assert.deepEqual(rec.body.tools[0].function.parameters, WEATHER.input_schema);
});

test('translated: tools in an agent loop (streaming, SDK objects sent back), tool_choice', T, async () => {
  const c = client();
  const messages = [{ role: 'user', content: 'weather and time?' }];
  const s = c.messages.stream({ model: 'local-tools', max_tokens: 200, tools: [WEATHER, TIME], tool_choice: { type: 'any' }, messages });
  const first = await s.finalMessage();
  assert.equal(first.stop_reason, 'tool_use');
  const uses = first.content.filter((b) => b.type === 'tool_use');
  assert.deepEqual(uses.map((u) => [u.name, u.input]), [['get_weather', { location: 'Paris, France', unit: 'celsius' }], ['get_time', {}]]);
  assert.equal(oai.last((x) => x.path === '/v1/chat/completions').body.tool_choice, 'required');
  messages.push({ role: 'assistant', content: first.content });
  messages.push({ role: 'user', content: uses.map((u, i) => ({ type: 'tool_result', tool_use_id: u.id, content: i ? [{ type: 'text', text: 'noon' }] : 'sunny' })) });
  const second = await c.messages.create({ model: 'local-tools', max_tokens: 200, tools: [WEATHER, TIME], messages });
  assert.equal(second.content[0].text, 'tool said: sunny; noon');
  assert.equal(second.stop_reason, 'end_turn');
  const rec = oai.last((x) => x.path === '/v1/chat/completions');
  const sent = rec.body.messages;
  assert.equal(sent[1].role, 'assistant');
  assert.equal(sent[1].content, 'Let me check.');
  assert.deepEqual(sent[1].tool_calls.map((t) => [t.id, t.function.name, JSON.parse(t.function.arguments)]),
    [['call_mock1', 'get_weather', { location: 'Paris, France', unit: 'celsius' }], ['call_mock2', 'get_time', {}]]);
  assert.deepEqual(sent.slice(2).map((m) => [m.role, m.tool_call_id, m.content]), [['tool', 'call_mock1', 'sunny'], ['tool', 'call_mock2', 'noon']]);
  // the non-streaming answer with tool calls too
  const ns = await c.messages.create({ model: 'local-tools', max_tokens: 200, tools: [WEATHER, TIME], messages: [{ role: 'user', content: 'again' }] });
  assert.deepEqual(ns.content.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  assert.deepEqual(ns.content[2].input, {});
});

test('translated: images become image_url parts; server tools and documents are refused with 400', T, async () => {
  const png = Buffer.from('89504e470d0a1a0a', 'hex').toString('base64');
  await client().messages.create({ model: 'local', max_tokens: 50, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] }] });
  const rec = oai.last((x) => x.path === '/v1/chat/completions');
  assert.deepEqual(rec.body.messages[0].content[1], { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } });
  const r = await raw('/v1/messages', { model: 'local', max_tokens: 50, tools: [{ type: 'web_search_20250305', name: 'web_search' }], messages: [{ role: 'user', content: 'hi' }] });
  assertError(r, 400, 'invalid_request_error');
  const d = await raw('/v1/messages', { model: 'local', max_tokens: 50, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] });
  assertError(d, 400, 'invalid_request_error');
});

test('translated (Triton and echo backends): non-streaming and streaming agree', T, async () => {
  for (const model of ['triton-chat', 'echo']) {
    const c = client();
    const params = { model, max_tokens: 64, messages: [{ role: 'user', content: 'hello there backend' }] };
    const msg = await c.messages.create(params);
    assert.equal(msg.model, model);
    assert.equal(msg.content[0].type, 'text');
    assert.ok(msg.content[0].text.length > 0);
    assert.ok(['end_turn', 'max_tokens'].includes(msg.stop_reason));
    const s = c.messages.stream(params);
    let text = '';
    s.on('text', (t) => { text += t; });
    const final = await s.finalMessage();
    assert.equal(text, msg.content[0].text, model);
    assert.equal(final.stop_reason, msg.stop_reason);
    const r = await raw('/v1/messages', { ...params, stream: true });
    checkOrder(sseEvents(r.text));
  }
  const rec = tri.last((x) => x.model === 'vllm_model');
  assert.ok(rec.text.includes('hello there backend'));
});

test('failover: an overloaded Anthropic target falls over to an OpenAI fallback, relayed then translated', T, async () => {
  const c = client();
  const params = { model: 'claude-then-local', max_tokens: 50, messages: [{ role: 'user', content: 'fall over please' }] };
  const { data: msg, response } = await c.messages.create(params).withResponse();
  assert.equal(msg.model, 'claude-then-local');
  assert.equal(msg.content[0].text, 'you said: fall over please');
  assert.ok(ant.last((x) => x.body && x.body.model === 'upstream-error-529-m13'), 'Anthropic was tried first');
  assert.ok(response.headers.get('request-id'));
  const r = await raw('/v1/messages', { ...params, stream: true });
  const o = checkOrder(sseEvents(r.text));
  assert.equal(o.text, 'you said: fall over please');
  assert.equal(o.start.model, 'claude-then-local');
});

test('streams are not buffered: the first text reaches the client while the backend is still sending', T, async () => {
  for (const [model, mock, bmodel] of [['claude-slow', ant, 'upstream-slow-stream-30x100-m14'], ['local-slow', oai, 'upstream-slow-stream-30x100-m15']]) {
    const res = await fetch(`${router.base}/v1/messages`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: JSON.stringify({ model, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'slow' }] }),
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    while (!text.includes('text_delta')) {
      const { value, done } = await reader.read();
      assert.ok(!done, `${model}: the stream ended before any text`);
      text += dec.decode(value, { stream: true });
    }
    const rec = mock.last((x) => x.body && x.body.model === bmodel);
    assert.equal(rec.finishedAt, null, `${model}: text arrived only after the backend had finished`);
    await reader.cancel();
  }
});

// ---------------------------------------------------------------- count_tokens

test('count_tokens: relayed to Anthropic; vLLM\'s /tokenize where offered; else estimated; Anthropic\'s shape', T, async () => {
  const c = client();
  const params = { model: 'claude', system: 'sys words here', messages: [{ role: 'user', content: 'count these five words' }] };
  const n = await c.messages.countTokens(params);
  assert.equal(n.input_tokens, antMock.inputTokens(params));
  const rec = ant.last((x) => x.path === '/v1/messages/count_tokens');
  assert.deepEqual(rec.body, { ...params, model: 'upstream-claude-m1' });
  assert.equal(rec.headers['anthropic-version'], '2023-06-01');

  const local = await c.messages.countTokens({ ...params, model: 'local' });
  assert.deepEqual(Object.keys(local), ['input_tokens']);
  const tok = oai.last((x) => x.path === '/tokenize');
  assert.ok(tok, 'the OpenAI-compatible backend was asked to count');
  assert.equal(tok.body.model, 'upstream-local-m6');
  assert.deepEqual(tok.body.messages, [{ role: 'system', content: 'sys words here' }, { role: 'user', content: 'count these five words' }]);
  assert.equal(local.input_tokens, oaiMock.tokenizeCount(tok.body));

  // a backend without /tokenize (404): airouter's estimate, still a positive count
  const est = await c.messages.countTokens({ ...params, model: 'local-notok' });
  assert.deepEqual(Object.keys(est), ['input_tokens']);
  assert.ok(Number.isInteger(est.input_tokens) && est.input_tokens > 0);
  const bigger = await c.messages.countTokens({ ...params, model: 'local-notok', messages: [{ role: 'user', content: 'count these five words '.repeat(50) }] });
  assert.ok(bigger.input_tokens > est.input_tokens * 10);
  const echo = await c.messages.countTokens({ ...params, model: 'echo' });
  assert.equal(echo.input_tokens, est.input_tokens, 'the same estimate for every backend without a tokenizer');
  const unknown = await raw('/v1/messages/count_tokens', { ...params, model: 'nope' });
  assertError(unknown, 404, 'not_found_error');
});

// ---------------------------------------------------------------- errors

test('errors: 401 authentication_error for a wrong or missing key', T, async () => {
  await assert.rejects(client({ apiKey: 'sk-wrong' }).messages.create({ model: 'local', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.status === 401 && e.error.error.type === 'authentication_error');
  assertError(await raw('/v1/messages', { model: 'local', max_tokens: 5, messages: [] }, { 'x-api-key': 'sk-wrong' }), 401, 'authentication_error');
  assertError(await raw('/v1/messages', { model: 'local', max_tokens: 5, messages: [] }, { 'x-api-key': '' }), 401, 'authentication_error');
});

test('errors: 404 not_found_error for an unknown model and, the same, for a model the key may not use', T, async () => {
  const params = (model) => ({ model, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
  await assert.rejects(client().messages.create(params('no-such-model')), (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
  const unknown = await raw('/v1/messages', params('claude-x'), { 'x-api-key': KEY_LIMITED });
  const forbidden = await raw('/v1/messages', params('claude'), { 'x-api-key': KEY_LIMITED });
  assertError(unknown, 404, 'not_found_error');
  assertError(forbidden, 404, 'not_found_error');
  assert.equal(forbidden.json.error.message.replace('claude', 'M'), unknown.json.error.message.replace('claude-x', 'M'));
  const ok = await raw('/v1/messages', params('local'), { 'x-api-key': KEY_LIMITED });
  assert.equal(ok.status, 200, ok.text);
});

test('errors: 400 invalid_request_error for malformed requests and a model that does not serve messages', T, async () => {
  assertError(await raw('/v1/messages', '{"model": "local", '), 400, 'invalid_request_error');
  assertError(await raw('/v1/messages', { max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request_error');
  assertError(await raw('/v1/messages', { model: 'local', messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request_error');
  assertError(await raw('/v1/messages', { model: 'local', max_tokens: 5, messages: [{ role: 'system', content: 'x' }] }), 400, 'invalid_request_error');
  assertError(await raw('/v1/messages', { model: 'emb-only', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request_error');
  await assert.rejects(client().messages.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === 'invalid_request_error');
});

test('errors: 413 request_too_large', T, async () => {
  const r = await raw('/v1/messages', { model: 'local', max_tokens: 5, messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY + 10) }] });
  assertError(r, 413, 'request_too_large');
});

test('errors: 429 rate_limit_error with retry-after over a key\'s rpm', T, async () => {
  const c = client({ apiKey: KEY_RPM });
  const params = { model: 'local', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] };
  await c.messages.create(params);
  const r = await raw('/v1/messages', params, { 'x-api-key': KEY_RPM });
  assertError(r, 429, 'rate_limit_error');
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  await assert.rejects(c.messages.create(params), (e) => e instanceof Anthropic.RateLimitError);
});

test('errors: 529 overloaded_error from an overloaded Anthropic backend; 500 api_error for a failed OpenAI backend', T, async () => {
  const params = (model) => ({ model, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
  assertError(await raw('/v1/messages', params('claude-529')), 529, 'overloaded_error');
  await assert.rejects(client().messages.create(params('claude-529')),
    (e) => e.status === 529 && e.error.error.type === 'overloaded_error');
  assertError(await raw('/v1/messages', params('local-503')), 500, 'api_error');
  await assert.rejects(client().messages.create(params('local-503')), (e) => e instanceof Anthropic.InternalServerError && e.error.error.type === 'api_error');
});

test('errors: a translated stream that fails after it started ends with event: error', T, async () => {
  const r = await raw('/v1/messages', { model: 'local-streamerr', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'a b c d e' }] });
  assert.equal(r.status, 200);
  const ev = sseEvents(r.text);
  assert.equal(ev[0].event, 'message_start');
  const last = ev[ev.length - 1];
  assert.equal(last.event, 'error');
  assert.equal(last.data.error.type, 'api_error');
  assert.ok(!ev.some((e) => e.event === 'message_stop'));
  assertNoLeak(r.text, 'translated stream error');
});

test('metrics count Messages API requests under kind "messages"', T, async () => {
  await client().messages.create({ model: 'local', max_tokens: 5, messages: [{ role: 'user', content: 'count me' }] });
  await h.waitFor(async () => /airouter_requests_total\{model="local",backend="bk-oai",kind="messages",status_class="2xx"\} [1-9]/
    .test(await (await fetch(`${router.base}/metrics`)).text()), { what: 'kind="messages" in the metrics' });
});
