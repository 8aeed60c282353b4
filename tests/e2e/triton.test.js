'use strict';
// End-to-end tests of the Triton backend: the official `openai` client talks to airouter,
// which calls a mock Triton Inference Server over real gRPC (scripts/mock-triton.js, its own proto
// tests/e2e/proto/triton.proto). What reached Triton (prompt strings, tensors with datatypes, shapes
// and raw little-endian values, parameters, metadata, cancellation) is read from the mock's log.
//
// Mock models (backend_model names; see the mock's header): "ensemble" (TensorRT-LLM ensemble,
// batch dim), "ensemble_legacy" (random_seed), "ensemble_nobatch", "vllm_model", plus knobs
// (+flagonly, +eos, +error, +error_after=N, +hang, +status=CODE, +delay=MS).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { assertNoLeak: noLeak } = require('./lib/assert.js');
const { startMock, replyTokens, words } = require('../../scripts/mock-triton.js');

const T = { timeout: 30000 };
const sleep = h.sleep;

let mock;
let router;
let deadPort;

const SYSTEM_CONVO = [
  { role: 'system', content: 'You are helpful.' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there!' },
  { role: 'user', content: 'How are you?' },
];

// Expected prompts for SYSTEM_CONVO, from each family's published chat template.
const PROMPTS = {
  chatml: '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n'
    + '<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
  llama3: '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>'
    + '<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>'
    + '<|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>'
    + '<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>'
    + '<|start_header_id|>assistant<|end_header_id|>\n\n',
  llama2: '<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST] Hi there! </s><s>[INST] How are you? [/INST]',
  gemma: '<bos><start_of_turn>user\nYou are helpful.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there!<end_of_turn>\n'
    + '<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n',
  phi3: '<|system|>\nYou are helpful.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there!<|end|>\n'
    + '<|user|>\nHow are you?<|end|>\n<|assistant|>\n',
  zephyr: '<|system|>\nYou are helpful.</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there!</s>\n'
    + '<|user|>\nHow are you?</s>\n<|assistant|>\n',
  // the config's own format (system folded into the first user turn)
  folded: '<BOS>U: [SYS]You are helpful.[/SYS] Hello\nA: Hi there!\nU: How are you?\nA:',
};

const reply = (prompt) => replyTokens(prompt).join('');

function config(mockPort) {
  const fmtModels = ['llama2', 'gemma', 'phi3', 'zephyr', 'folded'].map((f) => `
  { name = "fmt-${f}"; backend = "t"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "${f}"; }`).join(',');
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; access_log = "off"; };
limits = { drain_timeout = 5; };
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; cooldown = 1; };
prompt_formats = (
  { name = "folded"; bos = "<BOS>"; system_prefix = "[SYS]"; system_suffix = "[/SYS] ";
    user_prefix = "U: "; user_suffix = "\\n"; assistant_prefix = "A: "; assistant_suffix = "\\n";
    generation_prompt = "A:"; system = "in_user"; }
);
backends = (
  { name = "t"; type = "triton"; url = "127.0.0.1:${mockPort}"; timeout = 20.0; first_byte_timeout = 15.0; idle_timeout = 15.0; },
  { name = "tfast"; type = "triton"; url = "127.0.0.1:${mockPort}"; timeout = 10.0; first_byte_timeout = 1.0; idle_timeout = 1.0; },
  { name = "dead"; type = "triton"; url = "127.0.0.1:${deadPort}"; timeout = 5.0; connect_timeout = 2.0; first_byte_timeout = 5.0; },
  { name = "tshort"; type = "triton"; url = "127.0.0.1:${mockPort}"; timeout = 1.5; first_byte_timeout = 10.0; idle_timeout = 10.0; }
);
models = (
  { name = "trt-chat"; backend = "t"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "llama3"; default = true; },
  { name = "vllm-chat"; backend = "t"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "chatml"; },
  { name = "trt-flagonly"; backend = "t"; backend_model = "ensemble+flagonly"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-eos"; backend = "t"; backend_model = "ensemble+eos"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-max3"; backend = "t"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "chatml"; max_tokens = 3; },
  { name = "vllm-max5"; backend = "t"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "chatml"; max_tokens = 5; },
  { name = "trt-legacy"; backend = "t"; backend_model = "ensemble_legacy"; profile = "trtllm"; prompt_format = "chatml";
    tensor_names = { seed = "random_seed"; }; },
  { name = "trt-legacy-unmapped"; backend = "t"; backend_model = "ensemble_legacy"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-nobatch"; backend = "t"; backend_model = "ensemble_nobatch"; profile = "trtllm"; prompt_format = "chatml"; batch_dim = false; },
  { name = "trt-nobatch-wrong"; backend = "t"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "chatml"; batch_dim = false; },
  { name = "vllm-batch-wrong"; backend = "t"; backend_model = "vllm_model"; profile = "vllm"; prompt_format = "chatml"; batch_dim = true; },
  { name = "trt-error"; backend = "t"; backend_model = "ensemble+error"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "vllm-error"; backend = "t"; backend_model = "vllm_model+error"; profile = "vllm"; prompt_format = "chatml"; },
  { name = "vllm-error-mid"; backend = "t"; backend_model = "vllm_model+error_after=3+delay=30"; profile = "vllm"; prompt_format = "chatml"; },
  { name = "trt-status"; backend = "t"; backend_model = "ensemble+status=13"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-status-mid"; backend = "t"; backend_model = "ensemble+status=13+status_after=3+delay=30"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-unknown"; backend = "t"; backend_model = "no_such_model"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-slow"; backend = "t"; backend_model = "ensemble+delay=300"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-hang"; backend = "tfast"; backend_model = "ensemble+hang"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-dead"; backend = "dead"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-deadline"; backend = "tshort"; backend_model = "ensemble+delay=400"; profile = "trtllm"; prompt_format = "chatml"; },
  { name = "trt-cumulative"; backend = "t"; backend_model = "ensemble+cumulative"; profile = "trtllm"; prompt_format = "chatml"; cumulative_output = true; },
  { name = "vllm-echo"; backend = "t"; backend_model = "vllm_model+echo"; profile = "vllm"; prompt_format = "chatml"; strip_prompt = true; },
  { name = "trt-big"; backend = "t"; backend_model = "ensemble+big=5000000"; profile = "trtllm"; prompt_format = "chatml"; },
${fmtModels}
);
`;
}

before(async () => {
  mock = await startMock({ port: 0 });
  deadPort = await h.freePort(); // nothing listens there
  router = await h.startRouter(config(mock.port));
});

after(async () => {
  if (router) await router.stop();
  if (mock) await mock.close();
});

const client = (opts = {}) => clients.openai(router, { apiKey: 'sk-test', ...opts });
const assertNoLeak = (text) => noLeak(text, 'client-visible text',
  ['ensemble', 'vllm_model', 'no_such_model', `127.0.0.1:${mock.port}`, `127.0.0.1:${deadPort}`]);

// The Triton requests for one backend model made after `since` (an index into mock.requests).
function reqsFor(model, since = 0) { return mock.requests.slice(since).filter((r) => r.model === model); }
async function lastReq(model, since) {
  return mock.waitFor(() => { const l = reqsFor(model, since); return l.length ? l[l.length - 1] : null; }, 5000);
}

// Raw SSE: [{ data }] in order (data strings), for checks the SDK hides ([DONE], error events).
async function rawSse(body, headers = {}) {
  const r = await fetch(`${router.base}/v1/${body.messages ? 'chat/completions' : 'completions'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test', ...headers },
    body: JSON.stringify({ stream: true, ...body }),
    signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
    if (data.length) events.push(data.join('\n'));
  }
  return { status: r.status, headers: r.headers, text, events };
}

