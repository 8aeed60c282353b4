#!/usr/bin/env node
'use strict';
// A mock OpenTelemetry collector speaking OTLP/HTTP with JSON encoding (node built-ins only), for
// airouter's tracing tests. It behaves like the collector's otlphttp receiver on the trace path:
//
//   POST /v1/traces  Content-Type: application/json   (Content-Encoding: gzip|deflate accepted)
//     -> 200 application/json {"partialSuccess":{}}        (ExportTraceServiceResponse)
//     -> 400 application/json {"code":3,"message":...}     body not JSON / not an ExportTraceServiceRequest /
//                                                          a traceId or spanId that is not valid hex of the
//                                                          right length (the collector's decoder rejects those)
//   POST /v1/traces  Content-Type: application/x-protobuf -> 200 with an empty protobuf body (the request
//     is recorded undecoded in `requests`: this mock decodes JSON only)
//   POST /v1/traces  any other Content-Type             -> 415
//   other method on /v1/traces -> 405; any other path -> 404
//
// Module use:
//   const { startOtlpMock } = require('./scripts/mock-otlp.js');
//   const c = await startOtlpMock({ port: 0, delayMs: 0, status: 200 });
//   c.port, c.url ("http://127.0.0.1:PORT", what goes in tracing.otlp_endpoint), c.tracesUrl (.../v1/traces)
//   c.requests  every request: { id, time, method, path, headers, contentType, rawBody (Buffer, decompressed),
//                                body (parsed JSON or undefined), status (what was answered), spanCount, error }
//   c.spans     every accepted span, flattened from resourceSpans[].scopeSpans[].spans[], each the span's
//               own OTLP/JSON fields (traceId, spanId, parentSpanId, name, kind, startTimeUnixNano,
//               endTimeUnixNano, attributes, status, events, links...) plus:
//                 attrs     attributes decoded to a plain object (intValue -> Number, arrays/kvlists decoded)
//                 resource  { attributes, attrs }   the enclosing resource
//                 scope     { name, version, attributes, attrs }  the enclosing instrumentation scope
//                 requestId the id of the export request that carried it; receivedAt (ms)
//   c.rejected  requests answered 400 (malformed), with their error message
//   c.setDelay(ms)   delay every answer by ms (the request is recorded at once; only the answer waits)
//   c.setStatus(n)   answer every export with status n (e.g. 503: {"code":14,...} + Retry-After: 1, spans not
//                    recorded, as a collector refusing data would); 200 restores normal behaviour
//   c.waitForSpans(pred, timeout = 5000, { count = 1 } = {})
//               resolves with the array of recorded spans for which pred(span) is true, as soon as there
//               are at least `count` of them; rejects after timeout ms (message says how many matched)
//   c.reset()   forgets recorded requests and spans
//   await c.close()
//
// CLI: node scripts/mock-otlp.js [--port N] [--host H] [--delay MS] [--status N]
//   prints one line per received span to stderr.
const http = require('node:http');
const zlib = require('node:zlib');
const { sleep, makeWaiters, listen, closeServer, runCommand } = require('./mock-lib.js');


// OTLP/JSON follows the protobuf JSON mapping: parsers accept lowerCamelCase and the original
// snake_case field names.
function field(o, camel) {
  if (!o || typeof o !== 'object') return undefined;
  if (o[camel] !== undefined) return o[camel];
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return o[snake];
}

// Decodes an OTLP AnyValue to a JS value (int64 may be a JSON string or number -> Number).
function anyValue(v) {
  if (!v || typeof v !== 'object') return undefined;
  if (field(v, 'stringValue') !== undefined) return field(v, 'stringValue');
  if (field(v, 'boolValue') !== undefined) return field(v, 'boolValue');
  if (field(v, 'intValue') !== undefined) return Number(field(v, 'intValue'));
  if (field(v, 'doubleValue') !== undefined) return Number(field(v, 'doubleValue'));
  if (field(v, 'bytesValue') !== undefined) return Buffer.from(field(v, 'bytesValue'), 'base64');
  if (field(v, 'arrayValue') !== undefined) return (field(field(v, 'arrayValue'), 'values') || []).map(anyValue);
  if (field(v, 'kvlistValue') !== undefined) return decodeAttrs(field(field(v, 'kvlistValue'), 'values'));
  return undefined;
}

function decodeAttrs(list) {
  const out = {};
  for (const kv of Array.isArray(list) ? list : []) if (kv && typeof kv.key === 'string') out[kv.key] = anyValue(kv.value);
  return out;
}

// The id checks the collector's JSON decoder makes (hex of exactly 16/8 bytes; an empty
// parentSpanId means "no parent"). Returns an error message or null.
function idError(span) {
  const t = field(span, 'traceId');
  const s = field(span, 'spanId');
  const p = field(span, 'parentSpanId');
  if (typeof t !== 'string' || !/^[0-9a-fA-F]{32}$/.test(t)) return `invalid traceId ${JSON.stringify(t)}`;
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{16}$/.test(s)) return `invalid spanId ${JSON.stringify(s)}`;
  if (p !== undefined && p !== '' && (typeof p !== 'string' || !/^[0-9a-fA-F]{16}$/.test(p))) return `invalid parentSpanId ${JSON.stringify(p)}`;
  return null;
}

