'use strict';
// End-to-end tests of hostile clients and hostile backends: path traversal through
// forwarded paths, request smuggling, log injection, a backend that echoes its key, deeply nested
// JSON, /metrics exposure, and what else a client controls in a request (methods, lengths, query
// strings). Raw sockets and node:http send what a polite client never would; the official `openai`
// package covers what the SDK sends; the mock backend (scripts/mock-openai.js) records what got
// through, so "refused" always also means "the backend never saw it".
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { assertOpenAIError, assertCleanLog } = require('./lib/assert.js');
const { startMock } = require('../../scripts/mock-openai.js');

const T = { timeout: 30000 };
const BACKEND_KEY = 'sk-backend-SECRET-9f3c1e77';
const HEADER_SECRET = 'hdr-token-SECRET-51d0';
const CLIENT_KEY = 'sk-client-sec-1234';
const LIMITED_KEY = 'sk-client-limited-5678';

function config(mockUrl) {
  return `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 5; idle_timeout = 30; };
retry = { attempts = 1; };
circuit_breaker = { failures = 1000; };
backends = (
  { name = "bk-sec"; type = "openai"; url = "${mockUrl}"; api_key = "\${BK_KEY}"; },
  { name = "bk-hdr"; type = "openai"; url = "${mockUrl}"; headers = ( "x-api-key: \${HDR_SECRET}" ); },
  { name = "echo"; type = "echo"; }
);
models = (
  { name = "chat"; backend = "bk-sec"; backend_model = "upstream-chat"; },
  { name = "leaky"; backend = "bk-sec"; backend_model = "upstream-error-400-echo-key"; },
  { name = "leaky-header"; backend = "bk-hdr"; backend_model = "upstream-error-400-echo-key"; },
  { name = "free-*"; backend = "bk-sec"; },
  { name = "resp"; backend = "bk-sec"; backend_model = "upstream-resp"; kinds = ["responses"]; default = true; },
  { name = "whisper-ok"; backend = "bk-sec"; backend_model = "upstream-whisper-ok"; kinds = ["transcriptions"]; },
  { name = "images"; backend = "bk-sec"; backend_model = "upstream-images"; kinds = ["images"]; default = true; },
  { name = "echo"; backend = "echo"; default = true; }
);
passthrough = ( { prefix = "/v1/files"; backend = "bk-sec"; } );
api_keys = (
  { key = "${CLIENT_KEY}"; name = "team"; },
  { key = "${LIMITED_KEY}"; name = "limited"; models = ["chat", "whisper-ok", "images"]; }
);
`;
}

let mock; let router;

before(async () => {
  mock = await startMock({ port: 0 });
  mock.backendKey = BACKEND_KEY;
  router = await h.startRouter(config(mock.url), { env: { BK_KEY: BACKEND_KEY, HDR_SECRET: HEADER_SECRET } });
});

after(async () => {
  if (router) await router.stop();
  if (mock) await mock.close();
});

// ---------------------------------------------------------------- helpers

const client = (key = CLIENT_KEY) => clients.openai(router, { apiKey: key });
// An OpenAI-style error answer with this status and code (nothing of the backend in it).
const assertError = (r, status, code) => assertOpenAIError(r, status, code, { needles: [BACKEND_KEY, mock.url] });

// One request with its path sent exactly as given (no normalisation, as curl --path-as-is).
function rawPath(method, path, { key = CLIENT_KEY, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: router.port, method, path, agent: false,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
      timeout: 20000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

// Writes raw bytes on a fresh connection; resolves with everything read and whether the server
// closed the connection (within ms).
function rawExchange(bytes, ms = 5000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(router.port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => { s.destroy(); resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false }); }, ms);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => { clearTimeout(timer); s.destroy(); resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true }); });
    s.on('error', (e) => { clearTimeout(timer); if (e.code === 'ECONNRESET') resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true }); else reject(e); });
    s.write(bytes);
  });
}

function statusLines(text) { return text.match(/HTTP\/1\.[01] \d{3}[^\r\n]*/g) || []; }

function bodyOf(text) {
  const i = text.indexOf('\r\n\r\n');
  try { return JSON.parse(text.slice(i + 4)); } catch { return undefined; }
}