async function postJson(p, body, headers = {}) {
  const r = await fetch(`${router.base}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, text, json };
}

// Checks one tensor as the mock decoded it.
function tensor(rec, name, datatype, shape) {
  const t = rec.inputs[name];
  assert.ok(t, `input '${name}' missing; got ${rec.inputOrder.join(',')}`);
  assert.equal(t.datatype, datatype, `${name} datatype`);
  assert.deepEqual(t.shape, shape, `${name} shape`);
  return t.values;
}

// ---------------------------------------------------------------------------------------------

test('trtllm chat streaming: role first, deltas in order, finish_reason, [DONE]; request tensors', T, async () => {
  const since = mock.requests.length;
  const stream = await client().chat.completions.create({ model: 'trt-chat', messages: SYSTEM_CONVO, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const rec = await lastReq('ensemble', since);
  assert.equal(rec.text, PROMPTS.llama3, 'prompt received by Triton');
  const want = replyTokens(rec.text);

  assert.ok(chunks.length >= want.length + 1, `chunks: ${chunks.length}`);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'first chunk carries the role');
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, 'trt-chat', 'model name rewritten in every chunk');
  }
  const contents = chunks.map((c) => c.choices[0] && c.choices[0].delta && c.choices[0].delta.content).filter((x) => x);
  assert.deepEqual(contents, want, 'content deltas, in order, one per Triton response');
  const finishes = chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x);
  assert.deepEqual(finishes, ['stop']);
  const last = chunks.filter((c) => c.choices.length).pop();
  assert.equal(last.choices[0].finish_reason, 'stop', 'finish_reason on the last chunk');
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1, 'one id across chunks');

  // What Triton got: ModelStreamInfer, one request, empty finals enabled as bool_param.
  assert.equal(rec.rpc, 'ModelStreamInfer');
  assert.equal(rec.stream.requests.length, 1, 'one request per call');
  assert.ok(rec.stream.halfClosedAt !== null, 'the client half-closed after its one request');
  assert.deepEqual(rec.params, { triton_enable_empty_final_response: true });
  assert.equal(rec.paramTypes.triton_enable_empty_final_response, 'bool_param');
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  assert.equal(rec.rawCount, rec.inputOrder.length, 'one raw_input_contents entry per input');
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1, 1]), [PROMPTS.llama3]);
  assert.deepEqual(tensor(rec, 'max_tokens', 'INT32', [1, 1]), [512], 'default max_tokens 512');
  assert.deepEqual(tensor(rec, 'stream', 'BOOL', [1, 1]), [true]);
  assert.deepEqual(tensor(rec, 'exclude_input_in_output', 'BOOL', [1, 1]), [true]);
  assert.deepEqual(rec.outputs, ['text_output']);
  for (const absent of ['temperature', 'top_p', 'seed', 'stop_words', 'sampling_parameters']) {
    assert.ok(!rec.inputs[absent], `${absent} sent although the client did not ask`);
  }
  assert.ok(rec.stream.deadline !== null && rec.stream.deadline > Date.now() - 60000, 'the call has a deadline');
});

test('trtllm chat streaming over raw SSE: role chunk, deltas, finish chunk, then [DONE]', T, async () => {
  const r = await rawSse({ model: 'trt-chat', messages: [{ role: 'user', content: 'Say hi' }] });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /text\/event-stream/);
  assert.equal(r.events[r.events.length - 1], '[DONE]', 'the stream ends with [DONE]');
  const chunks = r.events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finIdx = chunks.findIndex((c) => c.choices[0] && c.choices[0].finish_reason);
  assert.equal(finIdx, chunks.length - 1, 'finish_reason chunk is the last before [DONE]');
  const prompt = '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nSay hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
  const text = chunks.map((c) => (c.choices[0].delta && c.choices[0].delta.content) || '').join('');
  assert.equal(text, reply(prompt));
  for (const c of chunks) {
    assert.equal(c.model, 'trt-chat');
    const d = c.choices[0].delta;
    if (d && 'content' in d && d.content !== null) assert.notEqual(d.content, '', 'empty deltas are not relayed');
  }
  assertNoLeak(r.text);
});

test('trtllm chat non-streaming: one chat.completion with the whole text, no prompt echo', T, async () => {
  const since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'trt-chat', messages: SYSTEM_CONVO });
  const rec = await lastReq('ensemble', since);
  assert.equal(rec.text, PROMPTS.llama3);
  assert.deepEqual(tensor(rec, 'stream', 'BOOL', [1, 1]), [false]);
  assert.deepEqual(tensor(rec, 'exclude_input_in_output', 'BOOL', [1, 1]), [true], 'else TRT-LLM echoes the prompt');
  assert.equal(rec.rpc, 'ModelStreamInfer', 'decoupled models need ModelStreamInfer even for stream=false');
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.model, 'trt-chat');
  assert.equal(res.choices.length, 1);
  assert.equal(res.choices[0].message.role, 'assistant');
  assert.equal(res.choices[0].message.content, reply(PROMPTS.llama3));
  assert.equal(res.choices[0].finish_reason, 'stop');
});

test('vllm chat streaming: deltas, finish_reason from the model, usage from token counts (include_usage)', T, async () => {
  const since = mock.requests.length;
  const stream = await client().chat.completions.create({
    model: 'vllm-chat', messages: SYSTEM_CONVO, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const rec = await lastReq('vllm_model', since);
  assert.equal(rec.text, PROMPTS.chatml);
  const want = replyTokens(rec.text);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.deepEqual(chunks.map((c) => c.choices[0] && c.choices[0].delta.content).filter((x) => x), want);
  assert.deepEqual(chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x), ['stop']);
  for (const c of chunks) assert.equal(c.model, 'vllm-chat', 'model name rewritten in every chunk');
  const u = chunks[chunks.length - 1];
  assert.ok(u.usage, 'the last chunk carries usage');
  assert.deepEqual(u.choices, [], 'the usage chunk has no choices');
  assert.equal(u.usage.prompt_tokens, words(rec.text), 'prompt_tokens = num_input_tokens');
  assert.equal(u.usage.completion_tokens, want.length, 'completion_tokens = sum of num_output_tokens');
  assert.equal(u.usage.total_tokens, words(rec.text) + want.length);

  // vLLM tensors: no batch dim, sampling parameters as one JSON text.
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1]), [PROMPTS.chatml]);
  assert.deepEqual(tensor(rec, 'stream', 'BOOL', [1]), [true]);
  assert.deepEqual(tensor(rec, 'exclude_input_in_output', 'BOOL', [1]), [true]);
  for (const f of ['return_finish_reason', 'return_num_input_tokens', 'return_num_output_tokens']) {
    assert.deepEqual(tensor(rec, f, 'BOOL', [1]), [true], f);
  }
  tensor(rec, 'sampling_parameters', 'BYTES', [1]);
  assert.equal(rec.sampling.max_tokens, 512, 'vLLM defaults to 16 tokens: airouter always sends max_tokens');
  assert.ok(!rec.inputs.max_tokens, 'vLLM has no max_tokens tensor');
  assert.deepEqual([...rec.outputs].sort(), ['finish_reason', 'num_input_tokens', 'num_output_tokens', 'text_output']);
  assert.deepEqual(rec.params, { triton_enable_empty_final_response: true });
});

test('vllm chat streaming without include_usage: no usage chunk', T, async () => {
  const r = await rawSse({ model: 'vllm-chat', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(r.status, 200);
  assert.equal(r.events[r.events.length - 1], '[DONE]');
  const chunks = r.events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => !c.usage), 'usage only when asked for');
});

test('vllm chat non-streaming: whole text, usage, finish_reason length when max_tokens cut it', T, async () => {
  let since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'vllm-chat', messages: SYSTEM_CONVO });
  let rec = await lastReq('vllm_model', since);
  assert.deepEqual(tensor(rec, 'stream', 'BOOL', [1]), [false]);
  assert.deepEqual(tensor(rec, 'exclude_input_in_output', 'BOOL', [1]), [true], 'else vLLM echoes the prompt when not streaming');
  assert.equal(res.choices[0].message.content, reply(PROMPTS.chatml));
  assert.equal(res.choices[0].finish_reason, 'stop');
  assert.equal(res.model, 'vllm-chat');
  assert.ok(res.usage, 'usage from num_input_tokens / num_output_tokens');
  assert.equal(res.usage.prompt_tokens, words(PROMPTS.chatml));
  assert.equal(res.usage.completion_tokens, replyTokens(PROMPTS.chatml).length);

  since = mock.requests.length;
  const cut = await client().chat.completions.create({ model: 'vllm-chat', messages: SYSTEM_CONVO, max_tokens: 3 });
  rec = await lastReq('vllm_model', since);
  assert.equal(rec.sampling.max_tokens, 3);
  assert.equal(cut.choices[0].message.content, replyTokens(PROMPTS.chatml).slice(0, 3).join(''));
  assert.equal(cut.choices[0].finish_reason, 'length');
  assert.equal(cut.usage.completion_tokens, 3);
});

test('vllm chat streaming cut by max_tokens: finish_reason length', T, async () => {
  const stream = await client().chat.completions.create({ model: 'vllm-chat', messages: SYSTEM_CONVO, max_tokens: 2, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.deepEqual(chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x), ['length']);
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), replyTokens(PROMPTS.chatml).slice(0, 2).join(''));
});

test('completions: the prompt goes raw (no format), streaming and not, both profiles', T, async () => {
  const prompt = 'Once upon a time';
  let since = mock.requests.length;
  const res = await client().completions.create({ model: 'trt-chat', prompt });
  let rec = await lastReq('ensemble', since);
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1, 1]), [prompt]);
  assert.equal(res.object, 'text_completion');
  assert.equal(res.model, 'trt-chat');
  assert.equal(res.choices[0].text, reply(prompt));
  assert.equal(res.choices[0].finish_reason, 'stop');

  since = mock.requests.length;
  const stream = await client().completions.create({ model: 'vllm-chat', prompt, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  rec = await lastReq('vllm_model', since);
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1]), [prompt]);
  for (const c of chunks) { assert.equal(c.object, 'text_completion'); assert.equal(c.model, 'vllm-chat'); }
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].text) || '').join(''), reply(prompt));
  assert.deepEqual(chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x), ['stop']);

  since = mock.requests.length;
  const res2 = await client().completions.create({ model: 'vllm-chat', prompt });
  rec = await lastReq('vllm_model', since);
  assert.equal(res2.choices[0].text, reply(prompt));
});

test('prompt formats: the exact prompt Triton receives for a chat with a system message', T, async () => {
  const cases = [['fmt-llama2', 'llama2'], ['fmt-gemma', 'gemma'], ['fmt-phi3', 'phi3'], ['fmt-zephyr', 'zephyr'], ['fmt-folded', 'folded'],
    ['vllm-chat', 'chatml'], ['trt-chat', 'llama3']];
  const problems = [];
  for (const [model, fmt] of cases) {
    const since = mock.requests.length;
    const res = await client().chat.completions.create({ model, messages: SYSTEM_CONVO, max_tokens: 4 });
    const rec = await lastReq(model === 'trt-chat' ? 'ensemble' : 'vllm_model', since);
    if (rec.text !== PROMPTS[fmt]) problems.push(`${fmt}: got ${JSON.stringify(rec.text)}, want ${JSON.stringify(PROMPTS[fmt])}`);
    assert.equal(res.choices[0].message.content, replyTokens(rec.text).slice(0, 4).join(''));
  }
  assert.deepEqual(problems, []);
});

test('prompt formats: content parts joined with newlines, developer as system, tool as user', T, async () => {
  const since = mock.requests.length;
  await client().chat.completions.create({
    model: 'vllm-chat', max_tokens: 1,
    messages: [
      { role: 'developer', content: 'Dev rules.' },
      { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '42' },
    ],
  });
  const rec = await lastReq('vllm_model', since);
  assert.ok(rec.text.startsWith('<|im_start|>system\nDev rules.<|im_end|>\n<|im_start|>user\npart one\npart two<|im_end|>\n'), rec.text);
  assert.ok(rec.text.includes('<|im_start|>user\n42<|im_end|>\n'), `tool result as a user turn: ${rec.text}`);
  assert.ok(rec.text.endsWith('<|im_start|>assistant\n'), rec.text);
});

test('trtllm parameters: OpenAI parameters become tensors with the right datatypes and shapes', T, async () => {
  const since = mock.requests.length;
  await client().chat.completions.create({
    model: 'trt-chat', messages: [{ role: 'user', content: 'p' }],
    temperature: 0.5, top_p: 0.9, max_tokens: 7, seed: 42, stop: ['\n\n', 'END'],
    presence_penalty: 0.25, frequency_penalty: -0.5, top_k: 40,
  });
  const rec = await lastReq('ensemble', since);
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  assert.deepEqual(tensor(rec, 'temperature', 'FP32', [1, 1]), [0.5]);
  assert.deepEqual(tensor(rec, 'top_p', 'FP32', [1, 1]), [Math.fround(0.9)]);
  assert.deepEqual(tensor(rec, 'max_tokens', 'INT32', [1, 1]), [7]);
  assert.deepEqual(tensor(rec, 'seed', 'UINT64', [1, 1]), [42n]);
  assert.deepEqual(tensor(rec, 'stop_words', 'BYTES', [1, 2]), ['\n\n', 'END']);
  assert.deepEqual(tensor(rec, 'presence_penalty', 'FP32', [1, 1]), [0.25]);
  assert.deepEqual(tensor(rec, 'frequency_penalty', 'FP32', [1, 1]), [-0.5]);
  assert.deepEqual(tensor(rec, 'top_k', 'INT32', [1, 1]), [40]);
  // raw bytes exactly as the wire facts say
  assert.equal(rec.inputs.max_tokens.raw.toString('hex'), '07000000');
  assert.equal(rec.inputs.seed.raw.toString('hex'), '2a00000000000000');
  assert.equal(rec.inputs.stop_words.raw.toString('hex'), '020000000a0a03000000454e44');

  assert.ok(!rec.inputs.bad_words, 'no bad_words tensor unless asked');

  // a single stop string is a [1,1] tensor; a large seed keeps its 64 bits
  const since2 = mock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'p' }], stop: 'STOP', seed: 4294967297 });
  const rec2 = await lastReq('ensemble', since2);
  assert.deepEqual(tensor(rec2, 'stop_words', 'BYTES', [1, 1]), ['STOP']);
  assert.deepEqual(tensor(rec2, 'seed', 'UINT64', [1, 1]), [4294967297n]);

  // bad_words (an extension field, like vLLM's): a string or a list, as a BYTES [1,N] tensor
  const since3 = mock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'p' }], bad_words: ['darn', 'heck'] });
  const rec3 = await lastReq('ensemble', since3);
  assert.equal(rec3.error, null, `the mock rejected the request: ${rec3.error}`);
  assert.deepEqual(tensor(rec3, 'bad_words', 'BYTES', [1, 2]), ['darn', 'heck']);
  const since4 = mock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'p' }], bad_words: 'gosh' });
  assert.deepEqual(tensor(await lastReq('ensemble', since4), 'bad_words', 'BYTES', [1, 1]), ['gosh']);
});

test('trtllm: max_completion_tokens, the model default max_tokens, stop words cut the answer', T, async () => {
  let since = mock.requests.length;
  await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'p' }], max_completion_tokens: 6 });
  let rec = await lastReq('ensemble', since);
  assert.deepEqual(tensor(rec, 'max_tokens', 'INT32', [1, 1]), [6], 'max_completion_tokens');

  since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'trt-max3', messages: [{ role: 'user', content: 'p' }] });
  rec = await lastReq('ensemble', since);
  assert.deepEqual(tensor(rec, 'max_tokens', 'INT32', [1, 1]), [3], 'the model\'s max_tokens');
  assert.equal(res.choices[0].message.content, replyTokens(rec.text).slice(0, 3).join(''));

  since = mock.requests.length;
  await client().chat.completions.create({ model: 'trt-max3', messages: [{ role: 'user', content: 'p' }], max_tokens: 8 });
  rec = await lastReq('ensemble', since);
  assert.deepEqual(tensor(rec, 'max_tokens', 'INT32', [1, 1]), [8], 'the request overrides the model default');

  since = mock.requests.length;
  await client().chat.completions.create({ model: 'vllm-max5', messages: [{ role: 'user', content: 'p' }] });
  rec = await lastReq('vllm_model', since);
  assert.equal(rec.sampling.max_tokens, 5, 'vllm: the model default goes into sampling_parameters');

  since = mock.requests.length;
  const stopped = await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'p' }], stop: [' Triton'] });
  rec = await lastReq('ensemble', since);
  assert.equal(stopped.choices[0].message.content, 'Hello from');
});

test('vllm parameters: sampling_parameters JSON carries max_tokens, sampling knobs, seed and stop', T, async () => {
  const since = mock.requests.length;
  await client().chat.completions.create({
    model: 'vllm-chat', messages: [{ role: 'user', content: 'p' }],
    temperature: 0.5, top_p: 0.9, max_tokens: 7, seed: 42, stop: ['\n\n', 'END'], presence_penalty: 0.25, frequency_penalty: -0.5,
  });
  const rec = await lastReq('vllm_model', since);
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  const sp = rec.sampling;
  assert.equal(sp.max_tokens, 7);
  assert.equal(sp.temperature, 0.5);
  assert.equal(sp.top_p, 0.9);
  assert.equal(sp.seed, 42);
  assert.deepEqual(sp.stop, ['\n\n', 'END']);
  assert.equal(sp.presence_penalty, 0.25);
  assert.equal(sp.frequency_penalty, -0.5);
  for (const k of Object.keys(sp)) {
    if (['stop'].includes(k)) continue;
    assert.equal(typeof sp[k], 'number', `sampling_parameters.${k} is a JSON number`);
  }
  for (const t of ['temperature', 'top_p', 'seed', 'stop_words', 'max_tokens']) assert.ok(!rec.inputs[t], `vllm got a '${t}' tensor`);
  assert.ok(!('bad_words' in sp), 'no bad_words unless asked');
  const since2 = mock.requests.length;
  await client().chat.completions.create({ model: 'vllm-chat', messages: [{ role: 'user', content: 'p' }], bad_words: ['darn'] });
  const rec2 = await lastReq('vllm_model', since2);
  assert.deepEqual(rec2.sampling.bad_words, ['darn'], 'vllm: bad_words in sampling_parameters');
  assert.ok(!rec2.inputs.bad_words, 'vllm: not as a tensor');
});

test('tensor_names override: seed goes to random_seed on an older ensemble; unmapped it is rejected', T, async () => {
  let since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'trt-legacy', messages: [{ role: 'user', content: 'p' }], seed: 7 });
  let rec = await lastReq('ensemble_legacy', since);
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  assert.deepEqual(tensor(rec, 'random_seed', 'UINT64', [1, 1]), [7n]);
  assert.ok(!rec.inputs.seed);
  assert.equal(res.choices[0].message.content, reply(rec.text));

  since = mock.requests.length;
  const err = await client().chat.completions.create({ model: 'trt-legacy-unmapped', messages: [{ role: 'user', content: 'p' }], seed: 7 })
    .then(() => null, (e) => e);
  rec = await lastReq('ensemble_legacy', since);
  assert.match(rec.error || '', /unexpected inference input 'seed'/);
  assert.ok(err, 'Triton rejected the request: the client gets an error');
  assert.equal(err.status, 502);
  assertNoLeak(JSON.stringify(err.error || {}) + String(err.message));
});

test('batch_dim: false gives shapes [1] / [N] on a trtllm model; a wrong setting is rejected by Triton', T, async () => {
  let since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'trt-nobatch', messages: [{ role: 'user', content: 'p' }], stop: ['a', 'b', 'c'] });
  let rec = await lastReq('ensemble_nobatch', since);
  assert.equal(rec.error, null, `the mock rejected the request: ${rec.error}`);
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1]), [rec.text]);
  tensor(rec, 'max_tokens', 'INT32', [1]);
  tensor(rec, 'stream', 'BOOL', [1]);
  assert.deepEqual(tensor(rec, 'stop_words', 'BYTES', [3]), ['a', 'b', 'c']);
  assert.ok(res.choices[0].message.content.length > 0);

  since = mock.requests.length;
  let err = await client().chat.completions.create({ model: 'trt-nobatch-wrong', messages: [{ role: 'user', content: 'p' }] }).then(() => null, (e) => e);
  rec = await lastReq('ensemble', since);
  assert.match(rec.error || '', /unexpected shape for input 'text_input'.*Expected \[-1,1\], got \[1\]/);
  assert.equal(err && err.status, 502);

  since = mock.requests.length;
  err = await client().chat.completions.create({ model: 'vllm-batch-wrong', messages: [{ role: 'user', content: 'p' }] }).then(() => null, (e) => e);
  rec = await lastReq('vllm_model', since);
  assert.deepEqual(rec.inputs.text_input ? rec.inputs.text_input.shape : null, null);
  assert.match(rec.error || '', /unexpected shape for input 'text_input'.*Expected \[1\], got \[1,1\]/);
  assert.equal(err && err.status, 502);
});

test('flag-only final response (BLS-style) ends the request, streaming and not', T, async () => {
  let since = mock.requests.length;
  const stream = await client().chat.completions.create({ model: 'trt-flagonly', messages: [{ role: 'user', content: 'q' }], stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  let rec = await lastReq('ensemble+flagonly', since);
  assert.ok(rec.responses.some((x) => x.flagOnly), 'the mock sent a flag-only final (empty finals were enabled)');
  assert.ok(rec.responses.filter((x) => !x.flagOnly).every((x) => !x.final), 'no data response carried the final flag');
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), reply(rec.text));
  assert.deepEqual(chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x), ['stop']);

  since = mock.requests.length;
  const res = await client().chat.completions.create({ model: 'trt-flagonly', messages: [{ role: 'user', content: 'q' }] });
  rec = await lastReq('ensemble+flagonly', since);
  assert.equal(res.choices[0].message.content, reply(rec.text));

  // raw SSE: a trailing empty-text final (EOS) adds no empty delta
  const r = await rawSse({ model: 'trt-eos', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.events[r.events.length - 1], '[DONE]');
  const eosChunks = r.events.slice(0, -1).map((e) => JSON.parse(e));
  for (const c of eosChunks) {
    const d = c.choices[0] && c.choices[0].delta;
    if (d && typeof d.content === 'string' && !d.role) assert.notEqual(d.content, '', 'empty delta relayed');
  }
  assert.deepEqual(eosChunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter((x) => x), ['stop']);
});

test('in-stream error_message before any data -> 502 (streaming and not), no leak of Triton names', T, async () => {
  for (const model of ['trt-error', 'vllm-error']) {
    const r = await postJson('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'q' }] });
    assert.equal(r.status, 502, `${model}: ${r.text}`);
    assert.equal(r.json && r.json.error && r.json.error.type, 'server_error');
    assertNoLeak(r.text);
    const s = await postJson('/v1/chat/completions', { model, stream: true, messages: [{ role: 'user', content: 'q' }] });
    assert.equal(s.status, 502, `${model} streaming, error before the first token: ${s.text}`);
    assertNoLeak(s.text);
  }
  const err = await client().chat.completions.create({ model: 'vllm-error', messages: [{ role: 'user', content: 'q' }] }).then(() => null, (e) => e);
  assert.ok(err instanceof OpenAI.APIError);
  assert.equal(err.status, 502);
});

test('in-stream error after the stream started -> final SSE error event, no [DONE]', T, async () => {
  const r = await rawSse({ model: 'vllm-error-mid', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.status, 200);
  assert.ok(!r.events.includes('[DONE]'), `no [DONE] after an error: ${r.text}`);
  const last = JSON.parse(r.events[r.events.length - 1]);
  assert.ok(last.error, `the last event is an error: ${r.text}`);
  assert.ok(typeof last.error.message === 'string' && last.error.message.length > 0);
  const content = r.events.slice(0, -1).map((e) => JSON.parse(e)).map((c) => (c.choices && c.choices[0] && c.choices[0].delta.content) || '').join('');
  assert.equal(content, replyTokens('<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n').slice(0, 3).join(''), 'the deltas before the error');
  assertNoLeak(r.text);

  // the SDK surfaces it as an error while iterating
  const stream = await client().chat.completions.create({ model: 'vllm-error-mid', messages: [{ role: 'user', content: 'q' }], stream: true });
  let got = 0;
  const e = await (async () => { try { for await (const c of stream) { if (c.choices[0] && c.choices[0].delta.content) got++; } return null; } catch (x) { return x; } })();
  assert.ok(e, 'the SDK raised the stream error');
  assert.equal(got, 3);
});

test('stream ended with a gRPC error status -> 502; mid-stream -> SSE error event', T, async () => {
  const r = await postJson('/v1/chat/completions', { model: 'trt-status', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.status, 502, r.text);
  assertNoLeak(r.text);
  const s = await rawSse({ model: 'trt-status-mid', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(s.status, 200);
  assert.ok(!s.events.includes('[DONE]'), s.text);
  assert.ok(JSON.parse(s.events[s.events.length - 1]).error, s.text);
});

test('unknown model on Triton -> 502 without naming it', T, async () => {
  const since = mock.requests.length;
  const r = await postJson('/v1/chat/completions', { model: 'trt-unknown', messages: [{ role: 'user', content: 'q' }] });
  const rec = await lastReq('no_such_model', since);
  assert.match(rec.error, /Request for unknown model: 'no_such_model' is not found/);
  assert.equal(r.status, 502, r.text);
  assertNoLeak(r.text);
});

test('Triton down (closed port) -> 502 backend_unavailable, streaming and not', T, async () => {
  const t0 = Date.now();
  const r = await postJson('/v1/chat/completions', { model: 'trt-dead', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, 'backend_unavailable');
  assertNoLeak(r.text);
  assert.ok(Date.now() - t0 < 10000, 'fails fast');
  const s = await postJson('/v1/chat/completions', { model: 'trt-dead', stream: true, messages: [{ role: 'user', content: 'q' }] });
  assert.equal(s.status, 502, s.text);
  const err = await client().chat.completions.create({ model: 'trt-dead', messages: [{ role: 'user', content: 'q' }] }).then(() => null, (e) => e);
  assert.equal(err && err.status, 502);
});

test('Triton never answers -> 504 after first_byte_timeout, and the call is cancelled at Triton', T, async () => {
  const since = mock.streams.length;
  const t0 = Date.now();
  const r = await postJson('/v1/chat/completions', { model: 'trt-hang', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.status, 504, r.text);
  assert.equal(r.json.error.code, 'backend_timeout');
  assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
  const st = await mock.waitFor(() => mock.streams.slice(since).find((s) => s.requests.some((q) => q.model === 'ensemble+hang')), 3000);
  await mock.waitFor(() => st.cancelled, 5000).catch(() => {});
  assert.ok(st.cancelled, 'the Triton call was cancelled');
});

test('client abort mid-stream cancels the gRPC call at Triton', T, async () => {
  const since = mock.streams.length;
  const ac = new AbortController();
  const stream = await client().chat.completions.create(
    { model: 'trt-slow', messages: [{ role: 'user', content: 'tell me a long story' }], stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of stream) {
      if (c.choices[0] && c.choices[0].delta.content) n++;
      if (n === 2) ac.abort();
    }
  } catch { /* aborted */ }
  assert.equal(n, 2);
  const abortedAt = Date.now();
  const st = await mock.waitFor(() => mock.streams.slice(since).find((s) => s.requests.some((q) => q.model === 'ensemble+delay=300')), 3000);
  await mock.waitFor(() => st.cancelled, 6000).catch(() => {});
  assert.ok(st.cancelled, 'the call was cancelled at Triton');
  assert.ok(st.cancelledAt - abortedAt < 3000, `cancelled ${st.cancelledAt - abortedAt} ms after the abort`);
  const rec = st.requests[0];
  assert.ok(rec.responses.length < replyTokens(rec.text).length, 'generation stopped early');
  // the router is fine afterwards
  const res = await client().chat.completions.create({ model: 'trt-chat', messages: [{ role: 'user', content: 'after' }], max_tokens: 2 });
  assert.equal(res.choices[0].finish_reason.length > 0, true);
});

test('traceparent is forwarded to Triton as gRPC metadata (same trace id)', T, async () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const since = mock.streams.length;
  const r = await postJson('/v1/chat/completions', { model: 'trt-chat', messages: [{ role: 'user', content: 'q' }], max_tokens: 1 },
    { traceparent: `00-${trace}-00f067aa0ba902b7-01` });
  assert.equal(r.status, 200, r.text);
  const st = mock.streams.slice(since).find((s) => s.requests.some((q) => q.model === 'ensemble'));
  assert.ok(st, 'a Triton call was made');
  assert.match(st.traceparent || '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, `traceparent metadata: ${st.traceparent}`);
  assert.equal(st.traceparent.slice(3, 35), trace, 'the client\'s trace id');
  // tracing is not configured here: the client's context goes on unchanged
  assert.equal(st.traceparent, `00-${trace}-00f067aa0ba902b7-01`);

  // without one from the client (and no tracing), any traceparent sent must still be well-formed
  const since2 = mock.streams.length;
  await postJson('/v1/chat/completions', { model: 'trt-chat', messages: [{ role: 'user', content: 'q' }], max_tokens: 1 });
  const st2 = mock.streams.slice(since2).find((s) => s.requests.some((q) => q.model === 'ensemble'));
  assert.ok(st2);
  if (st2.traceparent !== undefined) assert.match(st2.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
});

test('channels are reused: sequential calls share at most one connection per worker', T, async () => {
  const since = mock.streams.length;
  for (let i = 0; i < 8; i++) {
    const r = await postJson('/v1/chat/completions', { model: 'trt-chat', messages: [{ role: 'user', content: `n${i}` }], max_tokens: 1 });
    assert.equal(r.status, 200);
  }
  const peers = new Set(mock.streams.slice(since).map((s) => s.peer));
  assert.ok(peers.size <= 2, `distinct connections for 8 calls with 2 workers: ${[...peers].join(' ')}`);
});

test('backend timeout: the gRPC deadline ends a slow call with 504 (or an SSE error once streaming)', T, async () => {
  const since = mock.streams.length;
  const t0 = Date.now();
  const r = await postJson('/v1/chat/completions', { model: 'trt-deadline', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(r.status, 504, r.text);
  assert.equal(r.json.error.code, 'backend_timeout');
  assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms`);
  const st = mock.streams.slice(since).find((s) => s.requests.some((q) => q.model === 'ensemble+delay=400'));
  assert.ok(st && st.deadline !== null, 'the call carried a deadline');
  assert.ok(st.deadline - st.openedAt <= 2500, `deadline ${st.deadline - st.openedAt} ms after the call opened; timeout is 1.5 s`);
  const s = await rawSse({ model: 'trt-deadline', messages: [{ role: 'user', content: 'q' }] });
  assert.equal(s.status, 200);
  assert.ok(!s.events.includes('[DONE]'), s.text);
  assert.ok(JSON.parse(s.events[s.events.length - 1]).error, s.text);
});

