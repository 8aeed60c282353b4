'use strict';
// End-to-end tests of the rest of the OpenAI API surface: audio speech, transcriptions and
// translations, images, moderations, the Responses API, and passthrough rules. The official `openai`
// npm client (and raw fetch / node:http where the wire format itself is checked) talks to the real
// airouter binary, which routes to the mock backend in scripts/mock-openai.js; the mock records what it
// got (multipart uploads are parsed there: field values and the sha256 of every file part).
//
// Every backend model name starts with "upstream-" and every backend name with "bk-", so that one
// substring finds any leak of them.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { toFile } = require('openai');
const nodeFetch = require('node-fetch'); // what the SDK uses in node; it can send streamed multipart bodies
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { Traffic } = require('./lib/traffic.js');
const { fetchRaw, rawHttp: rawHttpTo } = require('./lib/http.js');
const { sseEvents } = require('./lib/sse.js');
const { assertOpenAIError, assertNoLeak: noLeak, assertCleanLog } = require('./lib/assert.js');
const { idle } = require('./lib/metrics.js');
const {
  startMock, speechAudio, AUDIO_TYPES, transcriptText, transcriptAnswer, imageBytes, moderationResult, responseReply, sha256,
} = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };
const BACKEND_KEY = 'sk-backend-SECRET-4411aa';
const CLIENT_KEY = 'sk-client-surface-777';
const MAX_BODY = 6 * 1024 * 1024;
const B = { primary: 'bk-primary-a1', passkey: 'bk-passkey-b2', nokey: 'bk-nokey-c3' };

// [client name, backend, backend model, extra]
const MODELS = [
  ['tts-1', B.primary, 'upstream-tts-m1', 'kinds = ["speech"]; default = true;'],
  ['tts-slow', B.primary, 'upstream-tts-delay-250-m2', 'kinds = ["speech"];'],
  ['tts-err', B.primary, 'upstream-tts-error-400-m3', 'kinds = ["speech"];'],
  ['whisper-1', B.primary, 'upstream-whisper-m4', 'kinds = ["transcriptions", "translations"]; default = true;'],
  ['transcribe-stream', B.primary, 'upstream-transcribe-m5', 'kinds = ["transcriptions"];'],
  ['dall-e-3', B.primary, 'upstream-dall-e-3-m6', 'kinds = ["images"]; default = true;'],
  ['gpt-image-1', B.primary, 'upstream-gpt-image-m7', 'kinds = ["images"];'],
  ['omni-moderation-latest', B.primary, 'upstream-moderation-m8', 'kinds = ["moderations"]; default = true;'],
  ['gpt-4.1', B.primary, 'upstream-resp-m9', 'kinds = ["responses"]; default = true;'],
  ['resp-slow', B.primary, 'upstream-resp-delay-150-m10', 'kinds = ["responses"];'],
  ['resp-err', B.primary, 'upstream-resp-error-404-m11', 'kinds = ["responses"];'],
  ['resp-die', B.primary, 'upstream-resp-stream-then-die-m12', 'kinds = ["responses"];'],
  ['echo-model', 'echo', null, ''],
];
const backendModelOf = (name) => MODELS.find((m) => m[0] === name)[2];

function config(mockUrl) {
  const models = MODELS.map(([name, backend, bm, extra]) =>
    `  { name = "${name}"; backend = "${backend}";${bm ? ` backend_model = "${bm}";` : ''} ${extra} }`).join(',\n');
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { max_body_bytes = ${MAX_BODY}; drain_timeout = 5; };
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "${B.primary}"; type = "openai"; url = "${mockUrl}"; api_key = "\${BK_KEY}";
    connect_timeout = 2.0; first_byte_timeout = 10.0; idle_timeout = 10.0; timeout = 60.0; },
  { name = "${B.passkey}"; type = "openai"; url = "${mockUrl}"; pass_client_key = true; },
  { name = "${B.nokey}"; type = "openai"; url = "${mockUrl}"; },
  { name = "echo"; type = "echo"; }
);
models = (
${models}
);
passthrough = (
  { prefix = "/v1/files"; backend = "${B.primary}"; },
  { prefix = "/v1/batches"; backend = "${B.passkey}"; },
  { prefix = "/v1/vector_stores"; backend = "${B.nokey}"; }
);
`;
}

let mock; let router; let tmp;
const traffic = new Traffic(); // every response a test received, for the leak check at the end

// ---------------------------------------------------------------- helpers

// The SDK's fetch is node-fetch (it can send streamed multipart bodies); the recording wraps it.
const client = (opts = {}) => clients.openai(router, { apiKey: CLIENT_KEY, fetch: traffic.fetch('sdk', nodeFetch), ...opts });
// Raw HTTP via fetch; returns { status, headers, text, json, bytes }.
const raw = (method, p, { headers = {}, ...opts } = {}) =>
  fetchRaw(router.base, method, p, { ...opts, headers: { authorization: `Bearer ${CLIENT_KEY}`, ...headers }, traffic });
const rawHttp = (method, p, opts = {}) => rawHttpTo(router.port, method, p, { ...opts, traffic });
// SSE with `event:` lines: [{ event, data (parsed JSON or the string), other (unexpected lines) }].
const parseNamedSse = (text) => sseEvents(text).map((e) => ({ event: e.event, data: e.json === null ? e.data : e.json, other: e.other }));

// Streams a POST, noting when each chunk arrived. Returns { status, headers, text, arrivals: [ms] }.
async function timedStream(p, json) {
  const res = await fetch(`${router.base}${p}`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` },
    body: JSON.stringify(json), signal: AbortSignal.timeout(20000),
  });
  const arrivals = [];
  const parts = [];
  for await (const chunk of res.body) { arrivals.push(Date.now()); parts.push(Buffer.from(chunk)); }
  const text = Buffer.concat(parts).toString('utf8');
  traffic.push({ where: `timedStream ${p}`, status: res.status, headers: [...res.headers], body: text });
  return { status: res.status, headers: res.headers, text, arrivals };
}

