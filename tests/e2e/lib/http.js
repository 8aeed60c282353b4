'use strict';
// Plain HTTP requests to a router, for what the SDKs hide or do not let a test choose (the wire
// format, refused bodies, connection reuse). Each is bounded in time. Where a Traffic record
// (traffic.js) is given, the response goes into it for the leak checks.
const http = require('node:http');

function parseJson(text) { try { return JSON.parse(text); } catch { return undefined; } }

// A request with fetch: json is sent as JSON (content-type application/json unless headers set
// one), body as is. Returns { status, headers, text, json, bytes }.
async function fetchRaw(base, method, path, { headers = {}, body, json, timeout = 20000, traffic, where = 'raw' } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeout) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    if (!Object.keys(init.headers).some((k) => k.toLowerCase() === 'content-type')) init.headers['content-type'] = 'application/json';
  } else if (body !== undefined) init.body = body;
  const res = await fetch(`${base}${path}`, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  if (traffic) traffic.push({ where: `${where} ${method} ${path}`, status: res.status, headers: [...res.headers], body: text });
  return { status: res.status, headers: res.headers, text, json: parseJson(text), bytes };
}

// Reads a fetch response's SSE body to its end: { raw, cleanEnd } (cleanEnd false: the body broke).
async function readBody(res) {
  let raw = '';
  let cleanEnd = true;
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) raw += dec.decode(chunk, { stream: true });
  } catch { cleanEnd = false; }
  return { raw, cleanEnd };
}

// A node:http request that resolves with the response if one arrives, even if writing the body
// then fails (for bodies the server refuses before reading them); chunks are written in order,
// each after the previous one drained. Returns { status, headers, text, json }.
function rawHttp(port, method, path, { headers = {}, chunks = [], traffic, timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => { if (!done) { done = true; req.destroy(); reject(new Error('rawHttp timed out')); } }, timeout);
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      const finish = () => {
        if (done) return;
        done = true; clearTimeout(timer);
        if (traffic) traffic.push({ where: `rawHttp ${method} ${path}`, status: res.statusCode, headers: Object.entries(res.headers), body: text });
        resolve({ status: res.statusCode, headers: res.headers, text, json: parseJson(text) });
      };
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    // a write error can come just before the response: give it a moment to arrive
    req.on('error', (e) => { setTimeout(() => { if (!done) { done = true; clearTimeout(timer); reject(e); } }, 500); });
    let wake = null;
    const kick = () => { if (wake) { const w = wake; wake = null; w(); } };
    req.on('drain', kick); req.on('error', kick); req.on('close', kick);
    (async () => {
      for (const c of chunks) {
        if (req.destroyed) return;
        if (!req.write(c)) await new Promise((r) => { wake = r; });
      }
      if (!req.destroyed) req.end();
    })();
  });
}

// One request with node:http; target is a base URL or a port on 127.0.0.1. agent false (the
// default) is a fresh connection, closed after the answer. A body that is not a string is sent as
// JSON; content-type application/json is set for a body unless headers set one. Resolves
// { status, headers, text, body (the same text), json (null if not JSON), ms, localPort }; rejects
// on a socket error or when no answer came within timeout ms.
function request(target, path = '/', { method = 'GET', body, headers = {}, agent = false, timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(path, typeof target === 'number' ? `http://127.0.0.1:${target}` : target);
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const hdrs = {};
    if (agent === false) hdrs.connection = 'close';
    if (data) { hdrs['content-type'] = 'application/json'; hdrs['content-length'] = data.length; }
    Object.assign(hdrs, headers);
    const t0 = Date.now();
    const r = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs, agent }, (res) => {
      const localPort = res.socket && res.socket.localPort;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = parseJson(text);
        resolve({ status: res.statusCode, headers: res.headers, text, body: text, json: json === undefined ? null : json, ms: Date.now() - t0, localPort });
      });
    });
    r.setTimeout(timeout, () => r.destroy(new Error(`request ${method} ${path} timed out after ${timeout} ms`)));
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

module.exports = { fetchRaw, readBody, rawHttp, request, parseJson };
