'use strict';
// What the mock servers (mock-openai.js, mock-anthropic.js, mock-otlp.js, mock-triton.js) have in
// common: listening, waiting for a condition on what they received, the record of HTTP connections
// and requests, and running as a command.

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Waits for conditions on state that notify() says has changed.
function makeWaiters() {
  const waiters = new Set();
  return {
    notify() { for (const w of [...waiters]) w(); },
    // Resolves with fn()'s first truthy value; rejects after ms.
    waitCond(fn, ms, what) {
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
    },
    add(check) { waiters.add(check); },
    delete(check) { waiters.delete(check); },
    clear() { waiters.clear(); },
  };
}

// Listens on host:port (0: any free port); resolves { port, base } (base: http://host:port).
async function listen(server, port, host) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const actual = server.address().port;
  return { port: actual, base: `http://${host.includes(':') ? `[${host}]` : host}:${actual}` };
}

// Closes an HTTP server, ending its open connections first.
function closeServer(server, sockets) {
  return new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
}

// The record of an HTTP mock: every connection { id, openedAt, closedAt, remotePort, requests }
// and request record, in order, with events [{ type: open|request|close, ... }]. A request whose
// connection closes before its answer finished is marked aborted; each record learns when the
// socket that carried it closed (socketClosedAt). record false keeps nothing (a long-running
// command).
function httpRecorder(server, { record = true } = {}) {
  const requests = [];
  const connections = [];
  const events = [];
  const sockets = new Set();
  const w = makeWaiters();
  let connSeq = 0;
  let reqSeq = 0;
  let closedCount = 0;

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
      w.notify();
    });
  });

  return {
    requests, connections, events, sockets,
    notify: w.notify,
    waitCond: w.waitCond,
    get closedCount() { return closedCount; },
    // A new request record with the fields every mock keeps, and `fields` added.
    newRecord(req, fields) {
      const conn = req.socket._mockConn;
      return {
        id: ++reqSeq, conn: conn ? conn.id : null, method: req.method, path: req.url, headers: { ...req.headers },
        ...fields,
        time: Date.now(), socketClosedAt: null, finishedAt: null, aborted: false, chunksSent: 0, response: null, status: null,
      };
    },
    // Records rec (made by newRecord) for req, answered on res.
    add(req, res, rec) {
      const conn = req.socket._mockConn;
      if (conn) { conn.requests.push(rec.id); conn.recs.push(rec); if (conn.closedAt) rec.socketClosedAt = conn.closedAt; }
      if (record) requests.push(rec);
      if (record) events.push({ type: 'request', conn: rec.conn, req: rec.id, time: rec.time, method: req.method, path: req.url, model: rec.model });
      res.on('finish', () => {
        rec.finishedAt = Date.now();
        if (conn) { const i = conn.recs.indexOf(rec); if (i >= 0) conn.recs.splice(i, 1); }
        w.notify();
      });
      w.notify();
    },
    // Gives the mock's handle m the fields and methods that read the record; returns m.
    attach(m) {
      return Object.defineProperties(m, Object.getOwnPropertyDescriptors({
        requests, connections, events,
        get closedCount() { return closedCount; },
        get openCount() { return sockets.size; },
        reset() { requests.length = 0; events.length = 0; },
        last(pred = () => true) { for (let i = requests.length - 1; i >= 0; i--) if (pred(requests[i])) return requests[i]; return undefined; },
        // Resolves with the first recorded request for which pred(rec) is true.
        waitFor(pred, ms = 5000) { return w.waitCond(() => requests.find(pred), ms, 'mock request'); },
        // Resolves (with the close time) once the socket that carried rec has closed.
        waitClosed(rec, ms = 5000) { return w.waitCond(() => rec.socketClosedAt, ms, `mock request ${rec.id} socket close`); },
        close: () => closeServer(server, sockets),
      }));
    },
  };
}

// Runs a mock as a command: `usage` for -h/--help; start(opt, has) resolves the mock's handle,
// whose address (shown(m), its url unless said otherwise) is printed; SIGINT and SIGTERM close it.
// opt(name, default) reads "--name value", has(flag) says whether a flag is given.
function runCommand(name, usage, start, { shown = (m) => m.url } = {}) {
  const args = process.argv.slice(2);
  const opt = (n, def) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : def; };
  const has = (flag) => args.includes(flag);
  if (has('-h') || has('--help')) {
    console.log(`usage: ${usage}`);
    process.exit(0);
  }
  start(opt, has).then((m) => {
    console.error(`${name} listening on ${shown(m)}`);
    const stop = () => Promise.resolve(m.close()).then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }, (e) => { console.error(`${name}: ${e.message}`); process.exit(1); });
}

module.exports = { sleep, makeWaiters, listen, closeServer, httpRecorder, runCommand };