function leakNeedles() {
  return [BACKEND_KEY, 'SECRET', 'upstream-', ...Object.values(B), `127.0.0.1:${mock.port}`, `localhost:${mock.port}`, mock.url];
}
const assertNoLeak = (text, what) => noLeak(text, what, leakNeedles());
const assertError = (r, status, code, opts = {}) => assertOpenAIError(r, status, code, { ...opts, needles: leakNeedles() });

const lastFor = (backendModel) => mock.last((r) => r.model === backendModel);
const lastPath = (prefix, method) => mock.last((r) => r.path.startsWith(prefix) && (!method || r.method === method));

// A multipart body built by hand (for field order and wire details the SDK does not let us choose).
function multipart(parts, boundary = `----airouterTest${crypto.randomBytes(8).toString('hex')}`) {
  const bufs = [];
  for (const p of parts) {
    let hdr = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename) hdr += `; filename="${p.filename}"`;
    hdr += '\r\n';
    if (p.type) hdr += `Content-Type: ${p.type}\r\n`;
    bufs.push(Buffer.from(`${hdr}\r\n`), Buffer.isBuffer(p.value) ? p.value : Buffer.from(String(p.value)), Buffer.from('\r\n'));
  }
  bufs.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(bufs), contentType: `multipart/form-data; boundary=${boundary}` };
}

