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
//   m.waitFor(pred, ms) resolves with the first request matching pred (waits up to ms)
//   m.waitClosed(req, ms) resolves when that request's socket has closed (rejects after ms)
//   await m.close()
//
// CLI: node scripts/mock-openai.js [--port N] [--host H] [--quiet]
//   (the CLI logs each request to stderr unless --quiet, and records nothing in memory)
//
// Endpoints (shapes as OpenAI's): POST /v1/chat/completions, POST /v1/completions,
// POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}.
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
//   delay-MS         waits MS before each streamed chunk (and before a non-stream answer)
//   retry-after-S    with error-429: the Retry-After header is S
//   slow-body-MS     non-stream: sends the headers (with Content-Length) and the first half of the JSON
//                    body at once, the rest MS later (total-time tests)
// Anything else: a normal answer.
//
// Per-mock switches (properties of the handle, changeable at any time; fault injection that does not
// depend on the model name):
//   m.failNext = N      the next N inference requests (POST chat/completions/embeddings) are answered
//                       with m.failStatus instead of their normal answer (Infinity: all of them); each
//                       failed request decrements it
//   m.failStatus = 500  500 (server_error), 502, 503 (overloaded) or 429 (rate_limit_exceeded with
//                       Retry-After: m.retryAfter)
//   m.retryAfter = '1'  Retry-After value sent with every 429 (null: no header)
//   m.latencyMs = 0     extra wait before answering any inference request (forced failures included)
//   m.modelsStatus = 200  status of GET /v1/models and /v1/models/{id} (health checks): non-2xx ->
//                       an error body with that status
const http = require('node:http');
const crypto = require('node:crypto');

const CREATED = 1700000000;

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function words(s) { return String(s || '').split(/\s+/).filter(Boolean); }

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
  if ((r = /delay-(\d+)/.exec(m))) k.delay = Number(r[1]);
  if ((r = /retry-after-(\d+)/.exec(m))) k.retryAfter = r[1];
  if ((r = /slow-body-(\d+)/.exec(m))) k.slowBody = Number(r[1]);
  return k;
}

function errorBody(message, type, param, code) {
  return { error: { message, type, param: param ?? null, code: code ?? null } };
}

