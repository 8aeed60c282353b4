#!/usr/bin/env node
'use strict';
// A mock OpenAI-compatible backend for airouter's tests (no dependencies beyond node built-ins).
//
// Module use:
//   const { startMock } = require('./scripts/mock-openai.js');
//   const m = await startMock({ port: 0 });       // port 0 = pick a free one
//   m.port, m.url ("http://127.0.0.1:PORT/v1", what goes in a backend's `url`), m.base (no /v1)
//   m.requests   every request received: { id, conn, method, path, headers, rawBody, body,
//                model, time, socketClosedAt, finishedAt, aborted, chunksSent, response }
//                (body is the parsed JSON, or the raw string when it is not JSON;
//                 `response` is what the mock sent: the JSON object, or the list of SSE chunk objects)
//   m.connections every TCP connection: { id, openedAt, closedAt, remotePort, requests }
//   m.events     [{ type: 'open'|'close'|'request', conn, time, ... }]
//   m.closedCount number of connections closed so far
//   m.reset()    forget recorded requests/events (connections stay open)
//   m.waitFor(pred, ms) resolves with the first request matching pred (waits up to ms; pred is tried
//                again whenever a request arrives, a socket closes, a stream event or a piece of a
//                hostile knob's big part is sent)
//   m.waitClosed(req, ms) resolves when that request's socket has closed (rejects after ms)
//   await m.close()
//
// CLI: node scripts/mock-openai.js [--port N] [--host H] [--quiet]
//   (the CLI logs each request to stderr unless --quiet, and records nothing in memory)
//
// POST /tokenize (beside /v1, as vLLM serves it): {count, max_model_len, tokens} with count =
// tokenizeCount(body) for {model, messages} or {model, prompt}; a model name containing no-tokenize
// gets 404 {"detail":"Not Found"} (as a server without the endpoint answers).
// Endpoints (shapes as OpenAI's): POST /v1/chat/completions, POST /v1/completions,
// POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}, and the rest of the surface:
//   POST /v1/audio/speech        JSON in; audio out with the response_format's Content-Type (mp3 audio/mpeg,
//                                opus audio/ogg, aac audio/aac, flac audio/flac, wav audio/wav, pcm audio/pcm),
//                                chunked, written in 8 pieces (delay-MS waits between them); the bytes are
//                                speechAudio(body) (rec.responseSha256 / rec.responseBytes record them;
//                                rec.firstByteAt / rec.lastByteAt when they were written).
//                                stream_format "sse": speech.audio.delta (base64) / speech.audio.done events.
//   POST /v1/audio/transcriptions, /v1/audio/translations   multipart (file, model, response_format, prompt,
//                                timestamp_granularities[], stream); the text is transcriptText(task, file);
//                                json {"text"}, verbose_json (task, language, duration, text, segments[, words]),
//                                text and srt as text/plain (as OpenAI sends them), vtt as text/vtt.
//                                Transcriptions with stream=true (not whisper models: OpenAI ignores it there):
//                                data-only SSE transcript.text.delta events (one per word), then transcript.text.done.
//   POST /v1/images/generations  JSON; /v1/images/edits and /v1/images/variations multipart (image or image[],
//                                mask); url (https://images.mock.invalid/...) or b64_json of imageBytes();
//                                gpt-image models always b64_json (with usage).
//   POST /v1/moderations         JSON; {id, model, results}; flagged (violence) when the text has kill/attack.
//   POST /v1/responses           JSON response object (output_text "you said: " + input text, like chat); stored
//                                unless store=false. stream=true: `event:` + data SSE events response.created,
//                                response.in_progress, response.output_item.added, response.content_part.added,
//                                response.output_text.delta (one per word), response.output_text.done,
//                                response.content_part.done, response.output_item.done, response.completed
//                                (each with type and sequence_number; response.* events carry response.model;
//                                no [DONE]). delay-MS waits before each event.
//                                background=true: answered at once with status "queued" (stored as such).
//   GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST /v1/responses/{id}/cancel
//                                (400 unless the response was created with background=true); 404 for unknown ids.
//   POST /v1/files (multipart file + purpose), GET /v1/files (list, plus `echo`: {method, path, query,
//                                auth: 'backend'|'other'|'none', authorized_with_backend_key}, where 'backend' means
//                                Authorization was "Bearer " + m.backendKey), GET/DELETE /v1/files/{id}
//                                (GET /v1/files/echo-credentials: a 400 quoting the Authorization header),
//                                GET /v1/files/{id}/content.
//   POST /v1/threads/runs        JSON {assistant_id, model, thread}; a run answered at once as completed, with
//                                usage {prompt_tokens: words of the thread's messages, completion_tokens: 7}
//                                (through passthrough rules).
// Multipart requests are parsed: rec.form = { fields: {name: value (repeated names: array)},
// files: [{ field, filename, contentType, size, sha256 }] } (rec.formError if malformed), rec.model is the
// model field; rec.rawBytes is the body as a Buffer.
//
// Replies are derived from the request deterministically:
//   chat:        content = "you said: " + text of the last user message
//   completions: text    = "you said: " + prompt (array prompts: the first element)
//   streaming splits the text into words, one chunk per word (word + following space, like the echo
//   backend: "you " "said: " "hello " "world"); see replyChunks().
//   usage: prompt_tokens = whitespace-separated words in all request text (messages / prompt),
//          completion_tokens = words in the reply; total = sum.
//   embeddings: embed(text, dims) below (dims = `dimensions` or 8); float32-exact values;
//               encoding_format "base64" -> little-endian float32 base64 string, like OpenAI.
//   stream_options without stream: true -> 400 (param stream_options), as OpenAI does.
//   max_tokens / max_completion_tokens N smaller than the reply's words: reply truncated to N words,
//   finish_reason "length".
//
// Behaviour knobs, selected by substrings of the requested (backend) model name:
//   error-400        400 {"error":{message mentioning the model name, type invalid_request_error,
//                    param "temperature", code "invalid_value"}}
//   error-400-leaky  same, but the message also names the backend URL (http://HOST/v1/...) it was sent to
//   error-400-echo-key  400 whose message quotes the Authorization and x-api-key headers it was sent
//   error-400-long   400 whose message quotes the last user message (long, non-ASCII input -> long message)
//   error-404        404 model_not_found in OpenAI's words (message names the model)
//   error-429        429 rate_limit_exceeded (type "requests"), Retry-After header (m.retryAfter, default
//                    "1"; a model name containing retry-after-S sends S instead)
//   error-500        500 server_error (message names the model and the backend URL)
//   error-503        503 overloaded
//   slow-first-byte[-MS]  sleeps MS (default 3000) before sending anything (headers included)
//   slow-stream[-NxMS]    streams N chunks (default 50) MS apart (default 100): "w0 w1 ... "
//                         (non-stream: answers after N*MS with the same text)
//   stall-N-MS       streams N events, then goes silent for MS before the rest (idle-timeout tests)
//   error-html       404 with an HTML body (a proxy's page naming the backend URL), not JSON
//   garbage          200 application/json whose body is not JSON (naming the backend URL)
//   sse-crlf         SSE lines end with \r\n (events end with \r\n\r\n)
//   sse-nospace      "data:{...}" without the space after the colon
//   sse-comments     a ": ping" comment event before every event
//   fragmented       every SSE event (or the non-stream JSON body, sent chunked without
//                    Content-Length) written in 7-byte pieces a few ms apart (splits UTF-8 sequences)
//   dated            the answer's model is the requested name + "-2024-08-06" (as OpenAI does)
//   stream-error-event  streams 2 events, then data: {"error":{...}} naming the model and backend
//                    URL, then ends the stream (no [DONE])
//   hang             never answers (keeps the socket open until the client closes it)
//   stream-then-die  sends the headers and 2 chunks, then destroys the socket
//                    (non-stream: headers and half a JSON body, then destroys the socket)
//   tool-call        answers with a get_weather tool call; streamed, the arguments are split
//                    across several chunks; finish_reason "tool_calls"
//   multi-tool       answers with the text "Let me check." and two tool calls: get_weather (arguments
//                    split as above) and get_time with empty arguments "" (a tool without
//                    parameters, as vLLM sends it); a request whose last message is a tool answer
//                    gets the text "tool said: " + the tool answers joined with "; " instead
//   delay-MS         waits MS before each streamed chunk (and before a non-stream answer)
//   retry-after-S    with error-429: the Retry-After header is S
//   slow-body-MS     non-stream: sends the headers (with Content-Length) and the first half of the JSON
//                    body at once, the rest MS later (total-time tests)
//   chunks-N         speech: the audio is written in N pieces (default 8; 4 events with stream_format sse)
//   cached-N         responses: usage.input_tokens_details.cached_tokens is N (at most the input tokens)
//   with-usage       transcriptions and translations answered in JSON (json, verbose_json): usage
//                    {type: "tokens", input_tokens: ceil(file bytes / 1000), output_tokens: words}, as
//                    gpt-4o-transcribe sends it
// Hostile streams (chat/completions and responses with stream=true; a client that leaves ends them, and
// each ends by itself: rec.bigBytes counts the bytes of the big parts written so far):
//   huge-line-N      the first event is one data: line of N MiB (a valid chunk / output_text.delta whose
//                    text is N MiB of "x"), then the normal stream
//   huge-line-late-N the same event after the first 2 events
//   huge-open-N      after the first 2 events, a data: line of N MiB that never ends (no newline), then
//                    the socket is closed
//   no-blank-line    after the first 2 events, data: lines (about 1 KiB each) without the blank line that
//                    would end the event, as fast as the socket takes them, 1 GiB at most
//   endless-MS       after the normal events, one more text event every MS ms (0: as fast as the socket
//                    takes them) for at most 60 s, without ending the stream
// The surface endpoints that take a model (speech, transcriptions, translations, images, moderations,
// responses) honour error-400/-400-leaky/-400-long/-404/-429/-500/-503, error-html, hang, slow-first-byte
// and delay-MS too (responses: stream-then-die cuts the event stream after 3 events; dated: the answer's
// model gets "-2025-04-14").
// Anything else: a normal answer.
//
// Per-mock switches (properties of the handle, changeable at any time; fault injection that does not
// depend on the model name):
//   m.backendKey = null  the key the files list's echo.auth calls 'backend'
//   m.failNext = N      the next N inference requests (POST chat/completions/embeddings, and the surface
//                       endpoints above that take a model) are answered
//                       with m.failStatus instead of their normal answer (Infinity: all of them); each
//                       failed request decrements it
//   m.failEvery = N     (0: off) while failNext is 0, every Nth inference request counted from when failEvery
//                       was set (the Nth, 2Nth, ...) is answered with m.failStatus; N = 2 alternates ok/fail
//   m.failStatus = 500  500 (server_error), 502, 503 (overloaded) or 429 (rate_limit_exceeded with
//                       Retry-After: m.retryAfter)
//   m.retryAfter = '1'  Retry-After value sent with every 429 (null: no header)
//   m.latencyMs = 0     extra wait before answering any inference request (forced failures included)
//   m.modelsStatus = 200  status of GET /v1/models and /v1/models/{id} (health checks): non-2xx ->
//                       an error body with that status
const http = require('node:http');
const crypto = require('node:crypto');
const { sleep, listen, httpRecorder, runCommand } = require('./mock-lib.js');

