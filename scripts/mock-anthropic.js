#!/usr/bin/env node
'use strict';
// A mock Anthropic Messages API server for airouter's tests (node built-ins only), as faithful to
// the real API as the tests need: the same headers, validation, error shape, Message object and SSE
// event order (see /work/shared/docs/protocols.md §7).
//
// Module use (same handle as scripts/mock-openai.js's startMock):
//   const { startMock } = require('./scripts/mock-anthropic.js');
//   const m = await startMock({ port: 0, apiKey: 'sk-ant-...' });
//   m.port, m.url ("http://127.0.0.1:PORT/v1", what goes in a backend's `url`), m.base (no /v1)
//   m.apiKey     when set, x-api-key must equal it (else 401 authentication_error); when null, any
//                non-empty x-api-key is accepted
//   m.requests   every request received: { id, conn, method, path, headers, rawBody, body, model,
//                time, socketClosedAt, finishedAt, aborted, chunksSent, status, response }
//                (`response`: the JSON object sent, or for a stream the list of SSE events sent as
//                 { event, data } objects; `error`: the Anthropic error object when one was sent)
//   m.connections every TCP connection: { id, openedAt, closedAt, remotePort, requests }
//   m.events     [{ type: 'open'|'close'|'request', conn, time, ... }]
//   m.closedCount, m.openCount
//   m.reset(), m.last(pred), m.waitFor(pred, ms), m.waitClosed(rec, ms), await m.close()
//
// CLI: node scripts/mock-anthropic.js [--port N] [--host H] [--api-key K] [--quiet]
//
// Endpoints: POST /v1/messages, POST /v1/messages/count_tokens ({"input_tokens": inputTokens(body)};
// the same header checks, model and messages required, max_tokens not), GET /v1/models (List Models, same key and version checks;
// m.modelsStatus = N answers it with that error status instead) — anything else: 404
// not_found_error; other methods: 405.
//
// Validation, in Anthropic's order and words (errors are {"type":"error","error":{"type","message"},
// "request_id"} with a `request-id` response header, like the real API):
//   x-api-key missing -> 401 authentication_error "x-api-key header is required"
//   x-api-key wrong (m.apiKey set) -> 401 authentication_error "invalid x-api-key"
//   anthropic-version missing -> 400 "anthropic-version: header is required"; unknown -> 400
//   body not JSON / not an object -> 400; unknown top-level fields -> 400 "X: Extra inputs are not
//   permitted" (so OpenAI-only parameters leaking through are caught)
//   model, max_tokens (integer >= 1), messages (non-empty array) required: "X: Field required"
//   messages: role "user" or "assistant" only ("system" gets Anthropic's top-level-system message);
//   the first must be "user"; roles must alternate; content a non-empty string or a non-empty array
//   of known blocks (text, image with a base64 source of an accepted media type / url source,
//   tool_use in assistant turns, tool_result in user turns); every tool_use must be answered by a
//   tool_result in the next message and every tool_result must answer a tool_use of the previous one
//   system: string or array of text blocks; temperature and top_p in 0..1; top_k integer;
//   stop_sequences array of strings; stream boolean; metadata {user_id}; tools [{name, description?,
//   input_schema {type:"object"}}]; tool_choice {type: auto|any|none|tool(+name)} (only with tools)
//
// Answers (deterministic, derived from the request):
//   text: "you said: " + the text of the last user message (text blocks joined with a space); when
//   that message carries tool_result blocks: "tool said: " + their contents joined with "; ".
//   Tokens are whitespace-separated words. max_tokens N smaller than the reply: the reply is cut to N
//   words, stop_reason "max_tokens". If the reply contains one of stop_sequences it is cut before it
//   (the sequence is not included), stop_reason "stop_sequence", stop_sequence = the matched string.
//   Otherwise stop_reason "end_turn".
//   tool_use: when tools are given, tool_choice is not none and (tool_choice is any/tool, or the last
//   user text mentions "weather" or "tool"), and the last user message is not a tool result: a text
//   block "Let me check that." then a tool_use block for the chosen tool (tool_choice.name, else the
//   first tool) with input TOOL_INPUT; stop_reason "tool_use". With tool_choice any/tool the text
//   block is omitted (as Claude does when forced).
//   usage: input_tokens = words of system + all text / tool_result contents (+1 per image, + words of
//   tool_use inputs); output_tokens = words of the reply text (+ 10 per tool_use).
//   Streaming: message_start (output_tokens 1), content_block_start, ping (after the first block's
//   start, like the real API), content_block_delta (text_delta one word each; for tool_use an empty
//   input_json_delta first, then TOOL_JSON_PARTS), content_block_stop, message_delta (stop_reason,
//   stop_sequence, cumulative usage.output_tokens), message_stop. Events are `event: NAME` +
//   `data: JSON` + blank line; the JSON's type repeats the name.
//
// Knobs, by substrings of the requested model name:
//   stop-sequence  the reply stops (stop_reason "stop_sequence") after half of its words, as if
//                  the first of stop_sequences had been generated there (needs stop_sequences)
//   max-tokens     the reply is cut after half of its words (at most max_tokens), stop_reason
//                  "max_tokens"
//   multi-tool     a tool answer has two tool_use blocks (second with TOOL_INPUT2, on the second
//                  tool if there is one)
//   error-400      400 invalid_request_error (message names the model)
//   error-401      401 authentication_error "invalid x-api-key"
//   error-403      403 permission_error
//   error-404      404 not_found_error "model: MODEL"
//   error-429      429 rate_limit_error with retry-after (m.retryAfter, default "7"; retry-after-S in
//                  the model name: S) and anthropic-ratelimit-* headers
//   error-500      500 api_error "Internal server error" (mentions the model)
//   error-529      529 overloaded_error "Overloaded"
//   stream-error   (stream) after message_start and 2 text deltas: event: error with
//                  overloaded_error, then the stream ends; (non-stream) 529
//   stream-overloaded  (stream) a 200 whose first and only event is event: error with
//                  overloaded_error (with retry-after-S in the name, the 200 carries
//                  retry-after: S); (non-stream) 529
//   no-args-tool   the tool_use input is {}: streamed as content_block_start (input {}) and one
//                  input_json_delta with partial_json "", as the API does for a tool without
//                  arguments
//   slow-stream[-NxMS]  the text is "w0 w1 ... w(N-1)" (default N=50), one delta every MS ms
//                  (default 100); non-stream: answered after N*MS ms
//   slow-first-byte[-MS]  waits MS (default 3000) before answering anything
//   hang           never answers
//   delay-MS       waits MS before each streamed event (and before a non-stream answer)
//   cache-usage    usage also reports prompt caching: cache_creation_input_tokens 7 and
//                  cache_read_input_tokens 100 (in the Message and in message_start)
//   dated          the Message's model is the requested name + "-20241022" (as the API resolves an
//                  alias to a dated snapshot)
//   huge-delta-N   (stream) after 2 text deltas, one content_block_delta whose text is N MiB of "x"
//                  (written as the socket takes it; rec.bigBytes counts them), then the rest
const http = require('node:http');
const { sleep, listen, httpRecorder, runCommand } = require('./mock-lib.js');