test('concurrent calls on the shared channel each get their own answer', T, async () => {
  const n = 12;
  const runs = [];
  for (let i = 0; i < n; i++) {
    const content = `question number ${i} ${'w '.repeat(i)}`.trim();
    runs.push((async () => {
      const stream = await client().chat.completions.create({ model: i % 2 ? 'vllm-chat' : 'trt-chat', messages: [{ role: 'user', content }], stream: true });
      let text = '';
      for await (const c of stream) text += (c.choices[0] && c.choices[0].delta.content) || '';
      return { i, content, text };
    })());
  }
  for (const { i, content, text } of await Promise.all(runs)) {
    const prompt = i % 2
      ? `<|im_start|>user\n${content}<|im_end|>\n<|im_start|>assistant\n`
      : `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${content}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`;
    assert.equal(text, reply(prompt), `answer ${i}`);
  }
});

test('UTF-8 prompts: BYTES lengths are byte counts', T, async () => {
  const since = mock.requests.length;
  const prompt = 'héllo wörld 世界 🚀';
  const res = await client().completions.create({ model: 'trt-chat', prompt, max_tokens: 3 });
  const rec = await lastReq('ensemble', since);
  assert.deepEqual(tensor(rec, 'text_input', 'BYTES', [1, 1]), [prompt]);
  assert.equal(rec.inputs.text_input.raw.readUInt32LE(0), Buffer.byteLength(prompt));
  assert.equal(res.choices[0].text, replyTokens(prompt).slice(0, 3).join(''));
});

