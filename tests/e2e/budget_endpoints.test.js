'use strict';
// Budgets and prices on every endpoint a key can reach: the Responses API (whole and
// streamed), images, audio transcriptions (whole and streamed) and speech, moderations, the
// Messages API and passthrough rules. Each is charged from its answer's usage when it has one
// (Responses usage with cached input tokens, gpt-image usage, gpt-4o-transcribe usage, a run's
// usage through a passthrough rule), else at its reservation estimate (DALL-E, whisper, speech,
// moderations); a stored answer read back is not charged again. Each is refused with 429
// budget_exceeded once its key is over budget. Real clients (openai, @anthropic-ai/sdk) against
// the real binary and the mock OpenAI backend; with Redis, the same endpoints take their key's
// shared request count and budget in one call.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { toFile } = require('openai');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { idle, scrape } = require('./lib/metrics.js');
const { startRedis } = require('./lib/redis.js');
const { startMock, transcriptText, sha256 } = require('../../scripts/mock-openai.js');

const T = { timeout: 60000 };
const BIG = 'sk-budget-every-big-01';
const TINY = 'sk-budget-every-tiny-2';
// dollars per million tokens: $0.001 an input token, $0.002 an output token, $0.0001 a cached one
const PRICE = 'price = { input = 1000.0; output = 2000.0; cached_input = 100.0; };';
// [client name, backend model, kinds, price and max_tokens]
const MODELS = [
  ['resp', 'upstream-resp-cached-2', 'responses', PRICE],
  ['gpt-image-1', 'upstream-gpt-image-1', 'images', 'price = { input = 1000.0; output = 1.0; };'],
  ['dall-e-3', 'upstream-dall-e-3', 'images', `${PRICE} max_tokens = 50;`],
  ['gpt-4o-transcribe', 'upstream-transcribe-with-usage', 'transcriptions', PRICE],
  ['whisper-1', 'upstream-whisper-1', 'transcriptions', 'price = { input = 0.0; output = 2000.0; }; max_tokens = 20;'],
  ['tts-1', 'upstream-tts-1', 'speech', `${PRICE} max_tokens = 30;`],
  ['omni-moderation-latest', 'upstream-moderation', 'moderations', PRICE],
  ['run-model', 'upstream-run-model', 'chat', PRICE],
];
const ECHO = 'echo-chat';

let mock; let router; let redis;

function config(mockUrl, extra) {
  const models = MODELS.map(([name, bm, kinds, more]) =>
    `  { name = "${name}"; backend = "bk"; backend_model = "${bm}"; kinds = ["${kinds}"]; ${more} }`).join(',\n');
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 5; };
retry = { attempts = 1; };
backends = ( { name = "bk"; type = "openai"; url = "${mockUrl}"; }, { name = "echo"; type = "echo"; } );
models = (
${models},
  { name = "${ECHO}"; backend = "echo"; ${PRICE} }
);
passthrough = ( { prefix = "/v1/threads"; backend = "bk"; }, { prefix = "/v1/files"; backend = "bk"; } );
${extra}
`;
}

const client = (key) => clients.openai(router, { apiKey: key });

// A key's spend on a model, once every request so far has been charged (a request is charged as it
// finishes, which can trail the client's read of its answer).
async function spend(r, key, model) {
  await idle(r);
  const text = await scrape(r);
  const line = text.split('\n').find((l) => l.startsWith(`airouter_spend_usd_total{key="${key}",model="${model}"}`));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

// The access log's cost_usd of the last request on path (by model, when given).
async function loggedCost(r, path, model) {
  const line = await h.waitFor(() => r.log.split('\n').reverse()
    .find((l) => l.includes(`"path":"${path}"`) && (!model || l.includes(`"model":"${model}"`))), { what: `the access log line of ${path}` });
  return JSON.parse(line).cost_usd;
}

const close = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} != ${b}`);
// what a JSON request reserves: its body's bytes / 4 at the input price, its completion at the output
// price (the openai client sends its JSON indented by two spaces)
const estimate = (body, completion, input = 0.001, output = 0.002) =>
  Math.floor(JSON.stringify(body, null, 2).length / 4) * input + completion * output;
const audio = Buffer.alloc(4500, 7);

before(async () => {
  mock = await startMock({ port: 0 });
  router = await h.startRouter(config(mock.url, `state_file = "@DIR@/state";
api_keys = ( { key = "${BIG}"; name = "big"; budget = { usd = 1000.0; period = "month"; }; },
             { key = "${TINY}"; name = "tiny"; budget = { usd = 0.001; period = "day"; }; } );`));
});

after(async () => {
  if (router) await router.stop();
  if (redis) await redis.stop();
  if (mock) await mock.close();
});

