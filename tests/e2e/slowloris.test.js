'use strict';
// End-to-end tests of what slow and kept-alive clients can do to a worker: request heads that
// trickle in (slowloris), bodies sent too slowly, and keep-alive traffic across reloads.
// Everything runs on 127.0.0.1; every test is bounded in count and time and stops by itself.
//
// Run: AIROUTER_BIN=$PWD/airouter node --test --test-concurrency=1 tests/e2e/slowloris.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const clients = require('./lib/client.js');
const { waitFor, startRouter, echoConfig, childPids } = require('./lib/harness');
const { request: httpRequest } = require('./lib/http.js');

// The one worker's connection cap: libmicrohttpd accepts this many beyond limits.max_connections
// (to answer them with a fast 503) and no more.
const MHD_SLACK = 256;

// A raw connection that sends `head` and then one more header line every `everyMs` without ever
// ending the head (or, with `body`, sends a complete head and then the body one byte at a time).
// Collects what comes back; `closed` resolves when the server has closed the connection.
function trickler(port, { head, everyMs = 200, body = false }) {
  const t = { data: '', closedAt: 0 };
  t.startedAt = Date.now(); // before the connection exists: the server's clock starts later
  const s = net.connect({ host: '127.0.0.1', port });
  t.socket = s;
  let timer;
  t.connected = new Promise((resolve) => s.on('connect', () => {
    s.write(head);
    timer = setInterval(() => { if (!s.destroyed) s.write(body ? 'x' : 'X-Slow: 1\r\n'); }, everyMs);
    resolve();
  }));
  t.closed = new Promise((resolve) => {
    const done = () => { clearInterval(timer); if (!t.closedAt) t.closedAt = Date.now(); resolve(t); };
    s.on('close', done);
    s.on('end', () => s.destroy());
  });
  s.setEncoding('utf8');
  s.on('data', (d) => { t.data += d; });
  s.on('error', () => { }); // writes after the server's close: a reset is expected
  return t;
}

// One request on a fresh connection: { status, headers, body }, or rejects on a socket error.
const request = (port, { path = '/health', timeout = 5000, ...opts } = {}) => httpRequest(port, path, { timeout, ...opts });

const chatBody = (text) => ({ model: 'echo', messages: [{ role: 'user', content: text }] });

function assert408(t, what) {
  assert.match(t.data, /^HTTP\/1\.1 408 /, `${what}: answered ${JSON.stringify(t.data.slice(0, 200))}`);
  const json = JSON.parse(t.data.slice(t.data.indexOf('\r\n\r\n') + 4));
  assert.equal(json.error.code, 'request_timeout');
  assert.equal(json.error.type, 'invalid_request_error');
}

test('slowloris: trickled heads are cut after limits.header_timeout and the service comes back', { timeout: 60000 }, async () => {
  const R = await startRouter(echoConfig({ workers: 1, limits: 'max_connections = 4; header_timeout = 1; idle_timeout = 60;' }));
  const all = [];
  try {
    // A few trickling connections, over max_connections but under the worker's cap: the fast 503
    // still answers a normal request at once, and /health still answers.
    for (let i = 0; i < 8; i++) all.push(trickler(R.port, { head: 'GET /health HTTP/1.1\r\nHost: a\r\n' }));
    await Promise.all(all.map((t) => t.connected));
    await waitFor(async () => {
      const r = await request(R.port, { method: 'POST', path: '/v1/chat/completions', body: chatBody('hi') });
      return r.status === 503 ? r : null;
    }, { timeout: 5000, what: 'the fast 503 while trickling connections hold the worker' }).then((r) => {
      assert.equal(JSON.parse(r.body).error.code, 'server_overloaded');
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.headers.connection, 'close');
    });

    // Enough trickling connections to fill the worker's cap: nobody else is served now.
    for (let i = all.length; i < 4 + MHD_SLACK + 8; i++) all.push(trickler(R.port, { head: 'GET /health HTTP/1.1\r\nHost: a\r\n' }));
    await Promise.all(all.map((t) => t.connected));

    // Every trickling connection is answered 408 and closed, none before its deadline.
    await Promise.race([
      Promise.all(all.map((t) => t.closed)),
      new Promise((_, rej) => setTimeout(() => rej(new Error(`trickling connections still open: ${all.filter((t) => !t.closedAt).length} of ${all.length}`)), 20000)),
    ]);
    // The last few are over the worker's cap: libmicrohttpd closes them at once, unanswered.
    const taken = all.filter((t) => t.data);
    // (all but one or two: the harness may keep its first /health connection open)
    assert.ok(taken.length >= MHD_SLACK, `${taken.length} of ${all.length} connections were answered 408`);
    for (const t of taken) {
      assert408(t, 'trickled head');
      assert.ok(t.closedAt - t.startedAt >= 950, `a trickling connection was closed after ${t.closedAt - t.startedAt} ms, before header_timeout`);
    }

    // A normal client is served again.
    const r = await waitFor(async () => {
      const x = await request(R.port, { method: 'POST', path: '/v1/chat/completions', body: chatBody('back again') });
      return x.status === 200 ? x : null;
    }, { timeout: 10000, what: 'a normal request served after the trickling connections were cut' });
    assert.equal(JSON.parse(r.body).choices[0].message.content, 'back again');
    const h = await request(R.port);
    assert.equal(h.status, 200);
  } finally {
    for (const t of all) t.socket.destroy();
    await R.stop();
  }
});