// Flattens an ExportTraceServiceRequest into spans; throws on a malformed request.
function flatten(body, requestId) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('body is not an ExportTraceServiceRequest object');
  const rss = field(body, 'resourceSpans');
  if (rss === undefined) return [];
  if (!Array.isArray(rss)) throw new Error('resourceSpans is not an array');
  const out = [];
  const receivedAt = Date.now();
  for (const rs of rss) {
    const res = field(rs, 'resource') || {};
    const resource = { attributes: field(res, 'attributes') || [], attrs: decodeAttrs(field(res, 'attributes')) };
    const sss = field(rs, 'scopeSpans') || [];
    if (!Array.isArray(sss)) throw new Error('scopeSpans is not an array');
    for (const ss of sss) {
      const sc = field(ss, 'scope') || {};
      const scope = { name: sc.name, version: sc.version, attributes: sc.attributes || [], attrs: decodeAttrs(sc.attributes) };
      const spans = field(ss, 'spans') || [];
      if (!Array.isArray(spans)) throw new Error('spans is not an array');
      for (const sp of spans) {
        const err = idError(sp);
        if (err) throw new Error(err);
        out.push({ ...sp, attrs: decodeAttrs(field(sp, 'attributes')), resource, scope, requestId, receivedAt });
      }
    }
  }
  return out;
}

function decompress(buf, enc) {
  enc = String(enc || '').toLowerCase().trim();
  if (!enc || enc === 'identity') return buf;
  if (enc === 'gzip') return zlib.gunzipSync(buf);
  if (enc === 'deflate') return zlib.inflateSync(buf);
  throw new Error(`unsupported Content-Encoding ${enc}`);
}

async function startOtlpMock({ port = 0, host = '127.0.0.1', delayMs = 0, status = 200, log = false } = {}) {
  const requests = [];
  const spans = [];
  const rejected = [];
  const sockets = new Set();
  const waiters = makeWaiters();
  let seq = 0;
  let delay = delayMs;
  let forced = status;

  const notify = waiters.notify;

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('error', () => { });
    req.on('end', async () => {
      const rec = {
        id: ++seq, time: Date.now(), method: req.method, path: req.url, headers: { ...req.headers },
        contentType: String(req.headers['content-type'] || ''), rawBody: null, body: undefined,
        status: null, spanCount: 0, error: null,
      };
      requests.push(rec);
      const answer = async (code, obj, headers = {}) => {
        rec.status = code;
        notify();
        if (delay > 0) await sleep(delay);
        if (res.destroyed || res.writableEnded) return;
        if (obj === null) {
          res.writeHead(code, { 'Content-Type': 'application/x-protobuf', 'Content-Length': 0, ...headers });
          return res.end();
        }
        const s = JSON.stringify(obj);
        res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s), ...headers });
        res.end(s);
      };
      const path = req.url.split('?')[0];
      if (path !== '/v1/traces') return answer(404, { code: 5, message: `unknown path ${path}` });
      if (req.method !== 'POST') return answer(405, { code: 12, message: `${req.method} not allowed` }, { Allow: 'POST' });
      let raw;
      try { raw = decompress(Buffer.concat(chunks), req.headers['content-encoding']); } catch (e) {
        rec.error = e.message; rejected.push(rec);
        return answer(400, { code: 3, message: e.message });
      }
      rec.rawBody = raw;
      const ct = rec.contentType.split(';')[0].trim().toLowerCase();
      if (ct === 'application/x-protobuf') {
        // Not decoded (JSON-only mock); the collector would accept it.
        if (forced !== 200) return answer(forced, null, forced === 503 ? { 'Retry-After': '1' } : {});
        return answer(200, null);
      }
      if (ct !== 'application/json') return answer(415, { code: 3, message: `unsupported content type ${rec.contentType}` });
      if (forced !== 200) {
        return answer(forced, { code: forced === 503 ? 14 : 13, message: forced === 503 ? 'Service Unavailable' : 'error' },
          forced === 503 ? { 'Retry-After': '1' } : {});
      }
      let got;
      try {
        rec.body = JSON.parse(raw.toString('utf8'));
        got = flatten(rec.body, rec.id);
      } catch (e) {
        rec.error = e.message; rejected.push(rec);
        if (log) console.error(`mock-otlp: rejected request ${rec.id}: ${e.message}`);
        return answer(400, { code: 3, message: e.message });
      }
      rec.spanCount = got.length;
      spans.push(...got);
      if (log) {
        for (const s of got) console.error(`mock-otlp: ${s.traceId} ${s.spanId} <- ${s.parentSpanId || '-'} kind=${s.kind} ${s.name} ${JSON.stringify(s.attrs)}`);
      }
      return answer(200, { partialSuccess: {} });
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  const where = await listen(server, port, host);
  return {
    port: where.port,
    host,
    url: where.base,
    tracesUrl: `${where.base}/v1/traces`,
    server,
    requests,
    spans,
    rejected,
    setDelay(ms) { delay = ms; },
    setStatus(code) { forced = code; },
    reset() { requests.length = 0; spans.length = 0; rejected.length = 0; },
    waitForSpans(pred = () => true, timeout = 5000, { count = 1 } = {}) {
      return new Promise((resolve, reject) => {
        const match = () => spans.filter(pred);
        const check = () => {
          const m = match();
          if (m.length >= count) { clearTimeout(t); waiters.delete(check); resolve(m); return true; }
          return false;
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`mock-otlp: timed out after ${timeout} ms waiting for ${count} matching span(s); ${match().length} matched, ${spans.length} received in ${requests.length} request(s)`));
        }, timeout);
        if (!check()) waiters.add(check);
      });
    },
    close() {
      waiters.clear();
      return closeServer(server, sockets);
    },
  };
}

module.exports = { startOtlpMock, decodeAttrs, anyValue, flatten };

if (require.main === module) {
  runCommand('mock-otlp', 'node scripts/mock-otlp.js [--port N] [--host H] [--delay MS] [--status N]', (opt) => startOtlpMock({
    port: Number(opt('--port', 4318)), host: opt('--host', '127.0.0.1'),
    delayMs: Number(opt('--delay', 0)), status: Number(opt('--status', 200)), log: true,
  }), { shown: (c) => c.tracesUrl });
}