// record = false: keep nothing (for long benchmark runs).
async function startMock({ port = 0, host = '127.0.0.1', log = false, record = true } = {}) {
  const requests = [];
  const connections = [];
  const events = [];
  const sockets = new Set();
  let connSeq = 0;
  let reqSeq = 0;
  let closedCount = 0;
  const waiters = new Set();

  function notify() { for (const w of [...waiters]) w(); }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = raw;
      if (raw.length) { try { body = JSON.parse(raw); } catch { body = raw; } }
      const conn = req.socket._mockConn;
      const rec = {
        id: ++reqSeq, conn: conn ? conn.id : null, method: req.method, path: req.url,
        headers: { ...req.headers }, rawBody: raw, body,
        model: body && typeof body === 'object' ? body.model : undefined,
        time: Date.now(), socketClosedAt: null, finishedAt: null, aborted: false, chunksSent: 0,
        response: null, status: null,
      };
      if (conn) { conn.requests.push(rec.id); conn.recs.push(rec); if (conn.closedAt) rec.socketClosedAt = conn.closedAt; }
      if (record) requests.push(rec);
      if (record) events.push({ type: 'request', conn: rec.conn, req: rec.id, time: rec.time, method: req.method, path: req.url, model: rec.model });
      if (log) console.error(`mock: ${req.method} ${req.url} model=${rec.model}`);
      res.on('finish', () => {
        rec.finishedAt = Date.now();
        if (conn) { const i = conn.recs.indexOf(rec); if (i >= 0) conn.recs.splice(i, 1); }
        notify();
      });
      notify();
      handle(req, res, rec).catch((e) => {
        if (log) console.error('mock: handler error', e);
        if (!res.headersSent) { try { sendJson(res, rec, 500, errorBody(String(e && e.message), 'server_error')); } catch { } } else res.destroy();
      });
    });
  });
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 60000;
  server.requestTimeout = 0;

  server.on('connection', (sock) => {
    const c = { id: ++connSeq, openedAt: Date.now(), closedAt: null, remotePort: sock.remotePort, requests: [] };
    Object.defineProperty(c, 'recs', { value: [], enumerable: false });
    sock._mockConn = c;
    sockets.add(sock);
    if (record) { connections.push(c); events.push({ type: 'open', conn: c.id, time: c.openedAt }); }
    sock.on('close', () => {
      c.closedAt = Date.now();
      closedCount++;
      for (const rec of c.recs) {
        if (!rec.socketClosedAt) rec.socketClosedAt = c.closedAt;
        if (!rec.finishedAt) rec.aborted = true;
      }
      c.recs.length = 0;
      sockets.delete(sock);
      if (record) events.push({ type: 'close', conn: c.id, time: c.closedAt });
      notify();
    });
  });

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
    if (obj !== '[DONE]') { rec.response.push(obj); rec.chunksSent++; }
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

  // Per-mock switches (see the header).
  const ctl = { failNext: 0, failStatus: 500, retryAfter: '1', latencyMs: 0, modelsStatus: 200 };
  function retryAfterHeader(value) { return value === null || value === undefined ? {} : { 'Retry-After': String(value) }; }

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
    if (ctl.failNext > 0) {
      ctl.failNext--;
      const st = ctl.failStatus;
      rec.forcedFailure = st;
      if (st === 429) {
        return sendJson(res, rec, 429, errorBody(`Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1.`, 'requests', null, 'rate_limit_exceeded'), retryAfterHeader(ctl.retryAfter));
      }
      if (st === 503) return sendJson(res, rec, 503, errorBody(`The engine is currently overloaded (model ${model}), please try again later.`, 'server_error', null, 'overloaded'));
      return sendJson(res, rec, st, errorBody(`The server had an error while processing your request (model ${model}).`, 'server_error'));
    }
    if (k.hang) return; // never answer; the socket stays until the client closes it
    if (k.slowFirstByte) { await sleep(k.slowFirstByte); if (gone(res)) return; }

    const host = req.headers.host || `127.0.0.1:${server.address().port}`;
    if (k.error) {
      switch (k.error) {
        case 'html': {
          const page = `<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>No route for ${p} on http://${host} (model ${model})</p><hr>nginx</body></html>\n`;
          rec.status = 404; rec.response = page;
          res.writeHead(404, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) });
          return res.end(page);
        }
        case 400:
          return sendJson(res, rec, 400, errorBody(`Invalid value for 'temperature': model '${model}' does not support temperature=7.`, 'invalid_request_error', 'temperature', 'invalid_value'));
        case 'long400': {
          // Like a validation error that quotes the input: long, and not ASCII.
          const input = lastUserText(body.messages) || promptText(body.prompt);
          return sendJson(res, rec, 400, errorBody(`1 validation error for model ${model}: messages.1.content: input is not allowed here: '${input}'`, 'invalid_request_error', 'messages', 'invalid_value'));
        }
        case 'leaky400':
          return sendJson(res, rec, 400, errorBody(`Invalid request to http://${host}${p} for model '${model}': 'temperature' is invalid.`, 'invalid_request_error', 'temperature', 'invalid_value'));
        case 404:
          return sendJson(res, rec, 404, errorBody(`The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', null, 'model_not_found'));
        case 429:
          return sendJson(res, rec, 429, errorBody(`Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1.`, 'requests', null, 'rate_limit_exceeded'), retryAfterHeader(k.retryAfter ?? ctl.retryAfter));
        case 500:
          return sendJson(res, rec, 500, errorBody(`The server had an error while processing your request to http://${host}${p} (model ${model}).`, 'server_error'));
        case 503:
          return sendJson(res, rec, 503, errorBody(`The engine is currently overloaded (model ${model}), please try again later.`, 'server_error', null, 'overloaded'));
        default: break;
      }
    }

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
        const message = k.tool
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
      if (k.tool) {
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
      await sendEvent(res, rec, seq[i], k);
    }
    if (gone(res)) return;
    await sendEvent(res, rec, '[DONE]', k);
    res.end();
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const actualPort = server.address().port;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;

  const m = {
    port: actualPort,
    host,
    base: `http://${hostForUrl}:${actualPort}`,
    url: `http://${hostForUrl}:${actualPort}/v1`,
    server,
    requests,
    connections,
    events,
    get closedCount() { return closedCount; },
    get failNext() { return ctl.failNext; }, set failNext(v) { ctl.failNext = v; },
    get failStatus() { return ctl.failStatus; }, set failStatus(v) { ctl.failStatus = v; },
    get retryAfter() { return ctl.retryAfter; }, set retryAfter(v) { ctl.retryAfter = v; },
    get latencyMs() { return ctl.latencyMs; }, set latencyMs(v) { ctl.latencyMs = v; },
    get modelsStatus() { return ctl.modelsStatus; }, set modelsStatus(v) { ctl.modelsStatus = v; },
    get openCount() { return sockets.size; },
    reset() { requests.length = 0; events.length = 0; },
    last(pred = () => true) { for (let i = requests.length - 1; i >= 0; i--) if (pred(requests[i])) return requests[i]; return undefined; },
    // Resolves with the first recorded request for which pred(rec) is true.
    waitFor(pred, ms = 5000) {
      return waitCond(() => requests.find(pred), ms, 'mock request');
    },
    // Resolves (with the close time) once the socket that carried rec has closed.
    waitClosed(rec, ms = 5000) {
      return waitCond(() => rec.socketClosedAt, ms, `mock request ${rec.id} socket close`);
    },
    close() {
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };

  function waitCond(fn, ms, what) {
    return new Promise((resolve, reject) => {
      const v = fn();
      if (v) return resolve(v);
      const check = () => {
        const x = fn();
        if (x) { clearTimeout(t); waiters.delete(check); resolve(x); }
      };
      const t = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
      waiters.add(check);
    });
  }

  return m;
}

module.exports = { startMock, embed, embeddingBase64, replyFor, replyChunks, knobs, TOOL_ARGS, TOOL_ARG_PARTS };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
  if (args.includes('-h') || args.includes('--help')) {
    console.log('usage: node scripts/mock-openai.js [--port N] [--host H] [--quiet]');
    process.exit(0);
  }
  startMock({ port: Number(opt('--port', 9000)), host: opt('--host', '127.0.0.1'), log: !args.includes('--quiet'), record: false }).then((m) => {
    console.error(`mock-openai listening on ${m.url}`);
    const stop = () => m.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }, (e) => { console.error(`mock-openai: ${e.message}`); process.exit(1); });
}