test('slowloris: a kept-alive connection that trickles its next head is cut too', { timeout: 30000 }, async () => {
  const R = await startRouter(echoConfig({ workers: 1, limits: 'header_timeout = 1; idle_timeout = 60;' }));
  try {
    const t = trickler(R.port, { head: 'GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\n', everyMs: 200 });
    await t.connected;
    await t.closed;
    assert.match(t.data, /^HTTP\/1\.1 200 [^]*HTTP\/1\.1 408 /, `answers: ${JSON.stringify(t.data)}`);
    assert.ok(t.closedAt - t.startedAt >= 950, `cut after ${t.closedAt - t.startedAt} ms`);
    // A kept-alive connection that is only idle is not cut by the head deadline.
    const idle = net.connect({ host: '127.0.0.1', port: R.port });
    let got = '';
    idle.setEncoding('utf8');
    idle.on('data', (d) => { got += d; });
    idle.on('error', () => { });
    await new Promise((r) => idle.on('connect', r));
    idle.write('GET /health HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => got.includes('{"status":"ok"}'), { what: 'first answer on the idle connection' });
    // A barrier: a trickling connection opened now is cut after its deadline; by then the idle
    // connection has been idle for longer than header_timeout.
    const barrier = trickler(R.port, { head: 'GET /health HTTP/1.1\r\n' });
    await barrier.closed;
    assert.ok(!idle.destroyed && idle.readyState === 'open', 'the idle kept-alive connection is still open');
    idle.write('GET /health HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => got.split('{"status":"ok"}').length === 3, { what: 'second answer on the idle connection' });
    idle.destroy();
  } finally {
    await R.stop();
  }
});

test('a body slower than limits.min_body_rate is answered 408; a slow but steady one is served', { timeout: 30000 }, async () => {
  const R = await startRouter(echoConfig({ workers: 1, limits: 'header_timeout = 1; min_body_rate = 200;' }));
  try {
    const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';
    const slow = trickler(R.port, { head, everyMs: 100, body: true }); // 10 bytes/s
    await slow.closed;
    assert408(slow, 'slow body');
    assert.ok(slow.closedAt - slow.startedAt >= 950, `cut after ${slow.closedAt - slow.startedAt} ms, inside the grace`);
    await waitFor(() => R.log.includes('"status":408') && R.log.includes('"error":"body_too_slow"'), { what: 'access log line of the cut request' });

    // 1,600 bytes at about 1,000 bytes/s, longer than the grace: served.
    const text = 'y'.repeat(1500);
    const data = Buffer.from(JSON.stringify(chatBody(text)));
    const r = await new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: R.port, path: '/v1/chat/completions', method: 'POST', agent: false,
        headers: { 'content-type': 'application/json', 'content-length': data.length },
      }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve({ status: res.statusCode, body: b }));
      });
      req.on('error', reject);
      let off = 0;
      const timer = setInterval(() => {
        req.write(data.subarray(off, off + 100));
        off += 100;
        if (off >= data.length) { clearInterval(timer); req.end(); }
      }, 100);
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).choices[0].message.content, text);
  } finally {
    await R.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// reloads under keep-alive load

test('20 reloads under keep-alive and streaming load lose no request', { timeout: 180000 }, async () => {
  const R = await startRouter(echoConfig({ workers: 2, echoDelay: 2 }).replace('level = "info"', process.env.SLOWLORIS_DUMP ? 'level = "debug"' : 'level = "info"'));
  // One socket per loop: a socket left idle in a pool could be closed by a draining worker just
  // as the client picks it (the race every HTTP/1.1 keep-alive close has), and only a client
  // stalled for seconds leaves its sockets idle that long.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const st = { plain: 0, streams: 0, failures: 0, afterStall: 0, errors: [] };
  const fail = (what, e) => {
    st.failures++;
    if (st.errors.length < 20) st.errors.push(`${new Date().toISOString()} ${what}: ${e.message}`);
  };
  let running = true;
  // When each pooled socket last finished an answer. A draining worker closes a connection
  // idle for 5 s; a request written on it after that meets the race every keep-alive close has.
  // Only a client stalled for seconds (a starved machine) does that: such a request is counted
  // apart, and the test fails if that happens more than rarely. Every other request must succeed.
  const lastAnswer = new WeakMap();
  const plainLoop = async (i) => {
    for (let k = 0; running; k++) {
      const text = `plain ${i} ${k}`;
      let idleMs = 0;
      let sock;
      try {
        const data = JSON.stringify(chatBody(text));
        const r = await new Promise((resolve, reject) => {
          const req = http.request({
            host: '127.0.0.1', port: R.port, path: '/v1/chat/completions', method: 'POST', agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
          }, (res) => {
            let b = '';
            res.on('data', (c) => { b += c; });
            res.on('end', () => { lastAnswer.set(sock, Date.now()); resolve({ status: res.statusCode, body: b }); });
            res.on('error', reject);
          });
          req.on('socket', (s) => { sock = s; idleMs = lastAnswer.has(s) ? Date.now() - lastAnswer.get(s) : 0; });
          req.setTimeout(10000, () => req.destroy(new Error('no answer in 10 s')));
          req.on('error', reject);
          req.end(data);
        });
        if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
        if (JSON.parse(r.body).choices[0].message.content !== text) throw new Error(`wrong answer ${r.body}`);
        st.plain++;
      } catch (e) {
        if (idleMs >= 4500) st.afterStall++;
        else fail(`plain loop ${i} (connection idle ${idleMs} ms)`, e);
      }
    }
  };
  // The SDK keeps its connections alive too (its own agent, which drops sockets idle for 4 s);
  // no retries, so that a lost request shows.
  const client = clients.openai(R, { apiKey: 'none', timeout: 10000 });
  const streamLoop = async (i) => {
    for (let k = 0; running; k++) {
      const text = `stream ${i} ${k} with a few words`;
      try {
        const stream = await client.chat.completions.create({ ...chatBody(text), stream: true });
        let got = '';
        for await (const ch of stream) got += ch.choices[0]?.delta?.content || '';
        if (got !== text) throw new Error(`stream answered ${JSON.stringify(got)}`);
        st.streams++;
      } catch (e) { fail(`stream loop ${i}`, e); }
    }
  };
  const loops = [];
  for (let i = 0; i < 4; i++) loops.push(plainLoop(i));
  for (let i = 0; i < 2; i++) loops.push(streamLoop(i));
  try {
    let workers = await waitFor(() => { const w = childPids(R.proc.pid); return w.length === 2 ? w : null; }, { what: 'two workers' });
    for (let gen = 2; gen <= 21; gen++) {
      const served = st.plain + st.streams;
      await waitFor(() => st.plain + st.streams > served + 20, { timeout: 10000, what: 'requests served before the next HUP' });
      R.signal('SIGHUP');
      await waitFor(() => R.log.includes(`reload: generation ${gen} started`), { timeout: 10000, what: `generation ${gen}` });
      const old = workers;
      workers = await waitFor(() => {
        const w = childPids(R.proc.pid);
        return w.length === 2 && w.every((p) => !old.includes(p)) ? w : null;
      }, { timeout: 20000, what: `generation ${gen} alone (old ${old})` });
    }
  } finally {
    running = false;
    await Promise.all(loops);
    agent.destroy();
    await R.stop();
  }
  console.log(`20 reloads: ${st.plain} requests and ${st.streams} streams, ${st.failures} failed` +
    (st.afterStall ? `, ${st.afterStall} written on a connection the client had left idle for seconds` : ''));
  assert.ok(st.plain > 100 && st.streams > 20, `the load ran (${st.plain} requests, ${st.streams} streams)`);
  if (st.failures && process.env.SLOWLORIS_DUMP) require('node:fs').writeFileSync(process.env.SLOWLORIS_DUMP, R.log);
  const warnings = R.log.split('\n').filter((l) => /\[(warn|error)\]/.test(l)).slice(0, 20).join('\n');
  assert.equal(st.failures, 0, `requests lost across reloads:\n${st.errors.join('\n')}\nrouter warnings:\n${warnings}`);
  assert.ok(st.afterStall <= 4, `${st.afterStall} requests lost on connections idle for seconds`);
});
