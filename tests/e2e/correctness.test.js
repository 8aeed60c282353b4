'use strict';
// Correctness of what real clients rely on: the official `openai` npm client against the
// real airouter binary, routing to the mock Triton (gRPC), Anthropic and OpenAI servers in scripts/.
//   - a Triton model serves chat and completions only (embeddings refused at -t and per request)
//   - a conversation of system text only reaches Triton as the one user turn
//   - a streamed Anthropic tool call without arguments ends with arguments "{}"
//   - Anthropic's overloaded_error as the first stream event is a 503 backend_overloaded, like a 529
//   - request fields airouter reads are checked the same way whatever the backend, in OpenAI's words
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const OpenAI = require('openai');
const grpc = require('@grpc/grpc-js');
const h = require('./lib/harness.js');
const { newClient } = require('./lib/grpc.js');
const clients = require('./lib/client.js');
const { sdkError } = require('./lib/assert.js');
const triton = require('../../scripts/mock-triton.js');
const anthropic = require('../../scripts/mock-anthropic.js');
const openai = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };

let tmock; let amock; let omock; let router; let gport;

function config() {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:${gport}";
workers = 2;
log = { level = "info"; access_log = "off"; };
limits = { drain_timeout = 5; };
retry = { attempts = 2; backoff_ms = 10; max_backoff_ms = 50; deadline = 20; attempts_header = true; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "bk-triton"; type = "triton"; url = "127.0.0.1:${tmock.port}"; timeout = 20.0; first_byte_timeout = 15.0; idle_timeout = 15.0; },
  { name = "bk-claude"; type = "anthropic"; url = "${amock.url}"; api_key = "sk-ant-test-backend-1"; },
  { name = "bk-openai"; type = "openai"; url = "${omock.url}"; api_key = "sk-test-backend-2"; },
  { name = "bk-echo"; type = "echo"; }
);
models = (
  { name = "trt-chat"; backend = "bk-triton"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "vllm-mistral"; backend = "bk-triton"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "mistral"; },
  { name = "claude-noargs"; backend = "bk-claude"; backend_model = "upstream-no-args-tool-m1"; },
  { name = "claude-tool"; backend = "bk-claude"; backend_model = "upstream-m2"; },
  { name = "claude-overloaded"; backend = "bk-claude"; backend_model = "upstream-stream-overloaded-m3"; },
  { name = "claude-overloaded-ra"; backend = "bk-claude"; backend_model = "upstream-stream-overloaded-retry-after-9-m4"; },
  { name = "claude-529"; backend = "bk-claude"; backend_model = "upstream-error-529-m5"; },
  { name = "gpt"; backend = "bk-openai"; backend_model = "upstream-gpt"; },
  { name = "echo"; backend = "bk-echo"; }
);
`;
}

before(async () => {
  tmock = await triton.startMock({ port: 0 });
  amock = await anthropic.startMock({ port: await h.freePort(), apiKey: 'sk-ant-test-backend-1' });
  omock = await openai.startMock({ port: 0 });
  gport = await h.freePort();
  router = await h.startRouter(config());
}, { timeout: 30000 });

after(async () => {
  if (router) await router.stop();
  if (tmock) await tmock.close();
  if (amock) await amock.close();
  if (omock) await omock.close();
});

const client = () => clients.openai(router, { apiKey: 'sk-client' });

// Requests each mock has received (Triton calls, Anthropic and OpenAI HTTP requests).
function backendCalls() { return tmock.requests.length + amock.requests.length + omock.requests.length; }

// ---------------------------------------------------------------- 1. embeddings on Triton

test('triton: a model without kinds does not serve embeddings: 400 unsupported_kind, Triton not called', T, async () => {
  const before = tmock.requests.length;
  const e = await sdkError(client().embeddings.create({ model: 'trt-chat', input: 'some text' }));
  assert.equal(e.status, 400);
  assert.equal(e.code, 'unsupported_kind');
  assert.equal(e.param, 'model');
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(tmock.requests.length, before, 'no call reached Triton');
  // chat and completions still work
  const c = await client().completions.create({ model: 'trt-chat', prompt: 'hello', max_tokens: 5 });
  assert.equal(c.object, 'text_completion');
});

test('triton: kinds = ["embeddings"] on a Triton model fails airouter -t with FILE:LINE', T, async () => {
  const dir = h.tmpDir();
  const f = path.join(dir, 'airouter.conf');
  fs.writeFileSync(f, `listen = "127.0.0.1:1";