const TOOL_INPUT = { location: 'Paris, France', unit: 'celsius' };
const TOOL_INPUT2 = { location: 'Tokyo, Japan', unit: 'celsius' };
const TOOL_JSON_PARTS = (input) => {
  const s = JSON.stringify(input);
  // Split in uneven pieces, like the real API (splits inside keys and values).
  const out = [];
  const cuts = [3, 11, 19, 26, 33, 41];
  let prev = 0;
  for (const c of cuts) { if (c < s.length) { out.push(s.slice(prev, c)); prev = c; } }
  out.push(s.slice(prev));
  return out;
};
const MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];
const TOP_FIELDS = new Set(['model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'temperature', 'top_p', 'top_k',
  'stream', 'metadata', 'tools', 'tool_choice', 'thinking', 'service_tier', 'container', 'mcp_servers']);

function words(s) { return String(s || '').split(/\s+/).filter(Boolean); }
function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

// Chunks a text streams as: word + following whitespace.
function replyChunks(text) {
  const out = [];
  const re = /\S+\s*/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push(m[0]);
  return out;
}

function blocksOf(content) {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content : [];
}

function toolResultText(c) {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.filter((b) => b && b.type === 'text').map((b) => b.text).join(' ');
  return '';
}

function systemText(system) {
  if (typeof system === 'string') return system;
  if (Array.isArray(system)) return system.map((b) => b.text).join('\n');
  return '';
}