// Fails if the mock received anything while fn ran.
async function assertNothingForwarded(fn) {
  const n = mock.requests.length;
  await fn();
  assert.deepEqual(mock.requests.slice(n).map((r) => `${r.method} ${r.path}`), [], 'the backend received nothing');
}

function nested(depth) {
  let schema = { type: 'string' };
  for (let i = 0; i < depth; i++) schema = { type: 'object', properties: { [`l${depth - i}`]: schema } };
  return schema;
}

function depthOf(v) {
  let d = 0;
  for (let cur = [v]; cur.length; d++) cur = cur.flatMap((x) => (x && typeof x === 'object' ? Object.values(x) : [])).filter((x) => x && typeof x === 'object');
  return d;
}

// ---------------------------------------------------------------- 1. path traversal

test('forwarded paths: dot segments, raw or encoded at any depth, and decoded control characters are refused (400) and never reach the backend', T, async () => {
  const paths = [
    ['GET', '/v1/files/../chat/completions'],
    ['POST', '/v1/files/../chat/completions'],
    ['GET', '/v1/files/./../../admin'],
    ['GET', '/v1/files/..'],
    ['GET', '/v1/files/%2e%2e/chat/completions'],
    ['GET', '/v1/files/%2E%2E/%2E%2E/admin'],
    ['GET', '/v1/files/.%2e/x'],
    ['GET', '/v1/files/%2e/x'],
    ['GET', '/v1/files/x%2f..%2f..%2fadmin'],
    ['GET', '/v1/files/x%5c..%5c..%5cadmin'],
    ['GET', '/v1/files/x\\..\\..\\admin'],
    ['GET', '/v1/files/%252e%252e/%252e%252e/admin'],
    ['GET', '/v1/files/file-1%00.txt'],
    ['GET', '/v1/files/file-1%0d%0aX-Injected:%201'],
    ['GET', '/v1/responses/../chat/completions'],
    ['DELETE', '/v1/responses/%2e%2e/%2e%2e/admin'],
    ['GET', '/v1/responses/resp_1/..'],
  ];
  await assertNothingForwarded(async () => {
    for (const [method, p] of paths) {
      const r = await rawPath(method, p, { body: method === 'POST' ? JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }) : undefined });
      assertError(r, 400, 'invalid_url');
      assert.ok(!r.text.includes(BACKEND_KEY));
    }
  });
  // A key limited to one model cannot step from a passthrough prefix to another model either.
  await assertNothingForwarded(async () => {
    assertError(await rawPath('POST', '/v1/files/%2e%2e/chat/completions', { key: LIMITED_KEY, body: '{"model":"free-x","messages":[]}' }), 400, 'invalid_url');
  });
  // Ordinary ids, dots inside names and an encoded slash that stays inside the prefix still go through.
  for (const p of ['/v1/files/file-abc', '/v1/files/a..b.jsonl', '/v1/files/.hidden', '/v1/files/a%2Fb']) {
    const r = await rawPath('GET', p);
    assert.equal(r.status, 404, `${p}: the backend's own answer (${r.text})`);
    assert.equal(mock.last().path, p, 'forwarded exactly as sent');
  }
});