backends = ( { name = "t"; type = "triton"; url = "127.0.0.1:8001"; } );
models = (
  { name = "emb"; backend = "t"; profile = "vllm";
    kinds = ["embeddings"]; }
);
`);
  const r = spawnSync(h.BIN, ['-t', '-c', f], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0, 'the configuration is refused');
  assert.match(r.stderr + r.stdout, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5: model 'emb': backend 't' \\(type triton\\) cannot serve embeddings requests`));
});

// ---------------------------------------------------------------- 2. system text only

test('triton: a conversation of system text only is the one user turn of the prompt', T, async () => {
  let since = tmock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'system', content: 'Only rules.' }], max_tokens: 5 });
  let rec = await tmock.waitFor(() => tmock.requests.slice(since).find((r) => r.model === 'ensemble'), 5000);
  assert.deepEqual(rec.inputs.text_input.values, ['<|im_start|>user\nOnly rules.<|im_end|>\n<|im_start|>assistant\n']);

  since = tmock.requests.length;
  await client().chat.completions.create({ model: 'vllm-mistral', messages: [{ role: 'system', content: 'Only rules.' }], max_tokens: 5 });
  rec = await tmock.waitFor(() => tmock.requests.slice(since).find((r) => r.model === 'vllm_model'), 5000);
  assert.deepEqual(rec.inputs.text_input.values, ['<s>[INST] Only rules. [/INST]']);
});

// ---------------------------------------------------------------- 3. tool call without arguments

const NOARGS_TOOL = {
  type: 'function',
  function: {
    name: 'get_time', description: 'The current time.', strict: true,
    parameters: { type: 'object', properties: {}, required: [], additionalProperties: false },
  },
};

test('anthropic: a streamed tool call without arguments ends with arguments "{}" (SDK stream helper parses it)', T, async () => {
  const body = {
    model: 'claude-noargs', messages: [{ role: 'user', content: 'What time is it? Use the tool.' }],
    tools: [NOARGS_TOOL], tool_choice: { type: 'function', function: { name: 'get_time' } },
  };
  const stream = client().beta.chat.completions.stream(body);
  const done = await stream.finalChatCompletion();
  const rec = amock.requests.at(-1);
  const deltas = rec.response.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.partial_json);
  assert.deepEqual(deltas, [''], 'the mock streamed one empty input_json_delta, as Anthropic does');
  const call = done.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'get_time');
  assert.equal(call.function.arguments, '{}');
  assert.deepEqual(call.function.parsed_arguments, {});
  assert.equal(done.choices[0].finish_reason, 'tool_calls');

  // the same as the non-streaming answer
  const whole = await client().chat.completions.create(body);
  assert.equal(whole.choices[0].message.tool_calls[0].function.arguments, '{}');

  // a tool call with arguments still streams them once, unchanged
  const s2 = client().beta.chat.completions.stream({ ...body, model: 'claude-tool' });
  const d2 = await s2.finalChatCompletion();
  assert.deepEqual(JSON.parse(d2.choices[0].message.tool_calls[0].function.arguments), anthropic.TOOL_INPUT);
});

// ---------------------------------------------------------------- 4. overloaded_error in a stream