function knobs(model) {
  const m = String(model || '');
  const k = {};
  for (const e of ['400', '401', '403', '404', '429', '500', '529']) if (m.includes(`error-${e}`)) k.error = Number(e);
  let r;
  if (m.includes('stop-sequence')) k.stopSeq = true;
  if (m.includes('max-tokens')) k.maxTokens = true;
  if (m.includes('multi-tool')) k.multiTool = true;
  if (m.includes('stream-error')) k.streamError = true;
  if (m.includes('stream-overloaded')) k.streamOverloaded = true;
  if (m.includes('no-args-tool')) k.noArgsTool = true;
  if ((r = /slow-stream(?:-(\d+)x(\d+))?/.exec(m))) k.slowStream = { n: r[1] ? Number(r[1]) : 50, ms: r[2] ? Number(r[2]) : 100 };
  if ((r = /slow-first-byte(?:-(\d+))?/.exec(m))) k.slowFirstByte = r[1] ? Number(r[1]) : 3000;
  if (m.includes('hang')) k.hang = true;
  if (m.includes('dated')) k.dated = true;
  if (m.includes('cache-usage')) k.cacheUsage = true;
  if ((r = /delay-(\d+)/.exec(m))) k.delay = Number(r[1]);
  if ((r = /retry-after-(\d+)/.exec(m))) k.retryAfter = r[1];
  if ((r = /huge-delta-(\d+)/.exec(m))) k.hugeDelta = Number(r[1]) * 1024 * 1024;
  return k;
}