const CREATED = 1700000000;


function words(s) { return String(s || '').split(/\s+/).filter(Boolean); }

// What the mock's POST /tokenize (vLLM's) counts: the words of every message's text (string
// content or text parts), plus 4 template tokens per message, plus the words of a prompt.
function tokenizeCount(body) {
  let n = words(body.prompt).length;
  for (const m of Array.isArray(body.messages) ? body.messages : []) {
    const c = m.content;
    if (typeof c === 'string') n += words(c).length;
    else if (Array.isArray(c)) for (const part of c) if (part && part.type === 'text') n += words(part.text).length;
    n += 4;
  }
  return n;
}

// Text of a message's content: a string, or the text parts of an array joined with a space.
function contentText(c) {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.filter((p) => p && p.type === 'text').map((p) => p.text).join(' ');
  return '';
}

function lastUserText(messages) {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i] && messages[i].role === 'user') return contentText(messages[i].content);
  }
  return '';
}

function promptText(prompt) {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && typeof prompt[0] === 'string') return prompt[0];
  return '';
}

// The chunks a text is streamed as: one per whitespace-separated word, each carrying the word and
// the whitespace that follows it. Their concatenation is the text with leading whitespace removed.
function replyChunks(text) {
  const out = [];
  const re = /\S+\s*/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push(m[0]);
  return out;
}

// The reply for a chat request (messages) or a completion (prompt), with max_tokens applied.
function replyFor(body, kind) {
  const input = kind === 'chat' ? lastUserText(body.messages) : promptText(body.prompt);
  let text = `you said: ${input}`;
  let finish = 'stop';
  const max = body.max_completion_tokens ?? body.max_tokens;
  const chunks = replyChunks(text);
  if (Number.isInteger(max) && max > 0 && max < chunks.length) {
    text = chunks.slice(0, max).join('');
    finish = 'length';
  }
  let promptWords = 0;
  if (kind === 'chat') for (const m of body.messages || []) promptWords += words(contentText(m && m.content)).length;
  else promptWords = words(promptText(body.prompt)).length;
  const completionWords = words(text).length;
  return {
    text, finish, chunks: replyChunks(text),
    usage: { prompt_tokens: promptWords, completion_tokens: completionWords, total_tokens: promptWords + completionWords },
  };
}

// Deterministic embedding of a text: dims float32-exact values in [-1, 1).
function embed(text, dims = 8) {
  const out = [];
  let block = Buffer.alloc(0);
  let counter = 0;
  while (out.length < dims) {
    if (block.length < 4) { block = crypto.createHash('sha256').update(`${counter++}:${text}`).digest(); }
    const v = block.readUInt32LE(0);
    block = block.subarray(4);
    out.push(Math.fround(v / 2147483648 - 1));
  }
  return out;
}

function embeddingBase64(vec) {
  const f = new Float32Array(vec);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}

const TOOL_ARGS = '{"location": "Paris, France", "unit": "celsius"}';
const TOOL_ARG_PARTS = ['{"loc', 'ation": "Par', 'is, France"', ', "unit": "cel', 'sius"}'];

function knobs(model) {
  const m = String(model || '');
  const k = {};
  if (m.includes('error-400-leaky')) k.error = 'leaky400';
  else if (m.includes('error-400-echo-key')) k.error = 'echoKey400';
  else if (m.includes('error-400-long')) k.error = 'long400';
  else if (m.includes('error-400')) k.error = 400;
  else if (m.includes('error-404')) k.error = 404;
  else if (m.includes('error-429')) k.error = 429;
  else if (m.includes('error-500')) k.error = 500;
  else if (m.includes('error-503')) k.error = 503;
  let r;
  if ((r = /slow-first-byte(?:-(\d+))?/.exec(m))) k.slowFirstByte = r[1] ? Number(r[1]) : 3000;
  if ((r = /slow-stream(?:-(\d+)x(\d+))?/.exec(m))) k.slowStream = { n: r[1] ? Number(r[1]) : 50, ms: r[2] ? Number(r[2]) : 100 };
  if ((r = /stall-(\d+)-(\d+)/.exec(m))) k.stall = { n: Number(r[1]), ms: Number(r[2]) };
  if (m.includes('error-html')) k.error = 'html';
  if (m.includes('garbage')) k.garbage = true;
  if (m.includes('hang')) k.hang = true;
  if (m.includes('sse-crlf')) k.crlf = true;
  if (m.includes('sse-nospace')) k.nospace = true;
  if (m.includes('sse-comments')) k.comments = true;
  if (m.includes('fragmented')) k.fragmented = true;
  if (m.includes('dated')) k.dated = true;
  if (m.includes('stream-error-event')) k.streamError = true;
  if (m.includes('stream-then-die')) k.die = true;
  if (m.includes('tool-call')) k.tool = true;
  if (m.includes('multi-tool')) k.multiTool = true;
  if ((r = /delay-(\d+)/.exec(m))) k.delay = Number(r[1]);
  if ((r = /retry-after-(\d+)/.exec(m))) k.retryAfter = r[1];
  if ((r = /slow-body-(\d+)/.exec(m))) k.slowBody = Number(r[1]);
  if ((r = /chunks-(\d+)/.exec(m))) k.chunks = Math.max(1, Number(r[1]));
  if ((r = /cached-(\d+)/.exec(m))) k.cached = Number(r[1]);
  if (m.includes('with-usage')) k.withUsage = true;
  if ((r = /huge-(line|line-late|open)-(\d+)/.exec(m))) k.huge = { at: r[1] === 'line' ? 0 : 2, open: r[1] === 'open', bytes: Number(r[2]) * 1024 * 1024 };
  if (m.includes('no-blank-line')) k.noBlank = true;
  if ((r = /endless-(\d+)/.exec(m))) k.endless = Number(r[1]);
  return k;
}

function errorBody(message, type, param, code) {
  return { error: { message, type, param: param ?? null, code: code ?? null } };
}

// ---------------------------------------------------------------- the rest of the API surface
// (audio, images, moderations, responses, files). Pure helpers, exported so tests can compute
// what the mock sends.

const AUDIO_TYPES = {
  mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm',
};
const AUDIO_MAGIC = {
  mp3: Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'),
  opus: Buffer.from('OggS\x00\x02', 'latin1'),
  aac: Buffer.from([0xff, 0xf1, 0x50, 0x80]),
  flac: Buffer.from('fLaC', 'latin1'),
  wav: Buffer.from('RIFF\xff\xff\xff\xffWAVEfmt ', 'latin1'),
  pcm: Buffer.alloc(0),
};

// Deterministic bytes: sha256 blocks of `${seed}:${counter}` concatenated, len bytes.
function detBytes(seed, len) {
  const out = Buffer.alloc(len);
  let off = 0;
  for (let i = 0; off < len; i++) {
    const h = crypto.createHash('sha256').update(`${i}:${seed}`).digest();
    off += h.copy(out, off, 0, Math.min(h.length, len - off));
  }
  return out;
}

function sha256(buf) { return crypto.createHash('sha256').update(buf).digest('hex'); }