// Deterministic pseudo-random bytes (an "audio file" whose checksum means something).
function fakeAudio(len, seed) {
  const out = Buffer.alloc(len);
  let off = 0;
  for (let i = 0; off < len; i++) off += crypto.createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

// ---------------------------------------------------------------- setup

before(async () => {
  tmp = h.tmpDir();
  mock = await startMock({ port: await h.freePort() });
  mock.backendKey = BACKEND_KEY;
  router = await h.startRouter(config(mock.url), { env: { BK_KEY: BACKEND_KEY } });
}, { timeout: 30000 });

after(async () => {
  if (router) await router.stop();
  if (mock) await mock.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- speech

test('speech: audio bytes arrive intact for every format, with the backend\'s content type; model rewritten', T, async () => {
  const c = client();
  for (const fmt of Object.keys(AUDIO_TYPES)) {
    const body = { model: 'tts-1', input: `The quick brown fox says ${fmt}.`, voice: 'alloy', response_format: fmt };
    const res = await c.audio.speech.create(body);
    const bytes = Buffer.from(await res.arrayBuffer());
    const rec = lastFor('upstream-tts-m1');
    assert.ok(rec, 'the mock got the speech request');
    assert.equal(rec.body.model, 'upstream-tts-m1');
    assert.equal(rec.body.input, body.input, 'input forwarded untouched');
    assert.equal(rec.body.voice, 'alloy');
    assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`, 'the backend key is sent, not the client\'s');
    assert.equal(res.headers.get('content-type'), AUDIO_TYPES[fmt], `${fmt}: content type`);
    const expected = speechAudio({ ...body, model: 'upstream-tts-m1' });
    assert.equal(bytes.length, expected.length, `${fmt}: length`);
    assert.equal(sha256(bytes), rec.responseSha256, `${fmt}: sha256 equal to what the mock sent`);
    assert.equal(sha256(bytes), sha256(expected), `${fmt}: sha256 equal to the expected audio`);
    assert.ok(res.headers.get('x-request-id'), 'X-Request-Id');
    assert.notEqual(res.headers.get('x-request-id'), `req_mock_${rec.id}`, 'the backend\'s request id is not forwarded');
  }
});

test('speech: a large answer (~4 MB) is relayed byte for byte', T, async () => {
  const body = { model: 'tts-1', input: 'x'.repeat(1100), voice: 'echo', response_format: 'flac' };
  const res = await client().audio.speech.create(body);
  const bytes = Buffer.from(await res.arrayBuffer());
  const rec = lastFor('upstream-tts-m1');
  assert.equal(rec.responseBytes, 4 << 20);
  assert.equal(bytes.length, rec.responseBytes, 'length');
  assert.equal(sha256(bytes), rec.responseSha256, 'sha256');
  assert.equal(res.headers.get('content-type'), 'audio/flac');
});

test('speech: streamed to the client as it arrives (first bytes long before the backend finished)', T, async () => {
  const res = await client().audio.speech.create({ model: 'tts-slow', input: 'stream me please, slowly', voice: 'alloy', response_format: 'opus' });
  assert.equal(res.headers.get('content-type'), 'audio/ogg');
  const arrivals = [];
  const parts = [];
  for await (const chunk of res.body) { arrivals.push(Date.now()); parts.push(Buffer.from(chunk)); }
  const rec = lastFor('upstream-tts-delay-250-m2');
  assert.ok(rec.lastByteAt && rec.firstByteAt, 'the mock recorded when it wrote');
  assert.ok(rec.lastByteAt - rec.firstByteAt >= 1500, `the mock took ${rec.lastByteAt - rec.firstByteAt} ms`);
  assert.ok(arrivals[0] < rec.lastByteAt - 1000,
    `first bytes reached the client ${arrivals[0] - rec.firstByteAt} ms after the mock's first write and only ${rec.lastByteAt - arrivals[0]} ms before its last: buffered?`);
  const spread = arrivals[arrivals.length - 1] - arrivals[0];
  assert.ok(spread >= 1000, `chunks arrived over ${spread} ms (${arrivals.length} chunks): not streamed`);
  const bytes = Buffer.concat(parts);
  assert.equal(sha256(bytes), rec.responseSha256, 'bytes intact');
});

test('speech: stream_format "sse" (speech.audio.delta events) relayed untouched; audio reassembles', T, async () => {
  const s = await timedStream('/v1/audio/speech', { model: 'tts-1', input: 'sse audio please', voice: 'alloy', stream_format: 'sse' });
  assert.equal(s.status, 200, s.text.slice(0, 300));
  assert.match(s.headers.get('content-type'), /^text\/event-stream/);
  const rec = lastFor('upstream-tts-m1');
  const got = parseNamedSse(s.text);
  assert.deepEqual(got.map((e) => e.data), rec.response, 'events relayed untouched, in order');
  const audio = Buffer.concat(got.filter((e) => e.data.type === 'speech.audio.delta').map((e) => Buffer.from(e.data.audio, 'base64')));
  assert.equal(sha256(audio), rec.responseSha256);
});

test('speech: a client leaving mid-stream closes the backend connection', T, async () => {
  const ac = new AbortController();
  const res = await fetch(`${router.base}/v1/audio/speech`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
    body: JSON.stringify({ model: 'tts-slow', input: 'abandon this one', voice: 'alloy' }),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  await reader.read();
  const rec = lastFor('upstream-tts-delay-250-m2');
  const t0 = Date.now();
  ac.abort();
  await reader.cancel().catch(() => { });
  const closedAt = await mock.waitClosed(rec, 3000);
  assert.ok(closedAt - t0 < 1500, `backend connection closed ${closedAt - t0} ms after the client left`);
  assert.ok(!rec.lastByteAt, 'the mock did not get to write everything');
});

test('speech: backend 4xx relayed sanitised; missing model and bad JSON handled by the router', T, async () => {
  const r = await raw('POST', '/v1/audio/speech', { json: { model: 'tts-err', input: 'hi', voice: 'alloy' } });
  const e = assertError(r, 400, 'invalid_value', { type: 'invalid_request_error' });
  assert.ok(e.message.includes('tts-err'), `the message names the client's model: ${e.message}`);
  assertError(await raw('POST', '/v1/audio/speech', { json: { input: 'no model', voice: 'alloy', model: 42 } }), 400, 'missing_required_parameter', { param: 'model' });
  assertError(await raw('POST', '/v1/audio/speech', { body: '{"model": "tts-1", ', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
  assertError(await raw('GET', '/v1/audio/speech'), 405, 'method_not_allowed');
});

// ---------------------------------------------------------------- transcriptions / translations

test('transcriptions: a 3 MB upload from a file stream: model rewritten, file intact at the mock', T, async () => {
  const audio = fakeAudio(3 * 1024 * 1024 + 123, 'upload-1');
  const file = path.join(tmp, 'speech-sample.mp3');
  fs.writeFileSync(file, audio);
  const digest = sha256(audio);
  const tr = await client().audio.transcriptions.create({
    model: 'whisper-1', file: fs.createReadStream(file), language: 'en', prompt: 'Names: Ada, Grace.', temperature: 0.2,
  });
  const rec = lastFor('upstream-whisper-m4');
  assert.ok(rec, 'the mock got the upload with the backend model');
  assert.equal(rec.path, '/v1/audio/transcriptions');
  assert.equal(rec.formError, undefined, `the mock could parse the form: ${rec.formError}`);
  assert.equal(rec.form.fields.model, 'upstream-whisper-m4', 'model field rewritten');
  assert.equal(rec.form.fields.language, 'en', 'other fields untouched');
  assert.equal(rec.form.fields.prompt, 'Names: Ada, Grace.');
  assert.equal(rec.form.fields.temperature, '0.2');
  assert.equal(rec.form.files.length, 1);
  const f = rec.form.files[0];
  assert.equal(f.field, 'file');
  assert.equal(f.filename, 'speech-sample.mp3', 'filename untouched');
  assert.equal(f.size, audio.length, 'file size at the mock');
  assert.equal(f.sha256, digest, 'file sha256 at the mock');
  assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`);
  assert.match(rec.headers['content-type'], /^multipart\/form-data; boundary=/, 'content type (with boundary) forwarded');
  assert.equal(tr.text, transcriptText('transcribe', { size: audio.length, sha256: digest }));
});

test('transcriptions: the model field anywhere in the form (after the file, hand-built) is rewritten; body length adjusted', T, async () => {
  const audio = fakeAudio(200000, 'upload-2');
  const { body, contentType } = multipart([
    { name: 'file', filename: 'x.wav', type: 'audio/wav', value: audio },
    { name: 'response_format', value: 'json' },
    { name: 'model', value: 'whisper-1' },
  ]);
  const r = await raw('POST', '/v1/audio/transcriptions', { body, headers: { 'content-type': contentType } });
  assert.equal(r.status, 200, r.text);
  const rec = lastFor('upstream-whisper-m4');
  assert.equal(rec.formError, undefined, `the mock could parse the form: ${rec.formError}`);
  assert.equal(Number(rec.headers['content-length'] || rec.rawBytes.length), rec.rawBytes.length);
  assert.equal(rec.rawBytes.length, body.length - 'whisper-1'.length + 'upstream-whisper-m4'.length, 'only the model value changed');
  assert.equal(rec.form.files[0].sha256, sha256(audio));
  assert.equal(rec.form.files[0].contentType, 'audio/wav');
  assert.deepEqual(r.json, { text: transcriptText('transcribe', { size: audio.length, sha256: sha256(audio) }) });
});

test('transcriptions: text, srt, vtt and verbose_json answers with the right content types', T, async () => {
  const audio = fakeAudio(64000, 'formats');
  const file = { size: audio.length, sha256: sha256(audio) };
  const c = client();
  for (const fmt of ['text', 'srt', 'vtt']) {
    const { data, response } = await c.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'a.mp3'), response_format: fmt }).withResponse();
    const want = transcriptAnswer('transcribe', file, fmt);
    assert.equal(response.headers.get('content-type'), want.type, `${fmt}: content type`);
    assert.equal(data, want.body, `${fmt}: body relayed exactly`);
    assert.equal(lastFor('upstream-whisper-m4').form.fields.response_format, fmt);
  }
  const { data, response } = await c.audio.transcriptions.create({
    model: 'whisper-1', file: await toFile(audio, 'a.mp3'), response_format: 'verbose_json', timestamp_granularities: ['word', 'segment'],
  }).withResponse();
  assert.match(response.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(JSON.parse(JSON.stringify(data)), transcriptAnswer('transcribe', file, 'verbose_json', { words: true }).json);
  const rec = lastFor('upstream-whisper-m4');
  assert.deepEqual(rec.form.fields['timestamp_granularities[]'], ['word', 'segment'], 'repeated fields forwarded');
});

test('transcriptions: stream=true events relayed in order (delta..., done)', T, async () => {
  const audio = fakeAudio(48000, 'stream');
  const stream = await client().audio.transcriptions.create({ model: 'transcribe-stream', file: await toFile(audio, 's.wav'), stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  const rec = lastFor('upstream-transcribe-m5');
  assert.equal(rec.form.fields.stream, 'true');
  assert.deepEqual(events, rec.response, 'every event relayed untouched and in order');
  const text = transcriptText('transcribe', { size: audio.length, sha256: sha256(audio) });
  assert.equal(events.filter((e) => e.type === 'transcript.text.delta').map((e) => e.delta).join(''), text);
  assert.equal(events[events.length - 1].type, 'transcript.text.done');
  assert.equal(events[events.length - 1].text, text);
});

test('translations: multipart upload, model rewritten, text answer', T, async () => {
  const audio = fakeAudio(150000, 'translate');
  const tr = await client().audio.translations.create({ model: 'whisper-1', file: await toFile(audio, 'deutsch.m4a'), prompt: 'Hallo' });
  const rec = mock.last((r) => r.path === '/v1/audio/translations');
  assert.ok(rec, 'the mock got a translation');
  assert.equal(rec.form.fields.model, 'upstream-whisper-m4');
  assert.equal(rec.form.fields.prompt, 'Hallo');
  assert.equal(rec.form.files[0].sha256, sha256(audio));
  assert.equal(tr.text, transcriptText('translate', { size: audio.length, sha256: sha256(audio) }));
  const { data, response } = await client().audio.translations.create({ model: 'whisper-1', file: await toFile(audio, 'deutsch.m4a'), response_format: 'srt' }).withResponse();
  const want = transcriptAnswer('translate', { size: audio.length, sha256: sha256(audio) }, 'srt');
  assert.equal(response.headers.get('content-type'), want.type);
  assert.equal(data, want.body);
});

test('transcriptions: concurrent uploads each get the answer for their own file', T, async () => {
  const c = client();
  const files = Array.from({ length: 6 }, (_, i) => fakeAudio(300000 + i * 7777, `concurrent-${i}`));
  const answers = await Promise.all(files.map(async (a, i) => c.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(a, `f${i}.mp3`) })));
  answers.forEach((ans, i) => assert.equal(ans.text, transcriptText('transcribe', { size: files[i].length, sha256: sha256(files[i]) }), `upload ${i}`));
});

test('transcriptions: router-side errors (no model field, no boundary, wrong method)', T, async () => {
  const { body, contentType } = multipart([{ name: 'file', filename: 'a.mp3', value: fakeAudio(1000, 'e') }]);
  assertError(await raw('POST', '/v1/audio/transcriptions', { body, headers: { 'content-type': contentType } }), 400, 'missing_required_parameter', { param: 'model' });
  const r = await raw('POST', '/v1/audio/transcriptions', { json: { model: 'whisper-1', file: 'abc' } });
  assert.equal(r.status, 400, r.text);
  assertError(r, 400, r.json.error.code);
  assertError(await raw('GET', '/v1/audio/translations'), 405, 'method_not_allowed');
});

// ---------------------------------------------------------------- upload size limit

test('uploads over limits.max_body_bytes are refused with 413 request_too_large (SDK, Content-Length and chunked)', T, async () => {
  const before = mock.requests.length;
  // Half a MiB over the limit: within the 1 MiB the router reads and drops so that the client can
  // read the 413 (worker/http/http.c DISCARD_SLACK), so every client must see the 413, never a broken pipe.
  const big = fakeAudio(MAX_BODY + 512 * 1024, 'too-big');
  const outcome = async (p) => {
    try { const r = await p; return r.status === 413 && r.json && r.json.error ? `413 ${r.json.error.code}` : `${r.status} ${String(r.text || r.message).slice(0, 200)}`; } catch (e) {
      if (e && e.status) return `${e.status} ${e.code}`;
      return `client error: ${e.message} (${e.cause && e.cause.code || e.code})`;
    }
  };
  const split = (buf) => { const out = []; for (let i = 0; i < buf.length; i += 64 * 1024) out.push(buf.subarray(i, i + 64 * 1024)); return out; };
  const { body, contentType } = multipart([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'big.mp3', value: big }]);
  const img = multipart([{ name: 'image', filename: 'big.png', type: 'image/png', value: big }, { name: 'prompt', value: 'x' }]);
  const got = {};
  for (let i = 0; i < 3; i++) {
    got[`transcription, Content-Length, node:http #${i}`] = await outcome(rawHttp('POST', '/v1/audio/transcriptions', { headers: { 'content-type': contentType, 'content-length': String(body.length) }, chunks: split(body) }));
    got[`transcription, chunked, node:http #${i}`] = await outcome(rawHttp('POST', '/v1/audio/transcriptions', { headers: { 'content-type': contentType, 'transfer-encoding': 'chunked' }, chunks: split(body) }));
    got[`transcription, openai SDK #${i}`] = await outcome(client().audio.transcriptions.create({ model: 'whisper-1', file: await toFile(big, 'big.mp3') }));
    got[`image edit, Content-Length, node:http #${i}`] = await outcome(rawHttp('POST', '/v1/images/edits', { headers: { 'content-type': img.contentType, 'content-length': String(img.body.length) }, chunks: split(img.body) }));
  }
  const bad = Object.entries(got).filter(([, v]) => v !== '413 request_too_large');
  assert.deepEqual(bad, [], `every oversized upload must be answered 413 request_too_large; these were not:\n${bad.map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  await idle(router); // a forward, had there been one, has reached the mock by now
  assert.equal(mock.requests.slice(before).filter((x) => x.method === 'POST').length, 0, 'nothing reached the backend');
});

test('uploads just under limits.max_body_bytes are served', T, async () => {
  const ok = fakeAudio(MAX_BODY - 4096, 'just-fits');
  const tr = await client().audio.transcriptions.create({ model: 'whisper-1', file: await toFile(ok, 'fits.mp3') });
  assert.equal(tr.text, transcriptText('transcribe', { size: ok.length, sha256: sha256(ok) }));
  assert.equal(lastFor('upstream-whisper-m4').form.files[0].sha256, sha256(ok));
});

// ---------------------------------------------------------------- images

test('images: generations (b64_json and url), model rewritten, bytes intact', T, async () => {
  const c = client();
  const prompt = 'a lighthouse at dusk, oil painting';
  const g = await c.images.generate({ model: 'dall-e-3', prompt, n: 2, size: '1024x1024', response_format: 'b64_json' });
  const rec = lastFor('upstream-dall-e-3-m6');
  assert.ok(rec, 'model rewritten at the mock');
  assert.equal(rec.path, '/v1/images/generations');
  assert.equal(rec.body.prompt, prompt);
  assert.equal(g.data.length, 2);
  g.data.forEach((d, i) => {
    assert.equal(Buffer.from(d.b64_json, 'base64').toString('hex'), imageBytes(`gen:${prompt}:1024x1024`, i).toString('hex'), `image ${i}`);
    assert.equal(d.revised_prompt, `A picture of ${prompt}`);
  });
  assert.deepEqual(JSON.parse(JSON.stringify(g)), rec.response, 'answer relayed untouched');
  const u = await c.images.generate({ model: 'dall-e-3', prompt, response_format: 'url' });
  assert.match(u.data[0].url, /^https:\/\/images\.mock\.invalid\/img-[0-9a-f]+\.png$/);
  const gi = await c.images.generate({ model: 'gpt-image-1', prompt: 'a cat' });
  assert.ok(gi.data[0].b64_json && gi.usage, 'gpt-image answers carry b64_json and usage');
  assert.ok(lastFor('upstream-gpt-image-m7'));
  // No model: the default images model.
  const d = await raw('POST', '/v1/images/generations', { json: { prompt: 'default please' } });
  assert.equal(d.status, 200, d.text);
  assert.equal(mock.last((r) => r.path === '/v1/images/generations').body.model, 'upstream-dall-e-3-m6');
});

test('images: edits (image + mask uploads) and variations (no model: default inserted), files intact', T, async () => {
  const c = client();
  const image = fakeAudio(250000, 'image-1');
  const mask = fakeAudio(90000, 'mask-1');
  const e = await c.images.edit({ model: 'gpt-image-1', prompt: 'add a hat', image: await toFile(image, 'cat.png', { type: 'image/png' }), mask: await toFile(mask, 'mask.png', { type: 'image/png' }) });
  const rec = lastFor('upstream-gpt-image-m7');
  assert.equal(rec.path, '/v1/images/edits');
  assert.equal(rec.form.fields.model, 'upstream-gpt-image-m7');
  assert.equal(rec.form.fields.prompt, 'add a hat');
  const files = Object.fromEntries(rec.form.files.map((f) => [f.field, f]));
  assert.equal(files.image.sha256, sha256(image));
  assert.equal(files.image.contentType, 'image/png');
  assert.equal(files.mask.sha256, sha256(mask));
  assert.equal(Buffer.from(e.data[0].b64_json, 'base64').toString('hex'),
    imageBytes(`edits:add a hat:${sha256(image)}:${sha256(mask)}`, 0).toString('hex'));

  const v = await c.images.createVariation({ image: await toFile(image, 'cat.png', { type: 'image/png' }), n: 2, response_format: 'b64_json' });
  const vr = mock.last((r) => r.path === '/v1/images/variations');
  assert.equal(vr.formError, undefined, `the mock could parse the form with the inserted model field: ${vr.formError}`);
  assert.equal(vr.form.fields.model, 'upstream-dall-e-3-m6', 'the default images model was inserted');
  assert.equal(vr.form.fields.n, '2');
  assert.equal(vr.form.files[0].sha256, sha256(image));
  assert.equal(v.data.length, 2);
  assert.equal(Buffer.from(v.data[1].b64_json, 'base64').toString('hex'), imageBytes(`variations::${sha256(image)}:`, 1).toString('hex'));
});

// ---------------------------------------------------------------- moderations

test('moderations: routed and rewritten; array input; default model when none is given', T, async () => {
  const c = client();
  const m1 = await c.moderations.create({ model: 'omni-moderation-latest', input: 'I will attack the castle' });
  const rec = lastFor('upstream-moderation-m8');
  assert.ok(rec, 'model rewritten at the mock');
  assert.equal(m1.model, 'omni-moderation-latest', 'answer model rewritten');
  assert.deepEqual(m1.results, [moderationResult('I will attack the castle')]);
  assert.equal(m1.results[0].flagged, true);
  assert.equal(m1.id, rec.response.id);
  const m2 = await c.moderations.create({ model: 'omni-moderation-latest', input: ['hello', 'kill it'] });
  assert.deepEqual(m2.results.map((r) => r.flagged), [false, true]);
  // No model: the default moderation model serves it, and the client sees that model's name.
  const r = await raw('POST', '/v1/moderations', { json: { input: 'peaceful text' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(mock.last((x) => x.path === '/v1/moderations').body.model, 'upstream-moderation-m8');
  assertNoLeak(r.text, 'moderation answer (default model)');
  assert.equal(r.json.model, 'omni-moderation-latest', 'answer names the default model');
});

// ---------------------------------------------------------------- responses

test('responses: non-streaming, model rewritten both ways, the response object relayed untouched', T, async () => {
  const c = client();
  const r = await c.responses.create({ model: 'gpt-4.1', input: 'hello there friend', instructions: 'be terse', metadata: { ticket: 't-1' } });
  const rec = lastFor('upstream-resp-m9');
  assert.ok(rec, 'model rewritten at the mock');
  assert.equal(rec.body.instructions, 'be terse');
  assert.deepEqual(rec.body.metadata, { ticket: 't-1' });
  assert.equal(r.model, 'gpt-4.1');
  assert.equal(r.output_text, responseReply({ input: 'hello there friend' }).text);
  const { output_text: _ot, ...rest } = JSON.parse(JSON.stringify(r));
  assert.deepEqual(rest, { ...rec.response, model: 'gpt-4.1' }, 'only the model changed');
  // Input items form.
  const r2 = await c.responses.create({ model: 'gpt-4.1', input: [{ role: 'user', content: [{ type: 'input_text', text: 'items work' }] }] });
  assert.equal(r2.output_text, 'you said: items work');
});

test('responses: streamed events relayed in order with their event types, response.model rewritten', T, async () => {
  const s = await timedStream('/v1/responses', { model: 'resp-slow', input: 'stream this answer please', stream: true });
  assert.equal(s.status, 200, s.text.slice(0, 300));
  assert.match(s.headers.get('content-type'), /^text\/event-stream/);
  assertNoLeak(s.text, 'responses stream');
  const rec = lastFor('upstream-resp-delay-150-m10');
  const got = parseNamedSse(s.text);
  assert.equal(got.length, rec.response.length, 'as many events as the mock sent');
  got.forEach((ev, i) => {
    const sent = rec.response[i];
    assert.deepEqual(ev.other, [], `event ${i}: no unexpected lines`);
    assert.equal(ev.event, sent.type, `event ${i}: the event: line is kept`);
    const want = sent.response ? { ...sent, response: { ...sent.response, model: 'resp-slow' } } : sent;
    assert.deepEqual(ev.data, want, `event ${i} (${sent.type}): only response.model changed`);
  });
  assert.deepEqual(got.map((e) => e.data.sequence_number), got.map((_, i) => i), 'order kept');
  assert.equal(got[got.length - 1].event, 'response.completed');
  assert.ok(!s.text.includes('[DONE]'), 'no [DONE] invented for the Responses API');
  // Relayed as they arrive: 13 events 150 ms apart.
  const spread = s.arrivals[s.arrivals.length - 1] - s.arrivals[0];
  assert.ok(spread >= 1000, `events arrived over ${spread} ms in ${s.arrivals.length} chunks: buffered?`);

  // The SDK's stream helper sees the same sequence.
  const events = [];
  const stream = await client().responses.create({ model: 'gpt-4.1', input: 'sdk stream', stream: true });
  for await (const ev of stream) events.push(ev);
  const rec2 = lastFor('upstream-resp-m9');
  assert.deepEqual(events.map((e) => e.type), rec2.response.map((e) => e.type));
  assert.equal(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), 'you said: sdk stream');
  for (const e of events) if (e.response) assert.equal(e.response.model, 'gpt-4.1', `${e.type}: response.model`);
});

// The access-log line of the request with this X-Request-Id (written once the request completes).
async function accessLineFor(id) {
  return h.waitFor(() => router.log.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return null; } })
    .find((l) => l && l.request_id === id), { timeout: 5000, what: `access line ${id}` });
}

test('responses: token usage (response.usage, streamed in response.completed) is counted for the request', T, async () => {
  const id1 = `usage-plain-${Date.now()}`;
  const plain = await raw('POST', '/v1/responses', { headers: { 'x-request-id': id1 }, json: { model: 'gpt-4.1', input: 'count these four words' } });
  assert.equal(plain.status, 200, plain.text.slice(0, 300));
  const u = plain.json.usage;
  assert.ok(u && u.input_tokens > 0 && u.output_tokens > 0, `the mock reports usage: ${JSON.stringify(u)}`);
  const l1 = await accessLineFor(id1);
  assert.equal(l1.tokens_in, u.input_tokens, 'input_tokens counted');
  assert.equal(l1.tokens_out, u.output_tokens, 'output_tokens counted');

  const id2 = `usage-stream-${Date.now()}`;
  const res = await fetch(`${router.base}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, 'x-request-id': id2 },
    body: JSON.stringify({ model: 'gpt-4.1', input: 'a streamed answer to count', stream: true }), signal: AbortSignal.timeout(20000),
  });
  const text = await res.text();
  assert.equal(res.status, 200);
  const done = parseNamedSse(text).find((e) => e.event === 'response.completed');
  assert.ok(done && done.data.response.usage, `response.completed carries usage: ${text.slice(-300)}`);
  const l2 = await accessLineFor(id2);
  assert.equal(l2.tokens_in, done.data.response.usage.input_tokens, 'streamed input_tokens counted');
  assert.equal(l2.tokens_out, done.data.response.usage.output_tokens, 'streamed output_tokens counted');
  assert.equal(l2.stream, true);
});

test('responses: a backend dying mid-stream -> the events so far, then a final error event (sanitised)', T, async () => {
  const s = await timedStream('/v1/responses', { model: 'resp-die', input: 'this will break', stream: true });
  assert.equal(s.status, 200);
  assertNoLeak(s.text, 'broken responses stream');
  const got = parseNamedSse(s.text);
  const rec = lastFor('upstream-resp-stream-then-die-m12');
  assert.equal(rec.response.length, 3, 'the mock sent 3 events before dying');
  assert.deepEqual(got.slice(0, 3).map((e) => e.event), rec.response.map((e) => e.type), 'the events sent are relayed');
  assert.equal(got.length, 4, `one final event after them: ${s.text.slice(-400)}`);
  const last = got[3];
  assert.ok(last.data && last.data.error && typeof last.data.error.message === 'string', `final event is an error: ${JSON.stringify(last)}`);
});

test('responses: GET and DELETE /v1/responses/{id} go to the default responses model', T, async () => {
  const c = client();
  const r = await c.responses.create({ model: 'resp-slow', input: 'remember me' });
  const got = await c.responses.retrieve(r.id);
  const rec = mock.last((x) => x.method === 'GET' && x.path.startsWith('/v1/responses/'));
  assert.equal(rec.path, `/v1/responses/${r.id}`);
  assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`);
  assert.equal(got.id, r.id);
  assert.equal(got.output[0].content[0].text, 'you said: remember me');
  assert.equal(got.model, 'gpt-4.1', 'the model field names the default responses model (never the backend model)');
  const items = await c.responses.inputItems.list(r.id);
  assert.equal(items.data[0].content[0].text, 'remember me');
  // Query strings are kept.
  const q = await raw('GET', `/v1/responses/${r.id}/input_items?limit=5&order=asc`);
  assert.equal(q.status, 200, q.text);
  assert.equal(mock.last((x) => x.path.includes('/input_items')).path, `/v1/responses/${r.id}/input_items?limit=5&order=asc`);
  await c.responses.del(r.id);
  assert.equal(mock.last((x) => x.method === 'DELETE').path, `/v1/responses/${r.id}`);
  const err = await c.responses.retrieve(r.id).then(() => null, (e) => e);
  assert.ok(err, 'a deleted response is gone');
  assert.equal(err.status, 404);
  assert.ok(err.message.includes(r.id), `the backend's message is relayed: ${err.message}`);
  assertError(await raw('PUT', `/v1/responses/${r.id}`, { json: {} }), 405, 'method_not_allowed');
  // POST under /v1/responses/{id}: cancelling a background response.
  const bg = await c.responses.create({ model: 'gpt-4.1', input: 'in the background', background: true });
  assert.equal(bg.status, 'queued');
  assert.equal(bg.model, 'gpt-4.1');
  const cancelled = await c.responses.cancel(bg.id);
  assert.equal(mock.last((x) => x.method === 'POST' && x.path.endsWith('/cancel')).path, `/v1/responses/${bg.id}/cancel`);
  assert.equal(cancelled.id, bg.id);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.model, 'gpt-4.1', 'model rewritten');
  const notBg = await raw('POST', `/v1/responses/${r.id}/cancel`);
  assert.equal(notBg.status, 404, notBg.text); // deleted above: the backend's 404 is relayed
});

test('responses: backend errors relayed sanitised with the client\'s model name', T, async () => {
  const r = await raw('POST', '/v1/responses', { json: { model: 'resp-err', input: 'x' } });
  const e = assertError(r, 404, 'model_not_found');
  assert.ok(e.message.includes('resp-err'), e.message);
  assertError(await raw('POST', '/v1/responses', { json: { input: 'no model' } }), 400, 'missing_required_parameter', { param: 'model' });
  // An unknown model falls back to the kind's default (and keeps the name the client asked for).
  const d = await raw('POST', '/v1/responses', { json: { model: 'no-such-model', input: 'x' } });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.model, 'no-such-model');
  assert.equal(mock.last((x) => x.path === '/v1/responses').body.model, 'upstream-resp-m9');
});

// ---------------------------------------------------------------- unsupported kinds

test('a model whose backend cannot serve a kind -> 400 unsupported_kind naming the kind', T, async () => {
  const before = mock.requests.length;
  const cases = [
    ['speech', '/v1/audio/speech', { model: 'echo-model', input: 'hi', voice: 'alloy' }],
    ['images', '/v1/images/generations', { model: 'echo-model', prompt: 'a cat' }],
    ['responses', '/v1/responses', { model: 'echo-model', input: 'hi' }],
    ['moderations', '/v1/moderations', { model: 'echo-model', input: 'hi' }],
    ['responses', '/v1/responses', { model: 'tts-1', input: 'hi' }], // served kinds restricted in the config
  ];
  for (const [kind, p, json] of cases) {
    const e = assertError(await raw('POST', p, { json }), 400, 'unsupported_kind', { type: 'invalid_request_error' });
    assert.ok(e.message.includes(kind), `${p} ${json.model}: the message names the kind "${kind}": ${e.message}`);
    assert.ok(e.message.includes(json.model), `the message names the model: ${e.message}`);
  }
  const { body, contentType } = multipart([{ name: 'model', value: 'echo-model' }, { name: 'file', filename: 'a.mp3', value: fakeAudio(5000, 'k') }]);
  for (const [kind, p] of [['transcriptions', '/v1/audio/transcriptions'], ['translations', '/v1/audio/translations'], ['images', '/v1/images/edits']]) {
    const e = assertError(await raw('POST', p, { body, headers: { 'content-type': contentType } }), 400, 'unsupported_kind');
    assert.ok(e.message.includes(kind), `${p}: the message names the kind "${kind}": ${e.message}`);
  }
  // Through the SDK too.
  const err = await client().audio.speech.create({ model: 'echo-model', input: 'hi', voice: 'alloy' }).then(() => null, (x) => x);
  assert.equal(err && err.status, 400);
  assert.equal(err.code, 'unsupported_kind');
  assert.equal(mock.requests.length, before, 'nothing reached the backend');
});

// ---------------------------------------------------------------- passthrough

test('passthrough: method, path and query forwarded; the backend key replaces the client\'s', T, async () => {
  const query = 'purpose=batch&limit=5&after=file-abc_1&order=desc';
  const r = await raw('GET', `/v1/files?${query}`, { headers: { 'x-api-key': CLIENT_KEY } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'list');
  assert.equal(r.json.echo.method, 'GET');
  assert.equal(r.json.echo.path, '/v1/files');
  assert.equal(r.json.echo.query, query, 'query kept');
  assert.equal(r.json.echo.auth, 'backend', 'the backend\'s key was used');
  const rec = mock.last((x) => x.path.startsWith('/v1/files?'));
  assert.equal(rec.path, `/v1/files?${query}`);
  assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`);
  assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY), `the client's key is not forwarded in any header: ${JSON.stringify(rec.headers)}`);
  // A percent-encoded value survives.
  const r2 = await raw('GET', '/v1/files?purpose=fine-tune&after=a%2Fb%20c');
  assert.equal(r2.status, 200, r2.text);
  assert.equal(new URLSearchParams(r2.json.echo.query).get('after'), 'a/b c', `query value kept: ${r2.json.echo.query}`);
  // No query at all.
  const r3 = await raw('GET', '/v1/files');
  assert.equal(r3.json.echo.query, '');
});

test('passthrough: uploads, downloads and deletes through the SDK\'s files API; errors relayed as is', T, async () => {
  const c = client();
  const content = Buffer.from(Array.from({ length: 2000 }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'x', messages: [] } })).join('\n') + '\n');
  const f = await c.files.create({ file: await toFile(content, 'batch.jsonl'), purpose: 'batch' });
  const rec = mock.last((x) => x.method === 'POST' && x.path === '/v1/files');
  assert.ok(rec, 'the upload reached the backend');
  assert.equal(rec.headers.authorization, `Bearer ${BACKEND_KEY}`);
  assert.equal(rec.form.files[0].sha256, sha256(content), 'file intact');
  assert.equal(f.bytes, content.length);
  assert.equal(f.filename, 'batch.jsonl');
  const list = await c.files.list({ purpose: 'batch' });
  assert.ok(list.data.some((x) => x.id === f.id), 'listed');
  const got = await c.files.retrieve(f.id);
  assert.deepEqual(got, f);
  const dl = await c.files.content(f.id);
  assert.equal(dl.headers.get('content-type'), 'application/octet-stream');
  assert.equal(sha256(Buffer.from(await dl.arrayBuffer())), sha256(content), 'download intact');
  const del = await c.files.del(f.id);
  assert.deepEqual(del, { object: 'file', id: f.id, deleted: true });
  assert.equal(mock.last((x) => x.method === 'DELETE').path, `/v1/files/${f.id}`, 'method forwarded');
  // The backend's error answer comes back as it was sent (status and body).
  const r = await raw('GET', '/v1/files/file-nope');
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, mock.last((x) => x.path === '/v1/files/file-nope').response, 'error body relayed as is');
});

