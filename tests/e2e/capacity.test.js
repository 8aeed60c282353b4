'use strict';
// End-to-end tests of what lets a worker hold many streams: the open-file limit the master
// sets (rlimit_nofile), and that an open stream holds only its client and backend sockets.
// How many streams fit and what each costs is measured by `make capacity`, not asserted here.
//
// Run: node --test tests/e2e/capacity.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const clients = require('./lib/client.js');
const { waitFor, startRouter, echoConfig } = require('./lib/harness');
const { startMock } = require('../../scripts/mock-openai.js');

// { soft, hard } open-file limits of a process, from /proc/PID/limits.
function nofile(pid) {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/);
  return { soft: Number(soft), hard: Number(hard) };
}

function openFiles(pid) { return fs.readdirSync(`/proc/${pid}/fd`).length; }

async function withRouter(config, fn) {
  const h = await startRouter(config);
  let ok = false;
  try {
    await fn(h);
    ok = true;
  } finally {
    await h.stop();
    if (!ok) console.log(`---- airouter log ----\n${h.log.slice(-5000)}\n---- end of log ----`);
    fs.rmSync(h.dir, { recursive: true, force: true });
  }
}

test('workers get the open-file limit of rlimit_nofile, and a reload applies a new one', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ extra: 'rlimit_nofile = 4096;' }), async (h) => {
    await waitFor(() => h.workers().length === 2, { what: 'two workers' });
    for (const w of h.workers()) assert.equal(nofile(w).soft, 4096, `worker ${w}`);
    assert.match(h.log, /open-file limit per worker: 4096/);

    h.writeConfig(echoConfig({ extra: 'rlimit_nofile = 2048;' }));
    const old = new Set(h.workers());
    h.signal('SIGHUP');
    await waitFor(() => { const w = h.workers(); return w.length === 2 && w.every((p) => !old.has(p)); },
      { timeout: 15000, what: 'a new generation of two workers' });
    for (const w of h.workers()) assert.equal(nofile(w).soft, 2048, `worker ${w} after the reload`);
  });
});

test('by default workers get the hard open-file limit; one above what the system allows is logged', { timeout: 40000 }, async () => {
  await withRouter(echoConfig(), async (h) => {
    await waitFor(() => h.workers().length === 2, { what: 'two workers' });
    for (const w of h.workers()) {
      const l = nofile(w);
      assert.equal(l.soft, l.hard, `worker ${w}: soft limit raised to the hard one`);
    }
  });
  const tooMany = 1 << 30; // above fs.nr_open: refused even to root
  if (Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8')) >= tooMany) return;
  await withRouter(echoConfig({ extra: `rlimit_nofile = ${tooMany};` }), async (h) => {
    await waitFor(() => h.workers().length === 2, { what: 'two workers' });
    assert.match(h.log, new RegExp(`cannot raise the open-file limit to ${tooMany} \\(rlimit_nofile\\)`));
    for (const w of h.workers()) {
      const l = nofile(w);
      assert.equal(l.soft, l.hard, `worker ${w}: the hard limit is used instead`);
    }
  });
});

test('200 concurrent streams through an HTTP backend all complete, each holding two descriptors', { timeout: 60000 }, async () => {
  const n = 200;
  const mock = await startMock({ port: 0 });
  try {
    const config = `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; };
backends = ( { name = "mock"; type = "openai"; url = "${mock.url}"; } );
models = ( { name = "slow"; backend = "mock"; backend_model = "slow-stream-3x1500"; } );
`;
    await withRouter(config, async (h) => {
      await waitFor(() => h.workers().length === 2, { what: 'two workers' });
      const workers = h.workers();
      const idle = workers.reduce((s, w) => s + openFiles(w), 0);
      const client = clients.openai(h, { apiKey: 'none', timeout: 30000 });
      const streams = [];
      for (let i = 0; i < n; i++) {
        streams.push((async () => {
          const s = await client.chat.completions.create({ model: 'slow', stream: true, messages: [{ role: 'user', content: `stream ${i}` }] });
          let text = '';
          for await (const chunk of s) text += chunk.choices[0]?.delta?.content || '';
          return text;
        })());
      }
      for (const p of streams) p.catch(() => {}); // a failed check below stops the router under them
      // Every stream is open once the backend has its request: each holds its client's
      // socket and its backend socket, and nothing else.
      await waitFor(() => mock.requests.length === n, { timeout: 30000, what: `${n} requests at the backend` });
      const busy = workers.reduce((s, w) => s + openFiles(w), 0);
      assert.ok(busy - idle <= 2 * n + 8, `${busy - idle} more descriptors for ${n} open streams (at most ${2 * n + 8} expected)`);
      const texts = await Promise.all(streams);
      for (const t of texts) assert.equal(t, 'w0 w1 w2 ');
    });
  } finally {
    await mock.close();
  }
});

// A relayed answer of unknown length reaches an HTTP/1.0 client unchunked, through MHD's response
// block (16 KB): a stream several blocks long arrives whole.
test('an HTTP/1.0 client gets a stream several times longer than the relay block, whole and unchunked', { timeout: 40000 }, async () => {
  const mock = await startMock({ port: 0 });
  try {
    const config = `
listen = "127.0.0.1:@PORT@";
workers = 1;
log = { level = "info"; };
backends = ( { name = "mock"; type = "openai"; url = "${mock.url}"; } );
models = ( { name = "long"; backend = "mock"; backend_model = "slow-stream-300x1"; } );
`;
    await withRouter(config, async (h) => {
      const body = JSON.stringify({ model: 'long', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      const answer = await new Promise((resolve, reject) => {
        const sock = net.connect(h.port, '127.0.0.1', () => {
          sock.write(`POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        });
        const parts = [];
        sock.on('data', (d) => parts.push(d));
        sock.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
        sock.on('error', reject);
        sock.setTimeout(30000, () => { sock.destroy(); reject(new Error('no end of the answer within 30 s')); });
      });
      const [head, ...rest] = answer.split('\r\n\r\n');
      const payload = rest.join('\r\n\r\n');
      assert.match(head, /^HTTP\/1\.[01] 200 /);
      assert.doesNotMatch(head, /transfer-encoding: chunked/i);
      assert.ok(payload.length > 2 * 16384, `${payload.length} bytes of answer`);
      let text = '';
      const data = payload.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
      assert.equal(data.at(-1), '[DONE]');
      for (const d of data.slice(0, -1)) text += JSON.parse(d).choices[0]?.delta?.content || '';
      assert.equal(text, Array.from({ length: 300 }, (_, i) => `w${i} `).join(''));
    });
  } finally {
    await mock.close();
  }
});