test('answers over 4 MiB are received (raised receive limit)', T, async () => {
  const r = await postJson('/v1/chat/completions', { model: 'trt-big', messages: [{ role: 'user', content: 'big' }] });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  const prompt = '<|im_start|>user\nbig<|im_end|>\n<|im_start|>assistant\n';
  const content = r.json.choices[0].message.content;
  assert.equal(content.length, reply(prompt).length + 5000000);
  assert.ok(content.startsWith(reply(prompt)));
});

test('cumulative_output: cumulative responses become deltas', T, async () => {
  const stream = await client().chat.completions.create({ model: 'trt-cumulative', messages: [{ role: 'user', content: 'c' }], stream: true });
  const deltas = [];
  for await (const c of stream) if (c.choices[0] && c.choices[0].delta.content) deltas.push(c.choices[0].delta.content);
  const prompt = '<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n';
  assert.deepEqual(deltas, replyTokens(prompt));
  const res = await client().chat.completions.create({ model: 'trt-cumulative', messages: [{ role: 'user', content: 'c' }] });
  assert.equal(res.choices[0].message.content, reply(prompt));
});

test('strip_prompt: an echoed prompt is cut from the answer, streaming and not', T, async () => {
  const prompt = '<|im_start|>user\ne<|im_end|>\n<|im_start|>assistant\n';
  const res = await client().chat.completions.create({ model: 'vllm-echo', messages: [{ role: 'user', content: 'e' }] });
  assert.equal(res.choices[0].message.content, reply(prompt));
  const stream = await client().chat.completions.create({ model: 'vllm-echo', messages: [{ role: 'user', content: 'e' }], stream: true });
  let text = '';
  for await (const c of stream) text += (c.choices[0] && c.choices[0].delta.content) || '';
  assert.equal(text, reply(prompt));
});

test('readiness: ServerReady / ModelReady reach Triton (worker start-up probe)', T, async () => {
  assert.ok(mock.health.some((x) => x.rpc === 'ServerReady'), `health calls: ${JSON.stringify(mock.health.map((x) => x.rpc))}`);
});

test('no Triton request carries reserved parameters or mismatched raw contents', T, async () => {
  // Every request the router sent during this file, checked against Triton's rules.
  const bad = mock.requests.filter((r) => r.error && /triton_|raw_input_contents|data-type|byte size|unable to find data/.test(r.error));
  assert.deepEqual(bad.map((r) => `${r.model}: ${r.error}`), []);
  await sleep(0);
});