test('passthrough: pass_client_key sends the client\'s key; a backend without a key sends none', T, async () => {
  const r = await raw('GET', '/v1/batches?limit=2');
  // The mock has no batches endpoint: its 404 is relayed as is.
  assert.equal(r.status, 404, r.text);
  const rec = mock.last((x) => x.path.startsWith('/v1/batches'));
  assert.equal(rec.path, '/v1/batches?limit=2');
  assert.equal(rec.headers.authorization, `Bearer ${CLIENT_KEY}`, 'pass_client_key forwards the client\'s key');
  assert.deepEqual(r.json, rec.response);
  await raw('POST', '/v1/vector_stores', { json: { name: 'vs' } });
  const rec2 = mock.last((x) => x.path.startsWith('/v1/vector_stores'));
  assert.ok(rec2, 'the request reached the backend');
  assert.equal(rec2.method, 'POST');
  assert.deepEqual(rec2.body, { name: 'vs' }, 'body forwarded unchanged');
  assert.equal(rec2.headers.authorization, undefined, 'no key configured, none sent (the client\'s is dropped)');
});

test('passthrough: unknown prefixes (and look-alike paths) still 404 unknown_url; known endpoints are not shadowed', T, async () => {
  const before = mock.requests.length;
  assertError(await raw('GET', '/v1/assistants'), 404, 'unknown_url');
  assertError(await raw('GET', '/v1/filesystem'), 404, 'unknown_url');
  assertError(await raw('GET', '/v2/files'), 404, 'unknown_url');
  assertError(await raw('POST', '/v1/fine_tuning/jobs', { json: {} }), 404, 'unknown_url');
  assert.equal(mock.requests.length, before, 'nothing reached the backend');
});