test('Responses API: charged from usage (cached input at its price), whole and streamed; a stored response read back costs nothing', T, async () => {
  const c = client(BIG);
  // the mock: 4 input tokens of which 2 cached, 6 output tokens ("you said: one two three four")
  const cost = 2 * 0.001 + 2 * 0.0001 + 6 * 0.002;
  const whole = await c.responses.create({ model: 'resp', input: 'one two three four', max_output_tokens: 500 });
  assert.equal(whole.usage.input_tokens_details.cached_tokens, 2);
  close(await spend(router, 'big', 'resp'), cost, 'whole');
  close(await loggedCost(router, '/v1/responses', 'resp'), cost, 'access log');
  const stream = await c.responses.create({ model: 'resp', input: 'one two three four', stream: true });
  let completed;
  for await (const ev of stream) if (ev.type === 'response.completed') completed = ev;
  assert.equal(completed.response.usage.output_tokens, 6);
  await h.waitFor(async () => Math.abs((await spend(router, 'big', 'resp')) - 2 * cost) < 1e-9, { what: 'the streamed charge' });
  // reading it back returns the same usage, which was paid for when it was made
  const again = await c.responses.retrieve(whole.id);
  assert.equal(again.usage.output_tokens, 6);
  await h.waitFor(() => router.log.split('\n').some((l) => l.includes(`"path":"/v1/responses/${whole.id}"`)), { what: 'the read logged' });
  close(await spend(router, 'big', 'resp'), 2 * cost, 'after the read');
});

test('images: gpt-image-1 charged from its usage, DALL-E (no usage) at the reservation estimate', T, async () => {
  const c = client(BIG);
  const img = await c.images.generate({ model: 'gpt-image-1', prompt: 'a red fox' });
  assert.equal(img.usage.output_tokens, 1056);
  close(await spend(router, 'big', 'gpt-image-1'), 3 * 0.001 + 1056 * 0.000001, 'gpt-image-1');
  const body = { model: 'dall-e-3', prompt: 'a red fox' };
  const dalle = await c.images.generate(body);
  assert.equal(dalle.usage, undefined);
  close(await spend(router, 'big', 'dall-e-3'), estimate(body, 50), 'dall-e-3 at its estimate (model max_tokens 50)');
  close(await loggedCost(router, '/v1/images/generations', 'dall-e-3'), estimate(body, 50), 'access log');
});

test('audio: transcriptions charged from usage (whole and streamed), whisper and speech (no usage) at the estimate', T, async () => {
  const c = client(BIG);
  const text = transcriptText('transcribe', { size: audio.length, sha256: sha256(audio) });
  const words = text.split(/\s+/).filter(Boolean).length;
  const one = 5 * 0.001 + words * 0.002; // ceil(4500 / 1000) input tokens, a token a word out
  const whole = await c.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(audio, 'a.wav') });
  assert.equal(whole.usage.input_tokens, 5);
  close(await spend(router, 'big', 'gpt-4o-transcribe'), one, 'whole transcription');
  const stream = await c.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(audio, 'a.wav'), stream: true });
  for await (const ev of stream) assert.ok(ev.type.startsWith('transcript.text.'));
  await h.waitFor(async () => Math.abs((await spend(router, 'big', 'gpt-4o-transcribe')) - 2 * one) < 1e-9, { what: 'the streamed charge' });
  // whisper answers without usage: the estimate stands (input priced at 0 here: its upload's size
  // does not count; the model's max_tokens of completion does)
  await c.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'a.mp3') });
  close(await spend(router, 'big', 'whisper-1'), 20 * 0.002, 'whisper-1');
  const speech = { model: 'tts-1', voice: 'alloy', input: 'hello there' };
  const res = await c.audio.speech.create(speech);
  assert.ok((await res.arrayBuffer()).byteLength > 0);
  await h.waitFor(async () => Math.abs((await spend(router, 'big', 'tts-1')) - estimate(speech, 30)) < 1e-9,
    { what: 'speech charged at its estimate' });
});

test('moderations (no usage, no completion) are charged their prompt estimate', T, async () => {
  const body = { model: 'omni-moderation-latest', input: 'is this fine' };
  const mod = await client(BIG).moderations.create(body);
  assert.equal(mod.results.length, 1);
  close(await spend(router, 'big', 'omni-moderation-latest'), estimate(body, 0), 'moderation');
});

test('passthrough: charged from the answer usage at the price of the model its body names; other forwarded calls cost nothing', T, async () => {
  const c = client(BIG);
  const run = await c.beta.threads.createAndRun({
    assistant_id: 'asst_1', model: 'run-model', thread: { messages: [{ role: 'user', content: 'five words in this message' }] },
  });
  assert.equal(run.usage.completion_tokens, 7);
  close(await spend(router, 'big', 'run-model'), 5 * 0.001 + 7 * 0.002, 'the run');
  close(await loggedCost(router, '/v1/threads/runs'), 5 * 0.001 + 7 * 0.002, 'access log');
  const before = await spend(router, 'big', 'run-model');
  await c.files.list();
  await h.waitFor(() => /"path":"\/v1\/files".*"key":"big"/.test(router.log), { what: 'the files call logged' });
  close(await spend(router, 'big', 'run-model'), before, 'files list');
});