// The audio /v1/audio/speech answers for a request body: a format-typical magic header, then
// deterministic bytes. Size: 4000 bytes per input byte, clamped to [8 KiB, 4 MiB].
function speechAudio(body) {
  const fmt = body.response_format || 'mp3';
  const input = String(body.input ?? '');
  const len = Math.min(4 << 20, Math.max(8192, 4000 * Buffer.byteLength(input)));
  const magic = AUDIO_MAGIC[fmt] || Buffer.alloc(0);
  const rest = detBytes(`speech:${fmt}:${body.voice}:${body.speed ?? 1}:${input}`, len - magic.length);
  return Buffer.concat([magic, rest]);
}

// The text a transcription (task "transcribe") or translation ("translate") answers for an upload.
function transcriptText(task, file) {
  const digest = file ? file.sha256.slice(0, 16) : 'none';
  const size = file ? file.size : 0;
  return task === 'translate'
    ? `Translated ${size} bytes of audio into English. The digest is ${digest}.`
    : `Transcribed ${size} bytes of audio. The digest is ${digest}.`;
}

// Segments of a transcript: one per sentence, 16 kB of audio a second.
function transcriptSegments(text, size) {
  const sentences = text.match(/[^.]+\.\s*/g) || [text];
  const duration = Math.max(1, Math.round((size / 16000) * 100) / 100);
  const per = duration / sentences.length;
  return sentences.map((s, i) => ({
    id: i, seek: 0, start: Math.round(i * per * 100) / 100, end: Math.round((i + 1) * per * 100) / 100, text: ` ${s.trim()}`,
    tokens: words(s).map((_, j) => 50364 + i * 100 + j), temperature: 0, avg_logprob: -0.25, compression_ratio: 1.1, no_speech_prob: 0.01,
  }));
}

function stamp(sec, sep) {
  const ms = Math.round(sec * 1000);
  const p = (n, w) => String(n).padStart(w, '0');
  return `${p(Math.floor(ms / 3600000), 2)}:${p(Math.floor(ms / 60000) % 60, 2)}:${p(Math.floor(ms / 1000) % 60, 2)}${sep}${p(ms % 1000, 3)}`;
}

// The body and content type of a transcription/translation answer in a response_format.
// text and srt are text/plain as OpenAI sends them; vtt is text/vtt.
function transcriptAnswer(task, file, format, extra = {}) {
  const text = transcriptText(task, file);
  const size = file ? file.size : 0;
  const segs = transcriptSegments(text, size);
  switch (format) {
    case 'text': return { type: 'text/plain; charset=utf-8', body: `${text}\n` };
    case 'srt': return { type: 'text/plain; charset=utf-8', body: segs.map((s, i) => `${i + 1}\n${stamp(s.start, ',')} --> ${stamp(s.end, ',')}\n${s.text.trim()}\n\n`).join('') };
    case 'vtt': return { type: 'text/vtt; charset=utf-8', body: `WEBVTT\n\n${segs.map((s) => `${stamp(s.start, '.')} --> ${stamp(s.end, '.')}\n${s.text.trim()}\n\n`).join('')}` };
    case 'verbose_json': {
      const o = { task, language: 'english', duration: segs.length ? segs[segs.length - 1].end : 0, text, segments: segs };
      if (extra.words) {
        const ws = words(text);
        const per = o.duration / Math.max(1, ws.length);
        o.words = ws.map((w, i) => ({ word: w.replace(/[.,]$/, ''), start: Math.round(i * per * 100) / 100, end: Math.round((i + 1) * per * 100) / 100 }));
      }
      return { json: o };
    }
    default: return { json: { text } };
  }
}

// Image bytes (a PNG signature and deterministic bytes) for a prompt/upload and index.
function imageBytes(seed, index) {
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), detBytes(`image:${index}:${seed}`, 504)]);
}

const MODERATION_CATEGORIES = ['harassment', 'harassment/threatening', 'hate', 'hate/threatening', 'illicit', 'illicit/violent',
  'self-harm', 'self-harm/instructions', 'self-harm/intent', 'sexual', 'sexual/minors', 'violence', 'violence/graphic'];

// One moderation result: flagged (category "violence") when the text contains "kill" or "attack".
function moderationResult(text) {
  const t = String(text || '').toLowerCase();
  const violent = /\b(kill|attack)/.test(t);
  const categories = {};
  const scores = {};
  const applied = {};
  for (const c of MODERATION_CATEGORIES) {
    categories[c] = c === 'violence' && violent;
    scores[c] = c === 'violence' && violent ? 0.91 : 0.0001;
    applied[c] = ['text'];
  }
  return { flagged: violent, categories, category_scores: scores, category_applied_input_types: applied };
}

// The text of a Responses API input: a string, or the last user message's text.
function responseInputText(input) {
  if (typeof input === 'string') return input;
  if (!Array.isArray(input)) return '';
  for (let i = input.length - 1; i >= 0; i--) {
    const it = input[i];
    if (!it || it.role !== 'user') continue;
    if (typeof it.content === 'string') return it.content;
    if (Array.isArray(it.content)) return it.content.filter((p) => p && (p.type === 'input_text' || p.type === 'text')).map((p) => p.text).join(' ');
  }
  return '';
}

// The reply text of a Responses API request and its streamed deltas (one per word, like chat).
function responseReply(body) {
  const text = `you said: ${responseInputText(body.input)}`;
  return { text, deltas: replyChunks(text) };
}

// Parses a multipart/form-data body (Buffer). Returns [{ name, filename, contentType, headers, data }]
// or throws on malformed input.
function parseMultipart(buf, boundary) {
  const delim = Buffer.from(`--${boundary}`);
  const parts = [];
  let pos = buf.indexOf(delim);
  if (pos < 0) throw new Error('no boundary delimiter in the body');
  for (;;) {
    pos += delim.length;
    if (buf[pos] === 0x2d && buf[pos + 1] === 0x2d) break; // close delimiter
    while (buf[pos] === 0x20 || buf[pos] === 0x09) pos++; // transport padding
    if (buf[pos] !== 0x0d || buf[pos + 1] !== 0x0a) throw new Error('bad delimiter line');
    pos += 2;
    const hend = buf.indexOf('\r\n\r\n', pos);
    if (hend < 0) throw new Error('part headers not terminated');
    const headers = {};
    for (const line of buf.subarray(pos, hend).toString('utf8').split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = buf.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), hend + 4);
    if (next < 0) throw new Error('part not terminated by a delimiter');
    const cd = headers['content-disposition'] || '';
    const name = /(?:^|;)\s*name="((?:[^"\\]|\\.)*)"/i.exec(cd);
    const filename = /(?:^|;)\s*filename="((?:[^"\\]|\\.)*)"/i.exec(cd);
    parts.push({
      name: name ? name[1] : null, filename: filename ? filename[1] : null,
      contentType: headers['content-type'] || null, headers, data: buf.subarray(hend + 4, next),
    });
    pos = next + 2;
  }
  return parts;
}

function multipartBoundary(contentType) {
  const ct = String(contentType || '');
  if (!/^multipart\/form-data/i.test(ct)) return null;
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(ct);
  return m ? (m[1] || m[2]) : null;
}

// A summary of a parsed form: fields (repeated names -> arrays) and files (with size and sha256).
function formSummary(parts) {
  const fields = {};
  const files = [];
  for (const p of parts) {
    if (p.filename !== null) {
      files.push({ field: p.name, filename: p.filename, contentType: p.contentType, size: p.data.length, sha256: sha256(p.data) });
      continue;
    }
    const v = p.data.toString('utf8');
    if (p.name in fields) fields[p.name] = [].concat(fields[p.name], v);
    else fields[p.name] = v;
  }
  return { fields, files };
}