// ---------------------------------------------------------------- leaks, logs, crashes

test('no response, header or error ever contained a backend URL, name, key or backend model name', T, async () => {
  await traffic.settle();
  assert.ok(traffic.entries.length > 40, `recorded ${traffic.entries.length} responses`);
  for (const t of traffic.entries) {
    assertNoLeak(t.body, `${t.where} -> ${t.status} body`);
    assertNoLeak(JSON.stringify(t.headers), `${t.where} -> ${t.status} headers`);
  }
});

test('logs: no secret in the log; requests of every kind are access-logged', T, async () => {
  // a line is written when its request completes, which can trail the client's read of the answer
  await h.waitFor(() => router.log.includes('"path":"/v1/files') && /"path":"\/v1\/audio\/speech"[^\n]*"bytes":4194304/.test(router.log),
    { timeout: 3000, what: 'the last access lines' }).catch(() => {});
  const log = router.log;
  for (const secret of [CLIENT_KEY, BACKEND_KEY]) assert.ok(!log.includes(secret), `router log contains the secret ${secret}`);
  for (const p of ['/v1/audio/speech', '/v1/audio/transcriptions', '/v1/audio/translations', '/v1/images/generations', '/v1/images/edits', '/v1/moderations', '/v1/responses', '/v1/files']) {
    assert.ok(log.includes(`"path":"${p}`), `access log has a line for ${p}`);
  }
  const lines = log.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
  const speech = lines.find((l) => l.path === '/v1/audio/speech' && l.status === 200 && l.model === 'tts-1');
  assert.ok(speech, 'a speech request is logged with the client\'s model name');
  assert.equal(speech.backend, B.primary, 'and its backend');
  assert.ok(lines.find((l) => l.path === '/v1/audio/transcriptions' && l.status === 200 && l.model === 'whisper-1' && l.backend === B.primary), 'transcriptions logged with model and backend');
  assert.ok(lines.find((l) => l.path === '/v1/responses' && l.status === 200 && l.model === 'gpt-4.1'), 'responses logged with model');
  assert.ok(lines.find((l) => l.path === '/v1/audio/transcriptions' && l.status === 413), '413s are logged');
  const big = lines.find((l) => l.path === '/v1/audio/speech' && l.bytes === 4 << 20);
  assert.ok(big, 'the 4 MiB speech answer is logged with its byte count');
});

test('no worker crashed and no sanitizer report during the run', T, async () => {
  assertCleanLog(router.log);
});