async function rawChat(body) {
  const r = await fetch(`${router.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client' },
    body: JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

test('anthropic: overloaded_error as the first stream event is 503 backend_overloaded, retried like a 529', T, async () => {
  const msgs = [{ role: 'user', content: 'hi' }];
  let since = amock.requests.length;
  const o = await rawChat({ model: 'claude-overloaded', messages: msgs, stream: true });
  const tries = amock.requests.slice(since);
  assert.equal(tries.length, 2, 'tried as often as the retry policy allows');
  assert.ok(tries.every((r) => r.status === 200 && r.response[0].event === 'error'), 'each try was a 200 whose first event is an error');
  assert.equal(o.status, 503);
  assert.equal(o.body.error.code, 'backend_overloaded');
  assert.equal(o.body.error.type, 'server_error');
  assert.equal(o.headers.get('x-airouter-attempts'), '2');
  assert.equal(o.headers.get('retry-after'), null, 'no Retry-After when the backend gave none');

  // a 529 ends the same way
  since = amock.requests.length;
  const n = await rawChat({ model: 'claude-529', messages: msgs, stream: true });
  assert.equal(amock.requests.length - since, 2);
  assert.equal(n.status, o.status);
  assert.equal(n.body.error.code, o.body.error.code);
  assert.equal(n.body.error.message, o.body.error.message);
  assert.equal(n.headers.get('x-airouter-attempts'), '2');

  // the backend's Retry-After, when it sent one, reaches the client
  const ra = await rawChat({ model: 'claude-overloaded-ra', messages: msgs, stream: true });
  assert.equal(ra.status, 503);
  assert.equal(ra.headers.get('retry-after'), '9');

  // the SDK sees a 503 it may retry
  const e = await sdkError(client().chat.completions.create({ model: 'claude-overloaded', messages: msgs, stream: true }));
  assert.equal(e.status, 503);
  assert.ok(e instanceof OpenAI.InternalServerError);
});

// ---------------------------------------------------------------- 5. request validation

const MSG = [{ role: 'user', content: 'hello' }];
// [what, body fields, status, param, code, message]
const BAD = [
  ['max_tokens 0', { max_tokens: 0 }, 'max_tokens', 'integer_below_min_value',
    "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."],
  ['max_tokens -5', { max_tokens: -5 }, 'max_tokens', 'integer_below_min_value',
    "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -5 instead."],
  ['max_tokens 2.5', { max_tokens: 2.5 }, 'max_tokens', 'invalid_type',
    "Invalid type for 'max_tokens': expected an integer, but got a decimal instead."],
  ['max_tokens "10"', { max_tokens: '10' }, 'max_tokens', 'invalid_type',
    "Invalid type for 'max_tokens': expected an integer, but got a string instead."],
  ['max_completion_tokens 0', { max_completion_tokens: 0 }, 'max_completion_tokens', 'integer_below_min_value',
    "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."],
  ['temperature "hot"', { temperature: 'hot' }, 'temperature', 'invalid_type',
    "Invalid type for 'temperature': expected a decimal, but got a string instead."],
  ['temperature 2.5', { temperature: 2.5 }, 'temperature', 'decimal_above_max_value',
    "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead."],
  ['temperature -1', { temperature: -1 }, 'temperature', 'decimal_below_min_value',
    "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 instead."],
  ['top_p true', { top_p: true }, 'top_p', 'invalid_type',
    "Invalid type for 'top_p': expected a decimal, but got a boolean instead."],
  ['top_p 1.5', { top_p: 1.5 }, 'top_p', 'decimal_above_max_value',
    "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.5 instead."],
  ['n 0', { n: 0 }, 'n', 'integer_below_min_value',
    "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."],
  ['n 129', { n: 129 }, 'n', 'integer_above_max_value',
    "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 instead."],
  ['messages []', { messages: [] }, 'messages', 'empty_array',
    "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."],
  ['messages "hi"', { messages: 'hi' }, 'messages', 'invalid_type',
    "Invalid type for 'messages': expected an array, but got a string instead."],
  ['a message without role', { messages: [{ role: 'user', content: 'a' }, { content: 'b' }] }, 'messages[1].role',
    'missing_required_parameter', "Missing required parameter: 'messages[1].role'."],
  ['an unknown role', { messages: [{ role: 'wizard', content: 'a' }] }, 'messages[0].role', 'invalid_value',
    "Invalid value: 'wizard'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."],
  ['a message that is not an object', { messages: ['hello'] }, 'messages[0]', 'invalid_type',
    "Invalid type for 'messages[0]': expected an object, but got a string instead."],
];

test('validation: bad fields get OpenAI\'s 400 with param and code, the same on every backend type, and reach no backend', T, async () => {
  const calls = backendCalls();
  for (const model of ['trt-chat', 'claude-tool', 'gpt', 'echo']) {
    for (const [what, fields, param, code, message] of BAD) {
      for (const stream of [false, true]) {
        const e = await sdkError(client().chat.completions.create({ model, messages: MSG, ...fields, stream }));
        const where = `${model} ${what}${stream ? ' (stream)' : ''}`;
        assert.ok(e instanceof OpenAI.BadRequestError, `${where}: ${e}`);
        assert.equal(e.status, 400, where);
        assert.equal(e.type, 'invalid_request_error', where);
        assert.equal(e.param, param, where);
        assert.equal(e.code, code, where);
        assert.equal(e.error.message, message, where);
      }
    }
  }
  assert.equal(backendCalls(), calls, 'no backend saw a bad request');
});

test('validation: completions are checked too; valid values, nulls and unknown fields pass through', T, async () => {
  const e = await sdkError(client().completions.create({ model: 'trt-chat', prompt: 'x', max_tokens: 0 }));
  assert.equal(e.status, 400);
  assert.equal(e.code, 'integer_below_min_value');
  assert.equal(e.param, 'max_tokens');
  const t = await sdkError(client().completions.create({ model: 'gpt', prompt: 'x', temperature: 'hot' }));
  assert.equal(t.code, 'invalid_type');
  assert.equal(t.param, 'temperature');

  // the edges of each range, nulls and fields airouter does not know all reach the backend
  const since = omock.requests.length;
  const ok = await client().chat.completions.create({
    model: 'gpt', messages: [{ role: 'developer', content: 'd' }, ...MSG], max_tokens: 1, n: 1, temperature: 2, top_p: 0,
    max_completion_tokens: null, frequency_penalty: null, some_vendor_field: { a: 1 },
  });
  assert.equal(ok.object, 'chat.completion');
  const rec = omock.requests.slice(since).find((r) => r.path === '/v1/chat/completions');
  assert.deepEqual(rec.body.some_vendor_field, { a: 1 });
  assert.equal(rec.body.temperature, 2);

  // Triton gets the max_tokens and temperature asked for
  const tsince = tmock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: MSG, max_tokens: 3, temperature: 0 });
  const trec = await tmock.waitFor(() => tmock.requests.slice(tsince).find((r) => r.model === 'ensemble'), 5000);
  assert.deepEqual(trec.inputs.max_tokens.values, [3]);
  assert.deepEqual(trec.inputs.temperature.values, [0]);
});

test('validation: the gRPC API checks the same fields (INVALID_ARGUMENT with OpenAI\'s message)', T, async () => {
  const c = newClient(gport);
  const call = (parameters) => new Promise((resolve) => {
    c.RouteRequest({ provider: '', model: 'gpt', prompt: 'hi', max_tokens: 0, parameters }, new grpc.Metadata(),
      { deadline: Date.now() + 15000 }, (err, res) => resolve({ err, res }));
  });
  try {
    await h.waitFor(async () => !(await call({})).err, { what: 'gRPC answers' });
    const calls = backendCalls();
    const r = await call({ temperature: '3' });
    assert.equal(r.err && r.err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(r.err.details, "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.");
    const n = await call({ n: '0' });
    assert.equal(n.err && n.err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(n.err.details, /^Invalid 'n': integer below minimum value/);
    assert.equal(backendCalls(), calls, 'no backend was called');
  } finally {
    c.close();
  }
});

test('validation: n > 1 on a backend that gives one choice (triton, anthropic, echo) is a 400 on param n; openai gets n', T, async () => {
  const calls = backendCalls();
  for (const model of ['trt-chat', 'claude-tool', 'echo']) {
    for (const stream of [false, true]) {
      const e = await sdkError(client().chat.completions.create({ model, messages: MSG, n: 3, stream }));
      const where = `${model}${stream ? ' (stream)' : ''}`;
      assert.ok(e instanceof OpenAI.BadRequestError, `${where}: ${e}`);
      assert.equal(e.param, 'n', where);
      assert.equal(e.code, 'unsupported_value', where);
      assert.match(e.error.message, /'n' must be 1/, where);
    }
  }
  const c = await sdkError(client().completions.create({ model: 'trt-chat', prompt: 'x', n: 2 }));
  assert.equal(c.status, 400);
  assert.equal(c.param, 'n');
  assert.equal(backendCalls(), calls, 'no one-choice backend was asked for several choices');

  const ok = await client().chat.completions.create({ model: 'echo', messages: MSG, n: 1 });
  assert.equal(ok.choices.length, 1);
  const since = omock.requests.length;
  await client().chat.completions.create({ model: 'gpt', messages: MSG, n: 2 });
  const rec = omock.requests.slice(since).find((r) => r.path === '/v1/chat/completions');
  assert.equal(rec.body.n, 2, 'an OpenAI-compatible backend serves n itself');
});