// record = false: keep nothing (for long benchmark runs).
async function startMock({ port = 0, host = '127.0.0.1', log = false, record = true } = {}) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const raw = bytes.toString('utf8');
      let body = raw;
      const boundary = multipartBoundary(req.headers['content-type']);
      let form = null; let formError = null; let parts = null;
      if (boundary) {
        try { parts = parseMultipart(bytes, boundary); form = formSummary(parts); } catch (e) { formError = e.message; }
      } else if (raw.length) { try { body = JSON.parse(raw); } catch { body = raw; } }
      const rec = rc.newRecord(req, {
        rawBody: raw, body, model: form ? form.fields.model : body && typeof body === 'object' ? body.model : undefined,
      });
      if (boundary) { rec.form = form; if (formError) rec.formError = formError; }
      Object.defineProperty(rec, 'rawBytes', { value: bytes, enumerable: false });
      Object.defineProperty(rec, 'parts', { value: parts, enumerable: false });
      if (log) console.error(`mock: ${req.method} ${req.url} model=${rec.model}`);
      rc.add(req, res, rec);
      handle(req, res, rec).catch((e) => {
        if (log) console.error('mock: handler error', e);
        if (!res.headersSent) { try { sendJson(res, rec, 500, errorBody(String(e && e.message), 'server_error')); } catch { } } else res.destroy();
      });
    });
  });
  const rc = httpRecorder(server, { record });
  const notify = rc.notify;

  function sendJson(res, rec, status, obj, extraHeaders = {}) {
    const s = JSON.stringify(obj);
    rec.status = status;
    rec.response = obj;
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(s),
      'x-request-id': `req_mock_${rec.id}`,
      'openai-processing-ms': '1',
      ...extraHeaders,
    });
    res.end(s);
  }

  function startSse(res, rec) {
    rec.status = 200;
    rec.response = [];
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'x-request-id': `req_mock_${rec.id}`,
    });
    // Headers go out with the first chunk (like uvicorn/OpenAI), or now if flushHeaders is called.
  }

  // Writes one SSE event (obj, or the string '[DONE]') in the wire variant the knobs select.
  async function sendEvent(res, rec, obj, k = {}) {
    if (res.destroyed || res.writableEnded) return false;
    if (obj !== '[DONE]') { rec.response.push(obj); rec.chunksSent++; notify(); }
    const eol = k.crlf ? '\r\n' : '\n';
    let text = `${k.nospace ? 'data:' : 'data: '}${obj === '[DONE]' ? obj : JSON.stringify(obj)}${eol}${eol}`;
    if (k.comments) text = `: ping${eol}${eol}${text}`;
    if (k.fragmented) await writeFragmented(res, Buffer.from(text));
    else res.write(text);
    return true;
  }

  // Writes buf in 7-byte pieces (splitting UTF-8 sequences), a few ms apart, so each is its own
  // TCP segment.
  async function writeFragmented(res, buf) {
    for (let i = 0; i < buf.length; i += 7) {
      if (gone(res)) return;
      res.write(buf.subarray(i, i + 7));
      await sleep(1);
    }
  }

  function gone(res) { return res.destroyed || res.socket === null || (res.socket && res.socket.destroyed); }

  // Resolves when the socket takes more writes, or has closed.
  function drained(res) {
    return new Promise((resolve) => {
      const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  // Writes piece, then waits until the socket takes more; false once the client has gone.
  async function writeFlowing(res, piece) {
    if (gone(res)) return false;
    if (!res.write(piece)) await drained(res);
    return !gone(res);
  }

  const XS = Buffer.alloc(64 * 1024, 'x');
  // The hostile knobs' big writes (see the header): head, then `bytes` of "x", then tail (null: the
  // line never ends and the socket is closed). False once the client has gone.
  async function writeHuge(res, rec, head, bytes, tail) {
    rec.bigBytes = rec.bigBytes || 0;
    if (!await writeFlowing(res, head)) return false;
    for (let left = bytes; left > 0; left -= XS.length) {
      const piece = left >= XS.length ? XS : XS.subarray(0, left);
      if (!await writeFlowing(res, piece)) return false;
      rec.bigBytes += piece.length;
      notify();
    }
    if (tail === null) { res.destroy(); return false; }
    return writeFlowing(res, tail);
  }

  // data: lines that never end their event, until the client leaves (1 GiB at most).
  async function writeNoBlankLines(res, rec, line) {
    rec.bigBytes = rec.bigBytes || 0;
    const block = Buffer.from(`data: ${line}\n`.repeat(64));
    while (rec.bigBytes < 1024 * 1024 * 1024) {
      if (!await writeFlowing(res, block)) return;
      rec.bigBytes += block.length;
    }
    res.end();
  }

  // The hostile knobs, at event index i of a stream: a huge event (text is the JSON of an event around
  // the marker "@X@", which stands for the bytes of "x"), or data lines without an end. False when the
  // stream must stop here.
  async function hostileAt(res, rec, k, i, prefix, text) {
    if (k.huge && k.huge.at === i) {
      const [a, b] = text.split('@X@');
      return writeHuge(res, rec, `${prefix}data: ${a}`, k.huge.bytes, k.huge.open ? null : `${b}\n\n`);
    }
    if (k.noBlank && i === 2) {
      await writeNoBlankLines(res, rec, text.replace('@X@', 'x'.repeat(900)));
      return false;
    }
    return true;
  }

  // endless-MS: one more event (send()) every MS ms until the client leaves, for 60 s at most.
  async function endlessEvents(res, k, send) {
    const end = Date.now() + 60000;
    while (Date.now() < end && !gone(res)) {
      if (k.endless) await sleep(k.endless);
      else if (res.writableNeedDrain) await drained(res);
      else await new Promise((r) => setImmediate(r)); // let timers and socket events run
      if (gone(res)) return;
      await send();
    }
    res.end();
  }

  // Per-mock switches (see the header).
  const ctl = { failNext: 0, failEvery: 0, everyCount: 0, failStatus: 500, retryAfter: '1', latencyMs: 0, modelsStatus: 200, backendKey: null };
  function retryAfterHeader(value) { return value === null || value === undefined ? {} : { 'Retry-After': String(value) }; }


  // m.failNext / m.failEvery: answers an inference request with m.failStatus instead. Returns true if it did.
  function forcedFailure(res, rec, model) {
    if (ctl.failNext > 0) ctl.failNext--;
    else if (!(ctl.failEvery > 0) || ++ctl.everyCount % ctl.failEvery !== 0) return false;
    const st = ctl.failStatus;
    rec.forcedFailure = st;
    if (st === 429) {
      sendJson(res, rec, 429, errorBody(`Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1.`, 'requests', null, 'rate_limit_exceeded'), retryAfterHeader(ctl.retryAfter));
    } else if (st === 503) {
      sendJson(res, rec, 503, errorBody(`The engine is currently overloaded (model ${model}), please try again later.`, 'server_error', null, 'overloaded'));
    } else {
      sendJson(res, rec, st, errorBody(`The server had an error while processing your request (model ${model}).`, 'server_error'));
    }
    return true;
  }

  // An error text that quotes the credentials the request came with, as careless servers do.
  function echoedCredentials(req, what) {
    return `Request for ${what} refused: Authorization was '${req.headers.authorization || ''}', x-api-key was '${req.headers['x-api-key'] || ''}'.`;
  }

  // The error knobs of a model name (error-400, error-404, ..., error-html): sends that error and
  // returns true, else false. input: the request's text (quoted by error-400-long).
  function knobError(req, res, rec, k, model, p, input) {
    const host = req.headers.host || `127.0.0.1:${server.address().port}`;
    if (!k.error) return false;
    switch (k.error) {
      case 'html': {
        const page = `<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>No route for ${p} on http://${host} (model ${model})</p><hr>nginx</body></html>\n`;
        rec.status = 404; rec.response = page;
        res.writeHead(404, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) });
        res.end(page); return true;
      }
      case 400:
        sendJson(res, rec, 400, errorBody(`Invalid value for 'temperature': model '${model}' does not support temperature=7.`, 'invalid_request_error', 'temperature', 'invalid_value')); return true;
      case 'long400': {
        // Like a validation error that quotes the input: long, and not ASCII.
        sendJson(res, rec, 400, errorBody(`1 validation error for model ${model}: messages.1.content: input is not allowed here: '${input}'`, 'invalid_request_error', 'messages', 'invalid_value')); return true;
      }
      case 'leaky400':
        sendJson(res, rec, 400, errorBody(`Invalid request to http://${host}${p} for model '${model}': 'temperature' is invalid.`, 'invalid_request_error', 'temperature', 'invalid_value')); return true;
      case 'echoKey400':
        sendJson(res, rec, 400, errorBody(echoedCredentials(req, model), 'invalid_request_error', null, 'invalid_value')); return true;
      case 404:
        sendJson(res, rec, 404, errorBody(`The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', null, 'model_not_found')); return true;
      case 429:
        sendJson(res, rec, 429, errorBody(`Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1.`, 'requests', null, 'rate_limit_exceeded'), retryAfterHeader(k.retryAfter ?? ctl.retryAfter)); return true;
      case 500:
        sendJson(res, rec, 500, errorBody(`The server had an error while processing your request to http://${host}${p} (model ${model}).`, 'server_error')); return true;
      case 503:
        sendJson(res, rec, 503, errorBody(`The engine is currently overloaded (model ${model}), please try again later.`, 'server_error', null, 'overloaded')); return true;
      default: return false;
    }
  }

  async function handle(req, res, rec) {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname.replace(/\/+$/, '');
    const route = `${req.method} ${p}`;
    if (p === '/v1/models' || p.startsWith('/v1/models/')) {
      if (req.method !== 'GET') return sendJson(res, rec, 405, errorBody('Method not allowed', 'invalid_request_error'));
      if (ctl.modelsStatus < 200 || ctl.modelsStatus > 299) {
        return sendJson(res, rec, ctl.modelsStatus, errorBody(`The server is not healthy (status ${ctl.modelsStatus}).`, 'server_error'));
      }
      const ids = ['mock-chat', 'mock-text', 'mock-embed'];
      if (p === '/v1/models') {
        return sendJson(res, rec, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'mock' })) });
      }
      const id = decodeURIComponent(p.slice('/v1/models/'.length));
      return sendJson(res, rec, 200, { id, object: 'model', created: CREATED, owned_by: 'mock' });
    }
    if (p === '/tokenize') { // vLLM's tokenizer endpoint, beside /v1
      const body = rec.body;
      if (req.method !== 'POST') return sendJson(res, rec, 405, errorBody(`Method ${req.method} not allowed`, 'invalid_request_error'));
      if (!body || typeof body !== 'object' || (!Array.isArray(body.messages) && typeof body.prompt !== 'string')) {
        return sendJson(res, rec, 400, errorBody('messages or prompt is required', 'invalid_request_error'));
      }
      if (String(body.model || '').includes('no-tokenize')) return sendJson(res, rec, 404, { detail: 'Not Found' });
      const count = tokenizeCount(body);
      return sendJson(res, rec, 200, { count, max_model_len: 8192, tokens: Array.from({ length: count }, (_, i) => 1000 + i), token_strs: null });
    }
    const surface = surfaceRoute(req.method, p);
    if (surface === 405) return sendJson(res, rec, 405, errorBody(`Method ${req.method} not allowed`, 'invalid_request_error'));
    if (surface) return surface({ req, res, rec, url, p });
    const kinds = { 'POST /v1/chat/completions': 'chat', 'POST /v1/completions': 'completions', 'POST /v1/embeddings': 'embeddings' };
    const kind = kinds[route];
    if (!kind) {
      if (['/v1/chat/completions', '/v1/completions', '/v1/embeddings'].includes(p)) {
        return sendJson(res, rec, 405, errorBody(`Method ${req.method} not allowed`, 'invalid_request_error'));
      }
      return sendJson(res, rec, 404, errorBody(`Invalid URL (${req.method} ${p})`, 'invalid_request_error', null, 'unknown_url'));
    }
    const body = rec.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, rec, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error'));
    }
    if (typeof body.model !== 'string' || !body.model) {
      return sendJson(res, rec, 400, errorBody('you must provide a model parameter', 'invalid_request_error', 'model', 'missing_required_parameter'));
    }
    const model = body.model;
    const k = knobs(model);
    if (kind !== 'embeddings' && body.stream !== true && body.stream_options !== undefined && body.stream_options !== null) {
      // OpenAI's own answer to this.
      return sendJson(res, rec, 400, errorBody("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'invalid_request_error', 'stream_options', 'invalid_value'));
    }

    if (ctl.latencyMs > 0) { await sleep(ctl.latencyMs); if (gone(res)) return; }
    if (forcedFailure(res, rec, model)) return;
    if (k.hang) return; // never answer; the socket stays until the client closes it
    if (k.slowFirstByte) { await sleep(k.slowFirstByte); if (gone(res)) return; }

    const input = lastUserText(body.messages) || promptText(body.prompt);
    if (knobError(req, res, rec, k, model, p, input)) return;

    const host = req.headers.host || `127.0.0.1:${server.address().port}`;
    if (k.garbage) {
      const junk = `this is not JSON from http://${host} (${model})`;
      rec.status = 200; rec.response = junk;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(junk) });
      return res.end(junk);
    }
    if (kind === 'embeddings') return embeddings(res, rec, body, model);
    return generate(req, res, rec, body, model, kind, k);
  }

  function embeddings(res, rec, body, model) {
    let inputs = body.input;
    if (typeof inputs === 'string') inputs = [inputs];
    if (!Array.isArray(inputs) || inputs.length === 0) {
      return sendJson(res, rec, 400, errorBody("'input' is a required property", 'invalid_request_error', 'input', 'missing_required_parameter'));
    }
    if (inputs.every((x) => typeof x === 'number')) inputs = [inputs];
    const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : 8;
    const b64 = body.encoding_format === 'base64';
    let tokens = 0;
    const data = inputs.map((inp, index) => {
      const text = typeof inp === 'string' ? inp : JSON.stringify(inp);
      tokens += typeof inp === 'string' ? words(inp).length : inp.length;
      const v = embed(text, dims);
      return { object: 'embedding', index, embedding: b64 ? embeddingBase64(v) : v };
    });
    return sendJson(res, rec, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  async function generate(req, res, rec, body, model, kind, k) {
    const stream = body.stream === true;
    const includeUsage = stream && body.stream_options && body.stream_options.include_usage === true;
    const chat = kind === 'chat';
    const id = chat ? `chatcmpl-mock${rec.id}` : `cmpl-mock${rec.id}`;
    let r = replyFor(body, kind);
    if (k.multiTool && chat) {
      const msgs = Array.isArray(body.messages) ? body.messages : [];
      const toolAnswers = [];
      for (let i = msgs.length - 1; i >= 0 && msgs[i].role === 'tool'; i--) toolAnswers.unshift(String(msgs[i].content));
      if (toolAnswers.length) {
        const text = `tool said: ${toolAnswers.join('; ')}`;
        const chunks = text.split(' ').map((w, i, a) => (i < a.length - 1 ? `${w} ` : w));
        r = { text, finish: 'stop', chunks, usage: { prompt_tokens: r.usage.prompt_tokens, completion_tokens: chunks.length, total_tokens: r.usage.prompt_tokens + chunks.length } };
      } else {
        k = { ...k, tool: true, twoTools: true };
      }
    }
    if (k.slowStream) {
      const parts = [];
      for (let i = 0; i < k.slowStream.n; i++) parts.push(`w${i} `);
      const text = parts.join('');
      const cw = k.slowStream.n;
      r = { text, finish: 'stop', chunks: parts, usage: { prompt_tokens: r.usage.prompt_tokens, completion_tokens: cw, total_tokens: r.usage.prompt_tokens + cw } };
    }
    const delay = k.slowStream ? k.slowStream.ms : (k.delay || 0);
    const fp = 'fp_mock';

    if (!stream) {
      if (k.slowStream) await sleep(k.slowStream.n * k.slowStream.ms);
      else if (delay) await sleep(delay);
      if (gone(res)) return;
      let obj;
      if (chat) {
        const message = k.twoTools
          ? { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'call_mock1', type: 'function', function: { name: 'get_weather', arguments: TOOL_ARGS } }, { id: 'call_mock2', type: 'function', function: { name: 'get_time', arguments: '' } }], refusal: null }
          : k.tool
          ? { role: 'assistant', content: null, tool_calls: [{ id: 'call_mock1', type: 'function', function: { name: 'get_weather', arguments: TOOL_ARGS } }], refusal: null }
          : { role: 'assistant', content: r.text, refusal: null };
        obj = {
          id, object: 'chat.completion', created: CREATED, model, system_fingerprint: fp,
          choices: [{ index: 0, message, logprobs: null, finish_reason: k.tool ? 'tool_calls' : r.finish }],
          usage: r.usage,
        };
      } else {
        obj = {
          id, object: 'text_completion', created: CREATED, model, system_fingerprint: fp,
          choices: [{ text: r.text, index: 0, logprobs: null, finish_reason: r.finish }],
          usage: r.usage,
        };
      }
      if (k.dated) obj.model = `${model}-2024-08-06`;
      if (k.slowBody) {
        const b = Buffer.from(JSON.stringify(obj));
        rec.status = 200; rec.response = obj;
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': b.length });
        res.write(b.subarray(0, b.length >> 1));
        await sleep(k.slowBody);
        if (gone(res)) return;
        return res.end(b.subarray(b.length >> 1));
      }
      if (k.fragmented) {
        rec.status = 200; rec.response = obj;
        res.writeHead(200, { 'Content-Type': 'application/json' }); // chunked, no Content-Length
        await writeFragmented(res, Buffer.from(JSON.stringify(obj)));
        return res.end();
      }
      if (k.die) {
        const s = JSON.stringify(obj);
        rec.status = 200;
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
        res.write(s.slice(0, s.length >> 1));
        await sleep(50);
        res.destroy();
        return;
      }
      return sendJson(res, rec, 200, obj);
    }

    startSse(res, rec);
    const rmodel = k.dated ? `${model}-2024-08-06` : model;
    const base = chat
      ? { id, object: 'chat.completion.chunk', created: CREATED, model: rmodel, system_fingerprint: fp }
      : { id, object: 'text_completion', created: CREATED, model: rmodel, system_fingerprint: fp };
    const withUsage = (o) => (includeUsage ? { ...o, usage: null } : o);
    const seq = [];
    if (chat) {
      if (k.twoTools) {
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'Let me ', refusal: null }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { content: 'check.' }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_mock1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }, logprobs: null, finish_reason: null }] }));
        for (const a of TOOL_ARG_PARTS) seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: a } }] }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: 'call_mock2', type: 'function', function: { name: 'get_time', arguments: '' } }] }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }] }));
      } else if (k.tool) {
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_mock1', type: 'function', function: { name: 'get_weather', arguments: '' } }], refusal: null }, logprobs: null, finish_reason: null }] }));
        for (const a of TOOL_ARG_PARTS) seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: a } }] }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }] }));
      } else {
        // Like OpenAI: the first chunk carries the role and an empty content.
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }] }));
        for (const c of r.chunks) seq.push(withUsage({ ...base, choices: [{ index: 0, delta: { content: c }, logprobs: null, finish_reason: null }] }));
        seq.push(withUsage({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: r.finish }] }));
      }
    } else {
      for (const c of r.chunks) seq.push(withUsage({ ...base, choices: [{ text: c, index: 0, logprobs: null, finish_reason: null }] }));
      seq.push(withUsage({ ...base, choices: [{ text: '', index: 0, logprobs: null, finish_reason: r.finish }] }));
    }
    if (includeUsage) seq.push({ ...base, choices: [], usage: r.usage });

    res.flushHeaders();
    for (let i = 0; i < seq.length; i++) {
      if (k.die && i === 2) {
        await sleep(50);
        res.destroy();
        return;
      }
      if (k.streamError && i === 2) {
        // Like OpenAI (and vLLM) reporting a failure inside a started stream; then the stream ends.
        const host = res.req.headers.host;
        await sendEvent(res, rec, errorBody(`The model ${model} on http://${host}/v1 failed while generating.`, 'server_error', null, 'internal_error'), k);
        return res.end();
      }
      if (delay) await sleep(delay);
      if (k.stall && i === k.stall.n) await sleep(k.stall.ms);
      if (gone(res)) return;
      const big = chat ? { ...base, choices: [{ index: 0, delta: { content: '@X@' }, logprobs: null, finish_reason: null }] }
        : { ...base, choices: [{ text: '@X@', index: 0, logprobs: null, finish_reason: null }] };
      if (!await hostileAt(res, rec, k, i, '', JSON.stringify(big))) return;
      await sendEvent(res, rec, seq[i], k);
    }
    if (gone(res)) return;
    if (k.endless !== undefined) {
      const more = chat ? { ...base, choices: [{ index: 0, delta: { content: 'more ' }, logprobs: null, finish_reason: null }] }
        : { ...base, choices: [{ text: 'more ', index: 0, logprobs: null, finish_reason: null }] };
      return endlessEvents(res, k, () => sendEvent(res, rec, more, k));
    }
    await sendEvent(res, rec, '[DONE]', k);
    res.end();
  }

  // ---------------------------------------------------------------- the rest of the API surface

  const storedResponses = new Map(); // id -> { response, input }
  const storedFiles = new Map();     // id -> { file, data }
  let objSeq = 0;
  const newId = (prefix) => `${prefix}${crypto.createHash('sha256').update(`${actualPortOrZero()}:${++objSeq}`).digest('hex').slice(0, 24)}`;
  function actualPortOrZero() { const a = server.address(); return a ? a.port : 0; }

  // The handler for a surface route, or undefined. Routes that take a model go through
  // modelRequest() (knob errors, forced failures, latency) first.
  function surfaceRoute(method, p) {
    const post = method === 'POST';
    switch (p) {
      case '/v1/audio/speech': return post ? speech : 405;
      case '/v1/audio/transcriptions': return post ? (a) => transcription(a, 'transcribe') : 405;
      case '/v1/audio/translations': return post ? (a) => transcription(a, 'translate') : 405;
      case '/v1/images/generations': return post ? imageGenerations : 405;
      case '/v1/images/edits': return post ? (a) => imageUploads(a, 'edits') : 405;
      case '/v1/images/variations': return post ? (a) => imageUploads(a, 'variations') : 405;
      case '/v1/moderations': return post ? moderations : 405;
      case '/v1/responses': return post ? responsesCreate : 405;
      case '/v1/files': return post ? filesCreate : method === 'GET' ? filesList : 405;
      case '/v1/threads/runs': return post ? threadRun : 405;
      default: break;
    }
    let r;
    if ((r = /^\/v1\/responses\/([^/]+)(\/input_items|\/cancel)?$/.exec(p))) {
      const id = decodeURIComponent(r[1]);
      if (r[2] === '/cancel') return post ? (a) => responseCancel(a, id) : 405;
      if (r[2]) return method === 'GET' ? (a) => responseInputItems(a, id) : 405;
      if (method === 'GET') return (a) => responseGet(a, id);
      if (method === 'DELETE') return (a) => responseDelete(a, id);
      return 405;
    }
    if ((r = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(p))) {
      const id = decodeURIComponent(r[1]);
      if (r[2]) return method === 'GET' ? (a) => fileContent(a, id) : 405;
      if (method === 'GET') return (a) => fileGet(a, id);
      if (method === 'DELETE') return (a) => fileDelete(a, id);
      return 405;
    }
    return undefined;
  }

  // Request body as an object: the JSON body, or the multipart form's fields (an error answer
  // is sent and null returned when neither).
  function jsonBody(a) {
    const b = a.rec.body;
    if (!b || typeof b !== 'object' || Array.isArray(b)) {
      sendJson(a.res, a.rec, 400, errorBody('We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)', 'invalid_request_error'));
      return null;
    }
    return b;
  }
  function formOf(a) {
    if (a.rec.form) return a.rec.form;
    sendJson(a.res, a.rec, 400, errorBody(a.rec.formError
      ? `Could not parse multipart form: ${a.rec.formError}`
      : "Invalid Content-Type header (expected multipart/form-data).", 'invalid_request_error'));
    return null;
  }

  // Common handling of a request that names a model: missing model (when required), forced
  // failures, latency, error knobs, slow-first-byte, hang. Returns the knobs, or null when answered.
  async function modelRequest(a, model, { required = true, input = '' } = {}) {
    const { res, rec } = a;
    if (required && (typeof model !== 'string' || !model)) {
      sendJson(res, rec, 400, errorBody('you must provide a model parameter', 'invalid_request_error', 'model', 'missing_required_parameter'));
      return null;
    }
    const k = knobs(model);
    if (ctl.latencyMs > 0) { await sleep(ctl.latencyMs); if (gone(res)) return null; }
    if (forcedFailure(res, rec, model)) return null;
    if (k.hang) return null;
    if (k.slowFirstByte) { await sleep(k.slowFirstByte); if (gone(res)) return null; }
    if (knobError(a.req, res, rec, k, model, a.p, input)) return null;
    return k;
  }

  // Writes buf in n pieces with `delay` ms before each after the first.
  async function writePieces(res, buf, n, delay) {
    const size = Math.ceil(buf.length / n);
    for (let i = 0; i < buf.length; i += size) {
      if (i > 0 && delay) await sleep(delay);
      if (gone(res)) return false;
      const ok = res.write(buf.subarray(i, i + size));
      if (!ok) await new Promise((r) => { res.once('drain', r); res.once('close', r); });
    }
    return true;
  }

  // SSE event with an `event:` line (Responses API style) or data only (eventName null).
  async function sendNamed(res, rec, eventName, obj, k = {}) {
    if (res.destroyed || res.writableEnded) return false;
    rec.response.push(obj); rec.chunksSent++; notify();
    const eol = k.crlf ? '\r\n' : '\n';
    let text = `${eventName ? `event: ${eventName}${eol}` : ''}${k.nospace ? 'data:' : 'data: '}${JSON.stringify(obj)}${eol}${eol}`;
    if (k.comments) text = `: ping${eol}${eol}${text}`;
    if (k.fragmented) await writeFragmented(res, Buffer.from(text));
    else res.write(text);
    return true;
  }

  // POST /v1/audio/speech: JSON in, audio bytes out (chunked, several writes; delay-MS between them).
  async function speech(a) {
    const body = jsonBody(a); if (!body) return;
    const k = await modelRequest(a, body.model, { input: body.input }); if (!k) return;
    const { res, rec } = a;
    if (typeof body.input !== 'string' || !body.input) return sendJson(res, rec, 400, errorBody("Missing required parameter: 'input'.", 'invalid_request_error', 'input', 'missing_required_parameter'));
    if (typeof body.voice !== 'string' || !body.voice) return sendJson(res, rec, 400, errorBody("Missing required parameter: 'voice'.", 'invalid_request_error', 'voice', 'missing_required_parameter'));
    if (body.input.length > 4096) return sendJson(res, rec, 400, errorBody(`[{'type': 'string_too_long', 'loc': ('body', 'input'), 'msg': 'String should have at most 4096 characters'}]`, 'invalid_request_error', 'input', 'string_too_long'));
    const fmt = body.response_format || 'mp3';
    if (!AUDIO_TYPES[fmt]) return sendJson(res, rec, 400, errorBody(`Invalid value: '${fmt}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'.`, 'invalid_request_error', 'response_format', 'invalid_value'));
    if (body.speed !== undefined && !(typeof body.speed === 'number' && body.speed >= 0.25 && body.speed <= 4)) {
      return sendJson(res, rec, 400, errorBody(`Invalid 'speed': must be between 0.25 and 4.0, got ${body.speed}.`, 'invalid_request_error', 'speed', 'invalid_value'));
    }
    const audio = speechAudio(body);
    rec.responseSha256 = sha256(audio);
    rec.responseBytes = audio.length;
    rec.status = 200;
    rec.response = { audio: true, format: fmt, bytes: audio.length, sha256: rec.responseSha256 };
    if (body.stream_format === 'sse') {
      // gpt-4o-mini-tts style: base64 audio deltas, then a done event with usage.
      startSse(res, rec);
      res.flushHeaders();
      const n = k.chunks || 4;
      const size = Math.ceil(audio.length / n);
      for (let i = 0; i < audio.length; i += size) {
        if (i > 0 && k.delay) await sleep(k.delay);
        if (gone(res)) return;
        await sendNamed(res, rec, null, { type: 'speech.audio.delta', audio: audio.subarray(i, i + size).toString('base64') }, k);
      }
      const w = words(body.input).length;
      await sendNamed(res, rec, null, { type: 'speech.audio.done', usage: { input_tokens: w, output_tokens: n, total_tokens: w + n } }, k);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': AUDIO_TYPES[fmt], 'Transfer-Encoding': 'chunked', 'x-request-id': `req_mock_${rec.id}`, 'openai-processing-ms': '1' });
    res.flushHeaders();
    rec.firstByteAt = Date.now();
    if (!await writePieces(res, audio, k.chunks || 8, k.delay || 0)) return;
    rec.lastByteAt = Date.now();
    res.end();
  }

  // POST /v1/audio/transcriptions and /translations: multipart in (file, model, response_format,
  // prompt, language, temperature, timestamp_granularities[], stream).
  async function transcription(a, task) {
    const form = formOf(a); if (!form) return;
    const f = form.fields;
    const file = form.files.find((x) => x.field === 'file');
    const k = await modelRequest(a, f.model, { input: f.prompt || '' }); if (!k) return;
    const { res, rec } = a;
    if (!file) return sendJson(res, rec, 400, errorBody("Missing required parameter: 'file'.", 'invalid_request_error', 'file', 'missing_required_parameter'));
    const format = f.response_format || 'json';
    if (!['json', 'text', 'srt', 'verbose_json', 'vtt'].includes(format)) {
      return sendJson(res, rec, 400, errorBody(`Invalid value: '${format}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.`, 'invalid_request_error', 'response_format', 'invalid_value'));
    }
    const grains = [].concat(f['timestamp_granularities[]'] || f.timestamp_granularities || []);
    if (k.delay) { await sleep(k.delay); if (gone(res)) return; }
    // Streaming: transcriptions only, and not for whisper models (OpenAI ignores stream for them).
    if (task === 'transcribe' && f.stream === 'true' && !/whisper/.test(f.model)) {
      const text = transcriptText(task, file);
      startSse(res, rec);
      res.flushHeaders();
      for (const d of replyChunks(text)) {
        if (k.delay) await sleep(k.delay);
        if (gone(res)) return;
        await sendNamed(res, rec, null, { type: 'transcript.text.delta', delta: d, logprobs: null }, k);
      }
      const inTok = Math.ceil(file.size / 1000);
      const outTok = words(text).length;
      await sendNamed(res, rec, null, { type: 'transcript.text.done', text, logprobs: null, usage: { type: 'tokens', input_tokens: inTok, input_token_details: { text_tokens: 0, audio_tokens: inTok }, output_tokens: outTok, total_tokens: inTok + outTok } }, k);
      return res.end();
    }
    const ans = transcriptAnswer(task, file, format, { words: grains.includes('word') });
    if (ans.json && k.withUsage) {
      const inTok = Math.ceil(file.size / 1000), outTok = words(ans.json.text).length;
      ans.json.usage = { type: 'tokens', input_tokens: inTok, input_token_details: { text_tokens: 0, audio_tokens: inTok }, output_tokens: outTok, total_tokens: inTok + outTok };
    }
    if (ans.json) return sendJson(res, rec, 200, ans.json);
    rec.status = 200; rec.response = ans.body;
    res.writeHead(200, { 'Content-Type': ans.type, 'Content-Length': Buffer.byteLength(ans.body), 'x-request-id': `req_mock_${rec.id}` });
    return res.end(ans.body);
  }

  function imageData(seed, n, format, prompt, model) {
    const data = [];
    for (let i = 0; i < n; i++) {
      const bytes = imageBytes(seed, i);
      const d = format === 'b64_json' ? { b64_json: bytes.toString('base64') } : { url: `https://images.mock.invalid/img-${sha256(bytes).slice(0, 24)}.png` };
      if (/dall-e-3/.test(model || '')) d.revised_prompt = `A picture of ${prompt}`;
      data.push(d);
    }
    return data;
  }
  function imageAnswer(model, data, promptWords) {
    const o = { created: CREATED, data };
    if (/gpt-image/.test(model || '')) o.usage = { input_tokens: promptWords, input_tokens_details: { text_tokens: promptWords, image_tokens: 0 }, output_tokens: 1056 * data.length, total_tokens: promptWords + 1056 * data.length };
    return o;
  }
  function checkImageParams(a, n, format) {
    if (!Number.isInteger(n) || n < 1 || n > 10) { sendJson(a.res, a.rec, 400, errorBody(`Invalid 'n': integer between 1 and 10 expected, got ${n}.`, 'invalid_request_error', 'n', 'invalid_value')); return false; }
    if (!['url', 'b64_json'].includes(format)) { sendJson(a.res, a.rec, 400, errorBody(`Invalid value: '${format}'. Supported values are: 'url' and 'b64_json'.`, 'invalid_request_error', 'response_format', 'invalid_value')); return false; }
    return true;
  }

  // POST /v1/images/generations (JSON; model optional, dall-e-2 when absent).
  async function imageGenerations(a) {
    const body = jsonBody(a); if (!body) return;
    const model = body.model || 'dall-e-2';
    const k = await modelRequest(a, model, { input: body.prompt }); if (!k) return;
    if (typeof body.prompt !== 'string' || !body.prompt) return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'prompt'.", 'invalid_request_error', 'prompt', 'missing_required_parameter'));
    const n = body.n ?? 1;
    const format = /gpt-image/.test(model) ? 'b64_json' : (body.response_format || 'url');
    if (!checkImageParams(a, n, format)) return;
    if (k.delay) { await sleep(k.delay); if (gone(a.res)) return; }
    return sendJson(a.res, a.rec, 200, imageAnswer(model, imageData(`gen:${body.prompt}:${body.size || ''}`, n, format, body.prompt, model), words(body.prompt).length));
  }

  // POST /v1/images/edits (image or image[] files, optional mask, prompt) and /variations (image).
  async function imageUploads(a, what) {
    const form = formOf(a); if (!form) return;
    const f = form.fields;
    const model = f.model || 'dall-e-2';
    const k = await modelRequest(a, model, { input: f.prompt || '' }); if (!k) return;
    const images = form.files.filter((x) => x.field === 'image' || x.field === 'image[]');
    if (!images.length) return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'image'.", 'invalid_request_error', 'image', 'missing_required_parameter'));
    if (what === 'edits' && !f.prompt) return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'prompt'.", 'invalid_request_error', 'prompt', 'missing_required_parameter'));
    const n = f.n === undefined ? 1 : Number(f.n);
    const format = /gpt-image/.test(model) ? 'b64_json' : (f.response_format || 'url');
    if (!checkImageParams(a, n, format)) return;
    const mask = form.files.find((x) => x.field === 'mask');
    const seed = `${what}:${f.prompt || ''}:${images.map((x) => x.sha256).join(',')}:${mask ? mask.sha256 : ''}`;
    return sendJson(a.res, a.rec, 200, imageAnswer(model, imageData(seed, n, format, f.prompt || '', model), words(f.prompt).length));
  }

  // POST /v1/moderations: input a string, strings, or multimodal parts; model optional.
  async function moderations(a) {
    const body = jsonBody(a); if (!body) return;
    const model = body.model || 'omni-moderation-latest';
    let inputs = body.input;
    const k = await modelRequest(a, model, { input: typeof inputs === 'string' ? inputs : '' }); if (!k) return;
    if (inputs === undefined || inputs === null || inputs === '') return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'input'.", 'invalid_request_error', 'input', 'missing_required_parameter'));
    if (!Array.isArray(inputs)) inputs = [inputs];
    // Multimodal parts ({type:"text",text}/{type:"image_url"}) are one input.
    if (inputs.some((x) => x && typeof x === 'object')) inputs = [inputs.filter((x) => x && x.type === 'text').map((x) => x.text).join(' ')];
    return sendJson(a.res, a.rec, 200, { id: newId('modr-'), model, results: inputs.map(moderationResult) });
  }

  function responseObject(id, body, model, status, text, cached = 0) {
    const itemId = `msg_${id.slice(5)}`;
    const inWords = words(responseInputText(body.input)).length + words(body.instructions).length;
    const outWords = words(text).length;
    return {
      id, object: 'response', created_at: CREATED, status, background: false, error: null, incomplete_details: null,
      instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null, model,
      output: status === 'completed' ? [{ id: itemId, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', annotations: [], logprobs: [], text }] }] : [],
      parallel_tool_calls: true, previous_response_id: body.previous_response_id ?? null,
      reasoning: { effort: null, summary: null }, service_tier: 'default', store: body.store !== false,
      temperature: body.temperature ?? 1, text: { format: { type: 'text' } }, tool_choice: 'auto', tools: body.tools || [], top_p: body.top_p ?? 1,
      truncation: 'disabled',
      usage: status === 'completed' ? { input_tokens: inWords, input_tokens_details: { cached_tokens: Math.min(cached, inWords) }, output_tokens: outWords, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: inWords + outWords } : null,
      user: null, metadata: body.metadata || {},
    };
  }

  // POST /v1/responses: a response object; stream=true -> named SSE events (response.created ...
  // response.completed, no [DONE]), each with a sequence_number. delay-MS waits before each event.
  async function responsesCreate(a) {
    const body = jsonBody(a); if (!body) return;
    const k = await modelRequest(a, body.model, { input: responseInputText(body.input) }); if (!k) return;
    const { res, rec } = a;
    if (body.input === undefined && !body.previous_response_id) return sendJson(res, rec, 400, errorBody("Missing required parameter: 'input'.", 'invalid_request_error', 'input', 'missing_required_parameter'));
    if (body.previous_response_id && !storedResponses.has(body.previous_response_id)) {
      return sendJson(res, rec, 400, errorBody(`Previous response with id '${body.previous_response_id}' not found.`, 'invalid_request_error', 'previous_response_id', 'previous_response_not_found'));
    }
    const model = body.model;
    const rmodel = k.dated ? `${model}-2025-04-14` : model;
    const id = newId('resp_');
    const { text, deltas } = responseReply(body);
    const done = responseObject(id, body, rmodel, 'completed', text, k.cached || 0);
    if (body.background === true) {
      // Background mode: answered at once with status "queued" (and stays so until cancelled).
      const queued = { ...responseObject(id, body, rmodel, 'queued', text), background: true };
      storedResponses.set(id, { response: queued, input: body.input });
      return sendJson(res, rec, 200, queued);
    }
    if (body.store !== false) storedResponses.set(id, { response: done, input: body.input });
    if (body.stream !== true) {
      if (k.delay) { await sleep(k.delay); if (gone(res)) return; }
      return sendJson(res, rec, 200, done);
    }
    const item = done.output[0];
    const pending = responseObject(id, body, rmodel, 'in_progress', text);
    const seq = [
      ['response.created', { response: pending }],
      ['response.in_progress', { response: pending }],
      ['response.output_item.added', { output_index: 0, item: { id: item.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } }],
      ['response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } }],
      ...deltas.map((d) => ['response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: d, logprobs: [] }]),
      ['response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text, logprobs: [] }],
      ['response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: item.content[0] }],
      ['response.output_item.done', { output_index: 0, item }],
      ['response.completed', { response: done }],
    ];
    startSse(res, rec);
    res.flushHeaders();
    for (let i = 0; i < seq.length; i++) {
      if (k.delay) await sleep(k.delay);
      if (k.die && i === 3) { await sleep(50); res.destroy(); return; }
      if (gone(res)) return;
      const big = { type: 'response.output_text.delta', sequence_number: i, item_id: item.id, output_index: 0, content_index: 0, delta: '@X@', logprobs: [] };
      if (!await hostileAt(res, rec, k, i, 'event: response.output_text.delta\n', JSON.stringify(big))) return;
      const [type, fields] = seq[i];
      await sendNamed(res, rec, type, { type, sequence_number: i, ...fields }, k);
    }
    if (k.endless !== undefined) {
      let n = seq.length;
      return endlessEvents(res, k, () => sendNamed(res, rec, 'response.output_text.delta',
        { type: 'response.output_text.delta', sequence_number: n++, item_id: item.id, output_index: 0, content_index: 0, delta: 'more ', logprobs: [] }, k));
    }
    res.end();
  }

  function noResponse(a, id) {
    return sendJson(a.res, a.rec, 404, errorBody(`Response with id '${id}' not found.`, 'invalid_request_error', null, null));
  }
  function responseGet(a, id) {
    const s = storedResponses.get(id);
    if (!s) return noResponse(a, id);
    return sendJson(a.res, a.rec, 200, s.response);
  }
  function responseDelete(a, id) {
    if (!storedResponses.delete(id)) return noResponse(a, id);
    return sendJson(a.res, a.rec, 200, { id, object: 'response', deleted: true });
  }
  // POST /v1/responses/{id}/cancel: only background responses can be cancelled.
  function responseCancel(a, id) {
    const s = storedResponses.get(id);
    if (!s) return noResponse(a, id);
    if (!s.response.background) return sendJson(a.res, a.rec, 400, errorBody('Only responses created with background=true can be cancelled.', 'invalid_request_error', null, null));
    s.response = { ...s.response, status: 'cancelled' };
    return sendJson(a.res, a.rec, 200, s.response);
  }
  function responseInputItems(a, id) {
    const s = storedResponses.get(id);
    if (!s) return noResponse(a, id);
    const items = (typeof s.input === 'string' ? [{ role: 'user', content: [{ type: 'input_text', text: s.input }] }] : s.input || [])
      .map((it, i) => ({ id: `msg_in_${i}_${id.slice(5, 13)}`, type: 'message', status: 'completed', ...it }));
    return sendJson(a.res, a.rec, 200, { object: 'list', data: items, first_id: items.length ? items[0].id : null, last_id: items.length ? items[items.length - 1].id : null, has_more: false });
  }

  // POST /v1/threads/runs (create a thread and run it): answered as a completed run with usage.
  function threadRun(a) {
    const body = jsonBody(a); if (!body) return;
    const msgs = (body.thread && Array.isArray(body.thread.messages)) ? body.thread.messages : [];
    const prompt = msgs.reduce((n, m) => n + words(typeof m.content === 'string' ? m.content : '').length, 0);
    const id = newId('run_');
    return sendJson(a.res, a.rec, 200, {
      id, object: 'thread.run', created_at: CREATED, assistant_id: body.assistant_id || null, thread_id: newId('thread_'),
      status: 'completed', model: body.model || 'gpt-4o', instructions: null, tools: [], metadata: {},
      usage: { prompt_tokens: prompt, completion_tokens: 7, total_tokens: prompt + 7 },
    });
  }

  // How the request authenticated, relative to m.backendKey: 'backend', 'other' or 'none'.
  function authKind(req) {
    const h = req.headers.authorization;
    if (!h) return 'none';
    return ctl.backendKey && h === `Bearer ${ctl.backendKey}` ? 'backend' : 'other';
  }

  // Files API (no model; used through passthrough rules).
  function filesCreate(a) {
    const form = formOf(a); if (!form) return;
    const part = a.rec.parts && a.rec.parts.find((x) => x.name === 'file' && x.filename !== null);
    if (!part) return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'file'.", 'invalid_request_error', 'file', 'missing_required_parameter'));
    if (!form.fields.purpose) return sendJson(a.res, a.rec, 400, errorBody("Missing required parameter: 'purpose'.", 'invalid_request_error', 'purpose', 'missing_required_parameter'));
    const id = newId('file-');
    const file = { object: 'file', id, purpose: form.fields.purpose, filename: part.filename, bytes: part.data.length, created_at: CREATED, expires_at: null, status: 'processed', status_details: null };
    storedFiles.set(id, { file, data: Buffer.from(part.data) });
    return sendJson(a.res, a.rec, 200, file);
  }
  // GET /v1/files: OpenAI's list, plus `echo` (what the mock got: method, path, query, and how the
  // request authenticated: auth 'backend' when Authorization was "Bearer <m.backendKey>").
  function filesList(a) {
    const q = a.url.searchParams;
    let data = [...storedFiles.values()].map((x) => x.file);
    if (q.get('purpose')) data = data.filter((f) => f.purpose === q.get('purpose'));
    if (q.get('order') === 'asc') data.reverse();
    const limit = Number(q.get('limit') || 10000);
    const page = data.slice(0, limit);
    return sendJson(a.res, a.rec, 200, {
      object: 'list', data: page, first_id: page.length ? page[0].id : null, last_id: page.length ? page[page.length - 1].id : null, has_more: data.length > page.length,
      echo: { method: a.req.method, path: a.url.pathname, query: a.url.search.replace(/^\?/, ''), auth: authKind(a.req), authorized_with_backend_key: authKind(a.req) === 'backend' },
    });
  }
  function noFile(a, id) { return sendJson(a.res, a.rec, 404, errorBody(`No such File object: ${id}`, 'invalid_request_error', 'id', null)); }
  function fileGet(a, id) {
    if (id === 'echo-credentials') return sendJson(a.res, a.rec, 400, errorBody(echoedCredentials(a.req, id), 'invalid_request_error', 'id', null));
    const s = storedFiles.get(id); return s ? sendJson(a.res, a.rec, 200, s.file) : noFile(a, id); }
  function fileDelete(a, id) { return storedFiles.delete(id) ? sendJson(a.res, a.rec, 200, { object: 'file', id, deleted: true }) : noFile(a, id); }
  function fileContent(a, id) {
    const s = storedFiles.get(id);
    if (!s) return noFile(a, id);
    a.rec.status = 200; a.rec.response = { bytes: s.data.length };
    a.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': s.data.length, 'Content-Disposition': `attachment; filename="${s.file.filename}"` });
    return a.res.end(s.data);
  }

  const where = await listen(server, port, host);
  const m = rc.attach({
    port: where.port,
    host,
    base: where.base,
    url: `${where.base}/v1`,
    server,
    get failNext() { return ctl.failNext; }, set failNext(v) { ctl.failNext = v; },
    get failEvery() { return ctl.failEvery; }, set failEvery(v) { ctl.failEvery = v; ctl.everyCount = 0; },
    get failStatus() { return ctl.failStatus; }, set failStatus(v) { ctl.failStatus = v; },
    get retryAfter() { return ctl.retryAfter; }, set retryAfter(v) { ctl.retryAfter = v; },
    get latencyMs() { return ctl.latencyMs; }, set latencyMs(v) { ctl.latencyMs = v; },
    get modelsStatus() { return ctl.modelsStatus; }, set modelsStatus(v) { ctl.modelsStatus = v; },
    get backendKey() { return ctl.backendKey; }, set backendKey(v) { ctl.backendKey = v; },
    storedResponses,
    storedFiles,
  });

  return m;
}

module.exports = {
  startMock, embed, embeddingBase64, replyFor, replyChunks, knobs, TOOL_ARGS, TOOL_ARG_PARTS,
  speechAudio, AUDIO_TYPES, transcriptText, transcriptAnswer, imageBytes, moderationResult, responseReply,
  responseInputText, parseMultipart, multipartBoundary, formSummary, sha256, tokenizeCount,
};

if (require.main === module) {
  runCommand('mock-openai', 'node scripts/mock-openai.js [--port N] [--host H] [--quiet]',
    (opt, has) => startMock({ port: Number(opt('--port', 9000)), host: opt('--host', '127.0.0.1'), log: !has('--quiet'), record: false }));
}