test('forwarded query strings and lengths: characters a URL cannot carry are refused (400), an over-long path or query 414, nothing is cut short', T, async () => {
  await assertNothingForwarded(async () => {
    assertError(await rawPath('GET', '/v1/files?after="x"'), 400, 'invalid_url');
    assertError(await rawPath('GET', '/v1/files?after=a{b}'), 400, 'invalid_url');
    assertError(await rawPath('GET', `/v1/files/${'a'.repeat(1200)}`), 414, 'invalid_url');
    assertError(await rawPath('GET', `/v1/files?after=${'b'.repeat(2500)}`), 414, 'invalid_url');
    assertError(await rawPath('GET', `/v1/responses/resp_${'c'.repeat(1200)}`), 414, 'invalid_url');
  });
  const q = `after=${'d'.repeat(1500)}&limit=2`;
  const r = await rawPath('GET', `/v1/files?${q}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.echo.query, q, 'a long query that fits is forwarded whole');
});

test('passthrough methods: TRACE and made-up methods are refused with 405 and Allow; HEAD is answered at once', T, async () => {
  await assertNothingForwarded(async () => {
    for (const m of ['TRACE', 'PROPFIND', 'FOO']) {
      const r = await rawPath(m, '/v1/files');
      assertError(r, 405, 'method_not_allowed');
      assert.match(r.headers.allow, /GET.*POST.*DELETE/);
    }
  });
  // HEAD: the backend's status and no body, at once (curl must not wait for a body that never comes).
  const started = Date.now();
  const r = await rawPath('HEAD', '/v1/files');
  assert.equal(mock.last().method, 'HEAD');
  assert.equal(r.status, mock.last().status, 'the backend\'s status');
  assert.equal(r.text, '');
  assert.ok(Date.now() - started < 5000, 'HEAD is not left waiting for a body');
});

// ---------------------------------------------------------------- 5. request smuggling

const CHAT = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'smuggled?' }] });
const HIDDEN = 'GET /v1/files?hidden=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' + CLIENT_KEY + '\r\n\r\n';
const chunked = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n0\r\n\r\n`;
const head = (extra, version = '1.1') => `POST /v1/chat/completions HTTP/${version}\r\nHost: x\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Type: application/json\r\n${extra}\r\n`;

test('smuggling: Content-Length together with Transfer-Encoding is refused (400) and the connection closed; the hidden request never runs', T, async () => {
  const body = chunked(CHAT) + HIDDEN;
  for (const order of ['cl-first', 'te-first']) {
    await assertNothingForwarded(async () => {
      const framing = order === 'cl-first' ? `Content-Length: ${Buffer.byteLength(chunked(CHAT))}\r\nTransfer-Encoding: chunked\r\n`
        : `Transfer-Encoding: chunked\r\nContent-Length: ${Buffer.byteLength(chunked(CHAT))}\r\n`;
      const r = await rawExchange(head(framing) + body);
      assert.deepEqual(statusLines(r.text), ['HTTP/1.1 400 Bad Request'], `one answer only:\n${r.text}`);
      assert.equal(bodyOf(r.text).error.code, 'invalid_framing');
      assert.match(r.text, /\r\nConnection: close\r\n/i);
      assert.ok(r.closed, 'the connection is closed');
    });
  }
});

test('smuggling: Content-Length headers that disagree (or a list) are refused (400) and the connection closed', T, async () => {
  await assertNothingForwarded(async () => {
    const n = Buffer.byteLength(CHAT);
    const r = await rawExchange(head(`Content-Length: ${n}\r\nContent-Length: 5\r\n`) + CHAT + HIDDEN);
    assert.deepEqual(statusLines(r.text), ['HTTP/1.1 400 Bad Request'], r.text);
    assert.equal(bodyOf(r.text).error.code, 'invalid_framing');
    assert.ok(r.closed, 'the connection is closed');
    const r2 = await rawExchange(head(`Content-Length: ${n}, 5\r\n`) + CHAT + HIDDEN);
    assert.ok(statusLines(r2.text).every((l) => l === 'HTTP/1.1 400 Bad Request'), r2.text);
    assert.ok(r2.closed, 'the connection is closed');
  });
  // The same length twice is harmless and served.
  const n = Buffer.byteLength(CHAT);
  const ok = await rawExchange(head(`Content-Length: ${n}\r\nContent-Length: ${n}\r\nConnection: close\r\n`) + CHAT);
  assert.deepEqual(statusLines(ok.text), ['HTTP/1.1 200 OK'], ok.text);
});

test('smuggling: Transfer-Encoding other than chunked alone is refused at once (identity 400, gzip 501, doubled, HTTP/1.0) and the connection closed', T, async () => {
  const cases = [
    ['Transfer-Encoding: identity\r\n', CHAT + HIDDEN, 400, 'invalid_framing'],
    ['Transfer-Encoding: chunked, identity\r\n', chunked(CHAT) + HIDDEN, 400, 'invalid_framing'],
    ['Transfer-Encoding: gzip, chunked\r\n', chunked(CHAT) + HIDDEN, 501, 'unsupported_transfer_encoding'],
    ['Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', chunked(CHAT) + HIDDEN, 400, 'invalid_framing'],
  ];
  for (const [framing, body, status, code] of cases) {
    await assertNothingForwarded(async () => {
      const r = await rawExchange(head(framing) + body);
      assert.equal(statusLines(r.text).length, 1, `${framing}: one answer only:\n${r.text}`);
      assert.match(statusLines(r.text)[0], new RegExp(`^HTTP/1\\.1 ${status} `), `${framing}: ${r.text}`);
      assert.equal(bodyOf(r.text).error.code, code);
      assert.ok(r.closed, `${framing}: the connection is closed (not left to the idle timeout)`);
    });
  }
  await assertNothingForwarded(async () => {
    const r = await rawExchange(head('Transfer-Encoding: chunked\r\n', '1.0') + chunked(CHAT));
    assert.equal(statusLines(r.text).length, 1, r.text);
    assert.match(statusLines(r.text)[0], / 400 /);
    assert.ok(r.closed);
  });
  // Plain chunked uploads keep working, with keep-alive.
  const r = await rawExchange(head('Transfer-Encoding: chunked\r\n') + chunked(JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] })), 1500);
  assert.deepEqual(statusLines(r.text), ['HTTP/1.1 200 OK'], r.text);
  assert.equal(r.closed, false, 'a well-framed request keeps its connection');
});