test('Messages API: charged from usage; counting tokens costs nothing', T, async () => {
  const a = clients.anthropic(router, { apiKey: BIG });
  const msg = await a.messages.create({ model: ECHO, max_tokens: 100, messages: [{ role: 'user', content: 'a b c d e' }] });
  const cost = msg.usage.input_tokens * 0.001 + msg.usage.output_tokens * 0.002;
  assert.ok(cost > 0);
  close(await spend(router, 'big', ECHO), cost, 'message');
  const counted = await a.messages.countTokens({ model: ECHO, messages: [{ role: 'user', content: 'a b c d e' }] });
  assert.ok(counted.input_tokens > 0);
  await h.waitFor(() => router.log.includes('"path":"/v1/messages/count_tokens"'), { what: 'count_tokens logged' });
  close(await spend(router, 'big', ECHO), cost, 'after count_tokens');
});

test('over budget, every endpoint answers 429 budget_exceeded with Retry-After', T, async () => {
  const c = client(TINY);
  // one response ($0.0142) spends the $0.001 budget: the next request of any kind is refused
  const first = await c.responses.create({ model: 'resp', input: 'one two three four' });
  const tries = {
    responses: () => c.responses.create({ model: 'resp', input: 'x' }),
    'responses stream': () => c.responses.create({ model: 'resp', input: 'x', stream: true }),
    'response read': () => c.responses.retrieve(first.id),
    images: () => c.images.generate({ model: 'dall-e-3', prompt: 'x' }),
    transcriptions: async () => c.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'a.mp3') }),
    speech: () => c.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'x' }),
    moderations: () => c.moderations.create({ model: 'omni-moderation-latest', input: 'x' }),
    'passthrough run': () => c.beta.threads.createAndRun({ assistant_id: 'a', model: 'run-model', thread: { messages: [] } }),
    'passthrough files': () => c.files.list(),
    chat: () => c.chat.completions.create({ model: ECHO, messages: [{ role: 'user', content: 'x' }] }),
    messages: () => clients.anthropic(router, { apiKey: TINY })
      .messages.create({ model: ECHO, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
  };
  const now = new Date();
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  for (const [what, call] of Object.entries(tries)) {
    const e = await call().then(() => null, (err) => err);
    assert.ok(e, `${what}: must be refused`);
    assert.equal(e.status, 429, what);
    if (what !== 'messages') assert.equal(e.error.type, 'budget_exceeded', what);
    const retry = Number(e.headers['retry-after'] ?? e.headers.get?.('retry-after'));
    assert.ok(Math.abs(retry - (midnight - Date.now()) / 1000) <= 5, `${what}: Retry-After ${retry}`);
  }
  close(await spend(router, 'tiny', 'resp'), 0.0142, 'only the first response was charged');
});

test('with Redis: every endpoint takes its request from the shared rpm and its cost from the shared budget, in one call', T, async () => {
  redis = await startRedis();
  const r = await h.startRouter(config(mock.url, `cluster = { redis = "${redis.url}"; key_prefix = "be:"; timeout_ms = 2000; };
api_keys = ( { key = "${BIG}"; name = "shared"; rpm = 4; tpm = 1000000; budget = { usd = 1000.0; period = "total"; }; } );`));
  try {
    const c = clients.openai(r, { apiKey: BIG });
    const calls0 = Number(/cmdstat_evalsha:calls=(\d+)/.exec(redis.cli('INFO', 'commandstats'))?.[1] ?? 0);
    await c.responses.create({ model: 'resp', input: 'one two three four' });
    await c.images.generate({ model: 'gpt-image-1', prompt: 'a red fox' });
    await c.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(audio, 'a.wav') });
    await c.beta.threads.createAndRun({ assistant_id: 'a', model: 'run-model', thread: { messages: [{ role: 'user', content: 'five words in this message' }] } });
    const e = await c.moderations.create({ model: 'omni-moderation-latest', input: 'x' }).then(() => null, (err) => err);
    assert.equal(e?.status, 429, 'the fifth request of the minute is refused');
    assert.equal(e.error.type, 'requests');
    const text = transcriptText('transcribe', { size: audio.length, sha256: sha256(audio) });
    const want = (2 * 0.001 + 2 * 0.0001 + 6 * 0.002) + (3 * 0.001 + 1056 * 0.000001) +
      (5 * 0.001 + text.split(/\s+/).filter(Boolean).length * 0.002) + (5 * 0.001 + 7 * 0.002);
    await h.waitFor(() => Math.abs(Number(redis.cli('GET', 'be:key:shared:b:0')) - Math.round(want * 1e6)) <= 4,
      { what: `the shared budget settled to $${want}` });
    // one script call per request before it runs, and the settlements after
    const calls = Number(/cmdstat_evalsha:calls=(\d+)/.exec(redis.cli('INFO', 'commandstats'))[1]) - calls0;
    assert.ok(calls >= 5 && calls <= 9, `${calls} script calls for 5 requests`);
  } finally {
    await r.stop();
  }
});