// Validates a Messages request body like the API does. Returns null or [status, type, message].
function validate(body) {
  const bad = (message) => [400, 'invalid_request_error', message];
  if (!isObj(body)) return bad('There was an error parsing the body of your request. Make sure it is valid JSON.');
  for (const key of Object.keys(body)) if (!TOP_FIELDS.has(key)) return bad(`${key}: Extra inputs are not permitted`);
  if (body.model === undefined) return bad('model: Field required');
  if (typeof body.model !== 'string' || !body.model) return bad('model: Input should be a valid string');
  if (body.max_tokens === undefined) return bad('max_tokens: Field required');
  if (!Number.isInteger(body.max_tokens)) return bad('max_tokens: Input should be a valid integer');
  if (body.max_tokens < 1) return bad('max_tokens: Input should be greater than or equal to 1');
  if (body.messages === undefined) return bad('messages: Field required');
  if (!Array.isArray(body.messages)) return bad('messages: Input should be a valid list');
  if (body.messages.length === 0) return bad('messages: at least one message is required');
  if (body.system !== undefined) {
    if (typeof body.system !== 'string' && !(Array.isArray(body.system) && body.system.every((b) => isObj(b) && b.type === 'text' && typeof b.text === 'string'))) {
      return bad('system: Input should be a valid string or a list of text blocks');
    }
  }
  for (const [f, lo, hi] of [['temperature', 0, 1], ['top_p', 0, 1]]) {
    const v = body[f];
    if (v === undefined) continue;
    if (typeof v !== 'number') return bad(`${f}: Input should be a valid number`);
    if (v < lo || v > hi) return bad(`${f}: range: ${lo}..${hi}`);
  }
  if (body.top_k !== undefined && !Number.isInteger(body.top_k)) return bad('top_k: Input should be a valid integer');
  if (body.stream !== undefined && typeof body.stream !== 'boolean') return bad('stream: Input should be a valid boolean');
  if (body.stop_sequences !== undefined && !(Array.isArray(body.stop_sequences) && body.stop_sequences.every((s) => typeof s === 'string'))) {
    return bad('stop_sequences: Input should be a valid list of strings');
  }
  if (body.metadata !== undefined) {
    if (!isObj(body.metadata)) return bad('metadata: Input should be a valid dictionary');
    for (const key of Object.keys(body.metadata)) if (key !== 'user_id') return bad(`metadata.${key}: Extra inputs are not permitted`);
  }
  const toolNames = new Set();
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) return bad('tools: Input should be a valid list');
    for (let i = 0; i < body.tools.length; i++) {
      const t = body.tools[i];
      if (!isObj(t)) return bad(`tools.${i}: Input should be a valid dictionary`);
      for (const key of Object.keys(t)) if (!['name', 'description', 'input_schema', 'type', 'cache_control'].includes(key)) return bad(`tools.${i}.custom.${key}: Extra inputs are not permitted`);
      if (typeof t.name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(t.name)) return bad(`tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
      if (!isObj(t.input_schema)) return bad(`tools.${i}.custom.input_schema: Field required`);
      if (t.input_schema.type !== 'object') return bad(`tools.${i}.custom.input_schema.type: Input should be 'object'`);
      if (t.description !== undefined && typeof t.description !== 'string') return bad(`tools.${i}.custom.description: Input should be a valid string`);
      toolNames.add(t.name);
    }
  }
  if (body.tool_choice !== undefined) {
    const tc = body.tool_choice;
    if (!isObj(tc) || !['auto', 'any', 'tool', 'none'].includes(tc.type)) return bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'");
    if (tc.type === 'tool') {
      if (typeof tc.name !== 'string') return bad('tool_choice.tool.name: Field required');
      if (!toolNames.has(tc.name)) return bad(`tool_choice.tool.name: Tool '${tc.name}' not found in provided tools`);
    }
    if (!body.tools && tc.type !== 'none') return bad('tool_choice may only be specified while providing tools.');
  }
  let prevToolUses = [];
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    if (!isObj(m)) return bad(`messages.${i}: Input should be a valid dictionary`);
    for (const key of Object.keys(m)) if (!['role', 'content'].includes(key)) return bad(`messages.${i}.${key}: Extra inputs are not permitted`);
    if (m.role === 'system') {
      return bad('messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.');
    }
    if (m.role !== 'user' && m.role !== 'assistant') return bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    if (i === 0 && m.role !== 'user') return bad('messages: first message must use the "user" role');
    if (i > 0 && body.messages[i - 1].role === m.role) {
      return bad(`messages: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row`);
    }
    const last = i === body.messages.length - 1;
    if (m.content === undefined) return bad(`messages.${i}.content: Field required`);
    if (typeof m.content === 'string') {
      if (!m.content.length && !(last && m.role === 'assistant')) return bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    } else if (Array.isArray(m.content)) {
      if (!m.content.length && !(last && m.role === 'assistant')) return bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    } else return bad(`messages.${i}.content: Input should be a valid string or a list of content blocks`);
    const blocks = blocksOf(m.content);
    const results = [];
    const uses = [];
    for (let j = 0; j < blocks.length; j++) {
      const b = blocks[j];
      const where = `messages.${i}.content.${j}`;
      if (!isObj(b)) return bad(`${where}: Input should be a valid dictionary`);
      switch (b.type) {
        case 'text':
          if (typeof b.text !== 'string') return bad(`${where}.text.text: Field required`);
          if (!b.text.length) return bad(`${where}.text: text content blocks must be non-empty`);
          break;
        case 'image': {
          const s = b.source;
          if (!isObj(s)) return bad(`${where}.image.source: Field required`);
          if (s.type === 'base64') {
            if (!MEDIA_TYPES.includes(s.media_type)) return bad(`${where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`);
            if (typeof s.data !== 'string' || !s.data.length || !/^[A-Za-z0-9+/]+={0,2}$/.test(s.data) || s.data.length % 4 !== 0) {
              return bad(`${where}.image.source.base64: The image data is not valid base64.`);
            }
          } else if (s.type === 'url') {
            if (typeof s.url !== 'string' || !/^https?:\/\//.test(s.url)) return bad(`${where}.image.source.url.url: Input should be a valid URL`);
          } else return bad(`${where}.image.source: Input tag '${s.type}' found using 'type' does not match any of the expected tags: 'base64', 'url'`);
          break;
        }
        case 'tool_use':
          if (m.role !== 'assistant') return bad(`${where}: tool_use blocks can only be in assistant messages`);
          if (typeof b.id !== 'string' || !b.id) return bad(`${where}.tool_use.id: Field required`);
          if (typeof b.name !== 'string' || !b.name) return bad(`${where}.tool_use.name: Field required`);
          if (!isObj(b.input)) return bad(`${where}.tool_use.input: Input should be a valid dictionary`);
          uses.push(b.id);
          break;
        case 'tool_result':
          if (m.role !== 'user') return bad(`${where}: tool_result blocks can only be in user messages`);
          if (typeof b.tool_use_id !== 'string') return bad(`${where}.tool_result.tool_use_id: Field required`);
          if (b.content !== undefined && typeof b.content !== 'string' && !Array.isArray(b.content)) return bad(`${where}.tool_result.content: Input should be a valid string or list`);
          results.push(b.tool_use_id);
          break;
        default:
          return bad(`${where}: Input tag '${b.type}' found using 'type' does not match any of the expected tags`);
      }
    }
    // Pairing of tool_use (previous assistant turn) and tool_result (this user turn).
    for (const id of results) {
      if (!prevToolUses.includes(id)) {
        return bad(`messages.${i}.content.0: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
      }
    }
    const missing = prevToolUses.filter((id) => !results.includes(id));
    if (missing.length) {
      return bad(`messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
    }
    prevToolUses = uses;
  }
  if (prevToolUses.length) {
    return bad(`messages.${body.messages.length - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${prevToolUses.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
  }
  return null;
}

function inputTokens(body) {
  let n = words(systemText(body.system)).length;
  for (const m of body.messages) {
    for (const b of blocksOf(m.content)) {
      if (b.type === 'text') n += words(b.text).length;
      else if (b.type === 'image') n += 1;
      else if (b.type === 'tool_result') n += words(toolResultText(b.content)).length;
      else if (b.type === 'tool_use') n += words(JSON.stringify(b.input)).length;
    }
  }
  return n;
}

// The answer for a validated request: { content: [blocks], stop_reason, stop_sequence, usage }.
function answerFor(body, k) {
  const lastUser = [...body.messages].reverse().find((m) => m.role === 'user');
  const blocks = blocksOf(lastUser.content);
  const results = blocks.filter((b) => b.type === 'tool_result');
  const userText = blocks.filter((b) => b.type === 'text').map((b) => b.text).join(' ');
  const tc = body.tool_choice || { type: 'auto' };
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const input = inputTokens(body);
  const wantTool = tools.length && tc.type !== 'none' && !results.length &&
    (tc.type === 'any' || tc.type === 'tool' || /weather|tool/i.test(userText));
  if (wantTool) {
    const content = [];
    if (tc.type === 'auto') content.push({ type: 'text', text: 'Let me check that.' });
    const first = tc.type === 'tool' ? tc.name : tools[0].name;
    content.push({ type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: first, input: k.noArgsTool ? {} : TOOL_INPUT });
    if (k.multiTool) content.push({ type: 'tool_use', id: 'toolu_01B77x3kfa2mZ0aa81p2x7', name: (tools[1] || tools[0]).name, input: TOOL_INPUT2 });
    const out = content.reduce((n, b) => n + (b.type === 'text' ? words(b.text).length : 10), 0);
    return { content, stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: input, output_tokens: out } };
  }
  let text;
  if (k.slowStream) text = Array.from({ length: k.slowStream.n }, (_, i) => `w${i}`).join(' ');
  else if (results.length) text = `tool said: ${results.map((b) => toolResultText(b.content)).join('; ')}`;
  else text = `you said: ${userText}`;
  let stop = 'end_turn';
  let seq = null;
  const stops = Array.isArray(body.stop_sequences) ? body.stop_sequences : [];
  // Natural stop sequence hit: the earliest one in the text.
  let at = -1;
  for (const s of stops) {
    const i = s ? text.indexOf(s) : -1;
    if (i >= 0 && (at < 0 || i < at)) { at = i; seq = s; }
  }
  if (at >= 0) { text = text.slice(0, at); stop = 'stop_sequence'; }
  let chunks = replyChunks(text);
  if (k.stopSeq && stops.length && stop !== 'stop_sequence') {
    chunks = chunks.slice(0, Math.max(1, chunks.length >> 1));
    text = chunks.join('');
    stop = 'stop_sequence'; seq = stops[0];
  }
  let limit = body.max_tokens;
  if (k.maxTokens) limit = Math.min(limit, Math.max(1, chunks.length >> 1));
  if (chunks.length > limit) {
    chunks = chunks.slice(0, limit);
    text = chunks.join('');
    stop = 'max_tokens'; seq = null;
  }
  return {
    content: [{ type: 'text', text }], stop_reason: stop, stop_sequence: seq,
    usage: { input_tokens: input, output_tokens: words(text).length },
  };
}

async function startMock({ port = 0, host = '127.0.0.1', log = false, record = true, apiKey = null } = {}) {
  const ctl = { apiKey, retryAfter: '7', modelsStatus: 0 };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = raw;
      let parsed = false;
      if (raw.length) { try { body = JSON.parse(raw); parsed = true; } catch { body = raw; } }
      const rec = rc.newRecord(req, { rawBody: raw, body, parsed, model: isObj(body) ? body.model : undefined, error: null });
      if (log) console.error(`mock-anthropic: ${req.method} ${req.url} model=${rec.model}`);
      rc.add(req, res, rec);
      handle(req, res, rec).catch((e) => {
        if (log) console.error('mock-anthropic: handler error', e);
        if (!res.headersSent) { try { sendError(res, rec, 500, 'api_error', 'Internal server error'); } catch { } } else res.destroy();
      });
    });
  });
  const rc = httpRecorder(server, { record });
  const notify = rc.notify;

  const requestId = (rec) => `req_011CMock${String(rec.id).padStart(6, '0')}`;

  function sendJson(res, rec, status, obj, extraHeaders = {}) {
    const s = JSON.stringify(obj);
    rec.status = status;
    rec.response = obj;
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(s),
      'request-id': requestId(rec),
      'anthropic-organization-id': '00000000-0000-0000-0000-000000000000',
      ...extraHeaders,
    });
    res.end(s);
  }

  function sendError(res, rec, status, type, message, extraHeaders = {}) {
    rec.error = { type, message };
    return sendJson(res, rec, status, { type: 'error', error: { type, message }, request_id: requestId(rec) }, extraHeaders);
  }

  function gone(res) { return res.destroyed || res.socket === null || (res.socket && res.socket.destroyed); }

  // Writes piece; waits until the socket takes more. False once the client has gone.
  async function writeFlowing(res, piece) {
    if (gone(res)) return false;
    if (!res.write(piece)) {
      await new Promise((resolve) => {
        const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
        res.on('drain', done);
        res.on('close', done);
      });
    }
    return !gone(res);
  }

  // huge-delta-N: one text delta of `bytes` bytes of "x".
  async function sendHugeDelta(res, rec, index, bytes) {
    const [a, b] = JSON.stringify({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: '@X@' } }).split('@X@');
    const xs = Buffer.alloc(64 * 1024, 'x');
    rec.bigBytes = 0;
    if (!await writeFlowing(res, `event: content_block_delta\ndata: ${a}`)) return false;
    for (let left = bytes; left > 0; left -= xs.length) {
      const piece = left >= xs.length ? xs : xs.subarray(0, left);
      if (!await writeFlowing(res, piece)) return false;
      rec.bigBytes += piece.length;
    }
    return writeFlowing(res, `${b}\n\n`);
  }

  function sendEvent(res, rec, name, data) {
    if (gone(res) || res.writableEnded) return false;
    rec.response.push({ event: name, data });
    rec.chunksSent++;
    res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    return true;
  }

  async function handle(req, res, rec) {
    const p = new URL(req.url, 'http://x').pathname.replace(/\/+$/, '');
    if (p !== '/v1/messages' && p !== '/v1/models' && p !== '/v1/messages/count_tokens') return sendError(res, rec, 404, 'not_found_error', 'Not Found');
    if (req.method !== (p === '/v1/models' ? 'GET' : 'POST')) return sendError(res, rec, 405, 'invalid_request_error', `Method Not Allowed`);
    const key = req.headers['x-api-key'];
    if (!key) return sendError(res, rec, 401, 'authentication_error', 'x-api-key header is required');
    if (ctl.apiKey !== null && ctl.apiKey !== undefined && key !== ctl.apiKey) return sendError(res, rec, 401, 'authentication_error', 'invalid x-api-key');
    const ver = req.headers['anthropic-version'];
    if (!ver) return sendError(res, rec, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (!['2023-06-01', '2023-01-01'].includes(ver)) return sendError(res, rec, 400, 'invalid_request_error', `anthropic-version: invalid version "${ver}"`);
    if (p === '/v1/models') { // List Models: one page of model objects, newest first
      if (ctl.modelsStatus) return sendError(res, rec, ctl.modelsStatus, ctl.modelsStatus >= 500 ? 'api_error' : 'invalid_request_error', 'models unavailable');
      const data = [
        { type: 'model', id: 'claude-sonnet-4-20250514', display_name: 'Claude Sonnet 4', created_at: '2025-05-22T00:00:00Z' },
        { type: 'model', id: 'claude-3-5-haiku-20241022', display_name: 'Claude Haiku 3.5', created_at: '2024-10-22T00:00:00Z' },
      ];
      return sendJson(res, rec, 200, { data, has_more: false, first_id: data[0].id, last_id: data[data.length - 1].id });
    }
    if (!rec.parsed) return sendError(res, rec, 400, 'invalid_request_error', 'There was an error parsing the body of your request. Make sure it is valid JSON.');
    const body = rec.body;
    if (p === '/v1/messages/count_tokens') {
      if (isObj(body) && body.max_tokens !== undefined) return sendError(res, rec, 400, 'invalid_request_error', 'max_tokens: Extra inputs are not permitted');
      const cv = validate(isObj(body) ? { ...body, max_tokens: 1 } : body);
      if (cv) return sendError(res, rec, cv[0], cv[1], cv[2]);
      return sendJson(res, rec, 200, { input_tokens: inputTokens(body) });
    }
    const v = validate(body);
    if (v) return sendError(res, rec, v[0], v[1], v[2]);
    const model = body.model;
    const k = knobs(model);
    if (k.hang) return;
    if (k.slowFirstByte) { await sleep(k.slowFirstByte); if (gone(res)) return; }
    switch (k.error) {
      case 400: return sendError(res, rec, 400, 'invalid_request_error', `prompt is too long for ${model}: 215000 tokens > 200000 maximum`);
      case 401: return sendError(res, rec, 401, 'authentication_error', 'invalid x-api-key');
      case 403: return sendError(res, rec, 403, 'permission_error', `Your API key does not have permission to use ${model}.`);
      case 404: return sendError(res, rec, 404, 'not_found_error', `model: ${model}`);
      case 429: return sendError(res, rec, 429, 'rate_limit_error',
        `This request would exceed the rate limit for your organization of 50 requests per minute for ${model}. Please reduce the request rate.`,
        {
          'retry-after': String(k.retryAfter ?? ctl.retryAfter),
          'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-requests-remaining': '0',
          'anthropic-ratelimit-requests-reset': new Date(Date.now() + 7000).toISOString(),
        });
      case 500: return sendError(res, rec, 500, 'api_error', `Internal server error while serving ${model}`);
      case 529: return sendError(res, rec, 529, 'overloaded_error', 'Overloaded');
      default: break;
    }
    const ans = answerFor(body, k);
    if (k.cacheUsage) ans.usage = { ...ans.usage, cache_creation_input_tokens: 7, cache_read_input_tokens: 100 };
    const id = `msg_01Mock${String(rec.id).padStart(8, '0')}`;
    const message = { id, type: 'message', role: 'assistant', model: k.dated ? `${model}-20241022` : model, content: ans.content, stop_reason: ans.stop_reason, stop_sequence: ans.stop_sequence, usage: ans.usage };
    if (body.stream !== true) {
      if (k.streamError || k.streamOverloaded) return sendError(res, rec, 529, 'overloaded_error', 'Overloaded');
      if (k.slowStream) await sleep(k.slowStream.n * k.slowStream.ms);
      else if (k.delay) await sleep(k.delay);
      if (gone(res)) return;
      return sendJson(res, rec, 200, message);
    }

    rec.status = 200;
    rec.response = [];
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'request-id': requestId(rec),
      ...(k.streamOverloaded && k.retryAfter ? { 'retry-after': k.retryAfter } : {}),
    });
    res.flushHeaders();
    if (k.streamOverloaded) {
      sendEvent(res, rec, 'error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
      return res.end();
    }
    const delay = k.slowStream ? k.slowStream.ms : (k.delay || 0);
    // The event list, built up front; sent one by one.
    const seq = [];
    seq.push(['message_start', { type: 'message_start', message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...ans.usage, output_tokens: 1 } } }]);
    ans.content.forEach((b, i) => {
      if (b.type === 'text') {
        seq.push(['content_block_start', { type: 'content_block_start', index: i, content_block: { type: 'text', text: '' } }]);
        if (i === 0) seq.push(['ping', { type: 'ping' }]);
        for (const w of replyChunks(b.text)) seq.push(['content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'text_delta', text: w } }]);
      } else {
        seq.push(['content_block_start', { type: 'content_block_start', index: i, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }]);
        if (i === 0) seq.push(['ping', { type: 'ping' }]);
        seq.push(['content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'input_json_delta', partial_json: '' } }]);
        if (Object.keys(b.input).length) for (const part of TOOL_JSON_PARTS(b.input)) seq.push(['content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'input_json_delta', partial_json: part } }]);
      }
      seq.push(['content_block_stop', { type: 'content_block_stop', index: i }]);
    });
    seq.push(['message_delta', { type: 'message_delta', delta: { stop_reason: ans.stop_reason, stop_sequence: ans.stop_sequence }, usage: { output_tokens: ans.usage.output_tokens } }]);
    seq.push(['message_stop', { type: 'message_stop' }]);

    let deltas = 0;
    for (const [name, data] of seq) {
      if (k.streamError && name === 'content_block_delta' && deltas === 2) {
        await sleep(20);
        if (gone(res)) return;
        sendEvent(res, rec, 'error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
        return res.end();
      }
      if (delay && name !== 'message_start') await sleep(delay);
      if (gone(res)) return;
      if (k.hugeDelta && name === 'content_block_delta' && deltas === 2 && !await sendHugeDelta(res, rec, data.index, k.hugeDelta)) return;
      sendEvent(res, rec, name, data);
      if (name === 'content_block_delta') deltas++;
    }
    res.end();
  }

  const where = await listen(server, port, host);
  return rc.attach({
    port: where.port,
    host,
    base: where.base,
    url: `${where.base}/v1`,
    server,
    get apiKey() { return ctl.apiKey; }, set apiKey(v) { ctl.apiKey = v; },
    get retryAfter() { return ctl.retryAfter; }, set retryAfter(v) { ctl.retryAfter = v; },
    get modelsStatus() { return ctl.modelsStatus; }, set modelsStatus(v) { ctl.modelsStatus = v; },
  });
}

module.exports = { startMock, validate, answerFor, knobs, replyChunks, inputTokens, TOOL_INPUT, TOOL_INPUT2, TOOL_JSON_PARTS };

if (require.main === module) {
  runCommand('mock-anthropic', 'node scripts/mock-anthropic.js [--port N] [--host H] [--api-key K] [--quiet]',
    (opt, has) => startMock({ port: Number(opt('--port', 9001)), host: opt('--host', '127.0.0.1'), apiKey: opt('--api-key', null), log: !has('--quiet'), record: false }));
}