test('smuggling: a space before a header\'s colon, a bare CR in a value, a missing or doubled Host are refused (400) and the connection closed', T, async () => {
  const n = Buffer.byteLength(CHAT);
  const cases = [
    head(`Transfer-Encoding : chunked\r\nContent-Length: ${n}\r\n`) + CHAT + HIDDEN,
    head(`Content-Length: ${n}\r\nX-Note: a\rTransfer-Encoding: chunked\r\n`) + CHAT + HIDDEN,
    `POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Length: ${n}\r\n\r\n${CHAT}${HIDDEN}`,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Length: ${n}\r\n\r\n${CHAT}${HIDDEN}`,
  ];
  for (const c of cases) {
    await assertNothingForwarded(async () => {
      const r = await rawExchange(c);
      assert.deepEqual(statusLines(r.text), ['HTTP/1.1 400 Bad Request'], `${JSON.stringify(c.slice(0, 120))}:\n${r.text}`);
      assert.equal(bodyOf(r.text).error.code, 'invalid_framing');
      assert.ok(r.closed, 'the connection is closed');
    });
  }
  // HTTP/1.0 needs no Host; tabs and UTF-8 in values are fine.
  const ok = await rawExchange('GET /health HTTP/1.0\r\n\r\n');
  assert.deepEqual(statusLines(ok.text), ['HTTP/1.1 200 OK'], ok.text);
  const ok2 = await rawExchange(Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\tb \u00e9\r\nConnection: close\r\n\r\n', 'utf8'));
  assert.deepEqual(statusLines(ok2.text), ['HTTP/1.1 200 OK'], ok2.text);
});

// ---------------------------------------------------------------- multipart

function form(boundary, parts, eol = '\r\n') {
  return Buffer.from(parts.map(([disp, value]) => `--${boundary}${eol}Content-Disposition: form-data; ${disp}${eol}${eol}${value}${eol}`).join('') + `--${boundary}--${eol}`, 'latin1');
}

async function postForm(p, contentType, body) {
  const res = await fetch(`${router.base}${p}`, { method: 'POST', headers: { authorization: `Bearer ${LIMITED_KEY}`, 'content-type': contentType }, body, signal: AbortSignal.timeout(20000) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json };
}

test('multipart: the model routed by is the only one a backend can read (a second, unquoted or renamed model field and an ambiguous boundary are refused)', T, async () => {
  const file = ['name="file"; filename="a.wav"', 'RIFF....WAVEfmt '];
  const attempts = [
    // routed by the first, a backend that keeps the last would serve the second
    ['/v1/audio/transcriptions', [['name="model"', 'whisper-ok'], ['name="model"', 'upstream-secret'], file]],
    ['/v1/audio/transcriptions', [['name="model"', 'whisper-ok'], ['name=model', 'upstream-secret'], file]],
    ['/v1/audio/transcriptions', [['name="model"', 'whisper-ok'], ['NAME="Model"', 'upstream-secret'], file]],
    ['/v1/audio/transcriptions', [['name="model"', 'whisper-ok'], ['name="model"; filename="m.txt"', 'upstream-secret'], file]],
    // no model airouter sees (so the default is routed and its name added), one a lenient backend sees
    ['/v1/images/edits', [['name=model', 'upstream-secret'], ['name="image"; filename="a.png"', 'PNG'], ['name="prompt"', 'x']]],
    ['/v1/images/edits', [["name*=utf-8''model", 'upstream-secret'], ['name="image"; filename="a.png"', 'PNG'], ['name="prompt"', 'x']]],
  ];
  await assertNothingForwarded(async () => {
    for (const [p, parts] of attempts) {
      const r = await postForm(p, 'multipart/form-data; boundary=BND', form('BND', parts));
      assertError(r, 400, 'invalid_value');
      assert.equal(r.json.error.param, 'model');
    }
    // "boundary=" twice, even inside another parameter: which one a backend takes is anyone's guess
    // (the mock takes the first).
    for (const ct of ['multipart/form-data; boundary=AAA; boundary=BBB', 'multipart/form-data; xboundary=AAA; boundary=BBB']) {
      const r = await postForm('/v1/audio/transcriptions', ct, form('BBB', [['name="model"', 'whisper-ok'], file]));
      assertError(r, 400, 'invalid_content_type');
    }
  });
  const ok = await postForm('/v1/audio/transcriptions', 'multipart/form-data; charset=utf-8; boundary="BBB"', form('BBB', [['name="model"', 'whisper-ok'], file]));
  assert.equal(ok.status, 200, ok.text);
  assert.equal(mock.last().model, 'upstream-whisper-ok');
});

// ---------------------------------------------------------------- 6. log injection

test('log injection: a newline in a model name or a backend error cannot forge a log line', T, async () => {
  const forged = '2031-01-01T00:00:00.000Z [error] [1] FORGED-LINE';
  const model = `free-stream-error-event\n${forged}\r\x1b[31m`;
  const stream = await client().chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], stream: true });
  const events = [];
  const err = await (async () => { for await (const ev of stream) events.push(ev); })().catch((x) => x);
  assert.ok(events.length >= 1 && err, `the stream started, then failed (${err})`);
  await h.waitFor(() => router.log.includes('failed after it started'), { what: 'the error line of the failed stream' });
  const lines = router.log.split('\n');
  const withForged = lines.filter((l) => l.includes('FORGED-LINE'));
  assert.ok(withForged.length >= 1, 'the model name is in the log');
  for (const l of withForged) {
    assert.ok(!l.startsWith('2031-'), `a line was forged: ${l}`);
    assert.ok(l.startsWith('{') || l.includes('failed after it started'), `FORGED-LINE only inside a real line: ${l}`);
  }
  assert.ok(lines.some((l) => l.includes('free-stream-error-event\\n2031-01-01') && l.includes('\\r\\x1b[31m')), 'escaped as \\n, \\r and \\xNN');
  assert.ok(!router.log.includes('\x1b'), 'no raw escape character reaches the log');
  // The access log line stays one parseable JSON line with the name intact.
  await h.waitFor(() => lines.concat(router.log.split('\n')).some((l) => l.startsWith('{') && l.includes('FORGED-LINE')), { what: 'the access log line' });
  const access = router.log.split('\n').filter((l) => l.startsWith('{') && l.includes('FORGED-LINE')).map((l) => JSON.parse(l));
  assert.equal(access[0].model, model);
});

// ---------------------------------------------------------------- 7. a backend that echoes its key

test('a backend that echoes its key in an error: the key (api_key or a credential header) never reaches the client', T, async () => {
  const e = await client().chat.completions.create({ model: 'leaky', messages: [{ role: 'user', content: 'hi' }] }).catch((x) => x);
  assert.equal(e.status, 400, String(e));
  const rec = mock.last((r) => r.model === 'upstream-error-400-echo-key');
  assert.ok(JSON.stringify(rec.response).includes(BACKEND_KEY), 'the mock did echo the key');
  assert.ok(!JSON.stringify(e.error).includes(BACKEND_KEY), `key leaked: ${JSON.stringify(e.error)}`);
  assert.match(e.error.message, /Bearer \[redacted\]/);
  assert.ok(!e.error.message.includes('upstream-'), 'backend model name scrubbed as before');

  const e2 = await client().chat.completions.create({ model: 'leaky-header', messages: [{ role: 'user', content: 'hi' }], stream: true }).catch((x) => x);
  assert.equal(e2.status, 400, String(e2));
  assert.ok(JSON.stringify(mock.last().response).includes(HEADER_SECRET), 'the mock did echo the header');
  assert.ok(!JSON.stringify(e2.error).includes(HEADER_SECRET), `header secret leaked: ${JSON.stringify(e2.error)}`);

  // Passthrough relays error answers as they are, but not the key inside them.
  const r = await rawPath('GET', '/v1/files/echo-credentials');
  assert.equal(r.status, 400, r.text);
  assert.ok(JSON.stringify(mock.last().response).includes(BACKEND_KEY), 'the mock did echo the key');
  assert.ok(!r.text.includes(BACKEND_KEY), `key leaked through passthrough: ${r.text}`);
  assert.match(r.json.error.message, /\[redacted\]/);
  assert.ok(!router.log.includes(BACKEND_KEY) && !router.log.includes(HEADER_SECRET), 'nor is it logged');
});

// ---------------------------------------------------------------- 8. JSON nesting

test('JSON nesting: a tool schema 100 levels deep is served intact; 300 levels is refused with a message that says so', T, async () => {
  const tools = [{ type: 'function', function: { name: 'deep', description: 'nested', parameters: nested(100) } }];
  const ok = await client().chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], tools });
  assert.equal(ok.choices[0].message.role, 'assistant');
  const rec = mock.last((r) => r.path === '/v1/chat/completions');
  assert.deepEqual(rec.body.tools, tools, 'the schema reached the backend intact');
  assert.ok(depthOf(rec.body) > 200, `depth ${depthOf(rec.body)}`);

  await assertNothingForwarded(async () => {
    const e = await client().chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'deep', parameters: nested(150) } }] }).catch((x) => x);
    assert.equal(e.status, 400, String(e));
    assert.equal(e.error.code, 'invalid_json');
    assert.match(e.error.message, /more than 256 levels deep/);
  });
  // Plain deep arrays, in every parsed body (here /v1/responses).
  const deep = '['.repeat(300) + ']'.repeat(300);
  const r = await rawPath('POST', '/v1/responses', { body: `{"model":"resp","input":${deep}}` });
  assertError(r, 400, 'invalid_json');
  assert.match(r.json.error.message, /256 levels/);
});

// ---------------------------------------------------------------- /metrics exposure

function externalAddress() {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list || []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

async function getMetrics(host, port, headers = {}) {
  const res = await fetch(`http://${host}:${port}/metrics`, { headers, signal: AbortSignal.timeout(10000) });
  return { status: res.status, text: await res.text() };
}

test('/metrics without a token or its own listener is served to this host only; a token opens it to others', T, async (t) => {
  const ext = externalAddress();
  if (!ext) { t.skip('no non-loopback IPv4 address to connect from'); return; }
  const base = `listen = "0.0.0.0:@PORT@"; workers = 1; log = { level = "info"; };
backends = ( { name = "bk-name-secret"; type = "echo"; } );
models = ( { name = "model-name-secret"; backend = "bk-name-secret"; default = true; } );`;
  const open = await h.startRouter(base);
  try {
    const local = await getMetrics('127.0.0.1', open.port);
    assert.equal(local.status, 200);
    assert.match(local.text, /airouter_workers/);
    const remote = await getMetrics(ext, open.port);
    assert.equal(remote.status, 403, remote.text);
    assert.equal(JSON.parse(remote.text).error.code, 'forbidden');
    assert.ok(!remote.text.includes('model-name-secret') && !remote.text.includes('bk-name-secret'));
    // The API itself is not restricted.
    const health = await fetch(`http://${ext}:${open.port}/health`);
    assert.equal(health.status, 200);
  } finally { await open.stop(); }
  const tokened = await h.startRouter(`${base}\nmetrics = { token = "metrics-tok-1"; };`);
  try {
    assert.equal((await getMetrics(ext, tokened.port)).status, 401);
    const r = await getMetrics(ext, tokened.port, { authorization: 'Bearer metrics-tok-1' });
    assert.equal(r.status, 200);
    assert.match(r.text, /airouter_workers/);
  } finally { await tokened.stop(); }
});

// ---------------------------------------------------------------- the end

test('no worker crashed and no sanitizer report during the run', T, async () => {
  const log = router.log;
  assertCleanLog(log);
  assert.ok(!log.includes(BACKEND_KEY) && !log.includes(CLIENT_KEY), 'no key in the log');
});
