'use strict';
// End-to-end tests of the process model: master/worker forking, signals (HUP, TTIN/TTOU,
// QUIT, USR1, KILL), pidfile, -t / -s, and request ids. Everything runs on 127.0.0.1,
// every test is bounded in time and cleans up the processes and files it created.
//
// Run: cd /work/main && node --test tests/e2e/process.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const clients = require('./lib/client.js');
const {
  REPO, BIN, sleep, freePort, tmpDir, waitFor, childPids, alive, startRouter, echoConfig,
} = require('./lib/harness');
const { request: httpRequest } = require('./lib/http.js');

// ---------------------------------------------------------------------------------------------
// local helpers

// A process is gone when it no longer exists or is a zombie nobody reaped yet (an orphaned
// worker is reparented to PID 1, which in a container may not reap it).
// A multi-threaded process whose main thread exited also shows Z while its other threads
// still run (and hold its sockets), so every thread must be a zombie.
function gone(pid) {
  if (!alive(pid)) return true;
  try {
    return fs.readdirSync(`/proc/${pid}/task`).every((tid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
      } catch { return true; }
    });
  } catch { return true; }
}

function sameSet(a, b) {
  return a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);
}

// One HTTP request on a fresh connection: { status, headers, body }; rejects on a socket error or
// when no answer came within timeout ms.
const request = (base, { path: p = '/', timeout = 5000, ...opts } = {}) => httpRequest(base, p, { timeout, ...opts });

function chat(base, text, headers = {}) {
  return request(base, {
    method: 'POST', path: '/v1/chat/completions', headers,
    body: { model: 'echo', messages: [{ role: 'user', content: text }] },
  });
}

// Asserts a chat answer from the echo model.
function checkEcho(r, text) {
  assert.equal(r.status, 200, `status ${r.status}: ${r.body}`);
  const j = JSON.parse(r.body);
  assert.equal(j.choices[0].message.content, text);
}

// Tries a TCP connect; resolves 'refused', 'connected' or another error code.
function tryConnect(port, timeout = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, timeout);
    s.on('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
    s.on('error', (e) => { clearTimeout(t); resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code); });
  });
}

// Concurrent load: `n` loops, each POSTing chat requests on fresh connections until stop().
function startLoad(base, n = 8) {
  const st = { requests: 0, failures: 0, errors: [] };
  let running = true;
  const loops = [];
  for (let i = 0; i < n; i++) {
    loops.push((async () => {
      let k = 0;
      while (running) {
        const text = `load ${i} request ${k++}`;
        st.requests++;
        try {
          checkEcho(await chat(base, text), text);
        } catch (e) {
          st.failures++;
          if (st.errors.length < 20) st.errors.push(`${new Date().toISOString()} loop ${i}: ${e.message}`);
        }
      }
    })());
  }
  st.stop = async () => { running = false; await Promise.all(loops); return st; };
  return st;
}

// Resolves once the load has made `more` more requests (so that it runs across what comes next).
async function loadRunning(load, more = 40) {
  const n = load.requests;
  await waitFor(() => load.requests >= n + more, { timeout: 10000, what: `${more} more requests of the load` });
}

// The error-log part of the captured output (access lines, which also go to stderr by
// default, are dropped), last 150 lines.
function masterLog(text) {
  return text.split('\n').filter((l) => !l.startsWith('{')).slice(-150).join('\n');
}

// Runs fn(h) against a started router; always stops it, kills any worker it saw (so a
// misbehaving binary leaves no orphans), prints the log when the test failed, and removes
// the temp directory.
async function withRouter(config, opts, fn) {
  const h = await startRouter(config, opts);
  const seen = new Set();
  const origWorkers = h.workers;
  h.workers = () => { const w = origWorkers(); for (const p of w) seen.add(p); return w; };
  let ok = false;
  try {
    await fn(h);
    ok = true;
  } finally {
    h.workers();
    await h.stop();
    for (const p of seen) { try { process.kill(p, 'SIGKILL'); } catch { } }
    if (!ok) console.log(`---- airouter log (port ${h.port}) ----\n${masterLog(h.log)}\n---- end of log ----`);
    fs.rmSync(h.dir, { recursive: true, force: true });
  }
  return h;
}

// Waits until the master has exactly n children and the count stays n for `settle` ms. This one
// watches a window of time on purpose: a surplus or a late respawn has no event of its own to wait
// for, so the count is sampled over the window as well as after it.
async function waitWorkers(h, n, what, { timeout = 10000, settle = 300 } = {}) {
  await waitFor(() => h.workers().length === n, { timeout, what: `${what} (${n} workers, have ${JSON.stringify(h.workers())})` });
  let w = h.workers();
  for (const end = Date.now() + settle; ;) {
    w = h.workers();
    assert.equal(w.length, n, `${what}: expected ${n} workers to stay, got ${JSON.stringify(w)}`);
    if (Date.now() >= end) break;
    await sleep(20);
  }
  return w;
}

// Runs the binary to completion. It runs in its own session (setsid) so that a bug that
// signals process group 0 (e.g. -s with an unreadable pidfile) cannot hit the test runner.
function runBin(args, { timeout = 10000, cwd = REPO, env = {} } = {}) {
  const r = spawnSync('setsid', ['-w', BIN, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout, killSignal: 'SIGKILL' });
  return { status: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

// ---------------------------------------------------------------------------------------------

test('workers are forked as configured, and -w overrides the config', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 3 }), {}, async (h) => {
    const w = await waitWorkers(h, 3, 'workers = 3');
    await waitFor(() => w.every((p) => h.log.includes(`worker ${p} started (generation 1)`)),
      { timeout: 3000, what: `log "worker PID started (generation 1)" for ${w}` });
    checkEcho(await chat(h.base, 'three workers'), 'three workers');
  });
  await withRouter(echoConfig({ workers: 3 }), { args: ['-w', '2'] }, async (h) => {
    await waitWorkers(h, 2, 'workers = 3 with -w 2', { settle: 500 });
    checkEcho(await chat(h.base, 'two workers'), 'two workers');
  });
});

test('TTIN adds a worker, TTOU removes one, never below 1', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    const w2 = await waitWorkers(h, 2, 'start');
    h.signal('SIGTTIN');
    const w3 = await waitWorkers(h, 3, 'after TTIN');
    assert.ok(w2.every((p) => w3.includes(p)), `TTIN keeps existing workers: ${w2} -> ${w3}`);
    h.signal('SIGTTOU');
    const w2b = await waitWorkers(h, 2, 'after TTOU');
    assert.ok(w2b.every((p) => w3.includes(p)), `TTOU forks no new worker: ${w3} -> ${w2b}`);
    h.signal('SIGTTOU');
    const w1 = await waitWorkers(h, 1, 'after second TTOU');
    // The master logs "workers: N" as it handles each TTOU (after retiring a worker, if it does).
    const mark = h.log.length;
    const handled = (n) => (h.log.slice(mark).match(/workers: \d+/g) || []).length >= n;
    h.signal('SIGTTOU');
    await waitFor(() => handled(1), { timeout: 5000, what: 'the master handled the first TTOU at 1 worker' });
    h.signal('SIGTTOU');
    await waitFor(() => handled(2), { timeout: 5000, what: 'the master handled the second TTOU at 1 worker' });
    assert.deepEqual(h.workers(), w1, 'TTOU at 1 worker neither removes nor replaces it');
    checkEcho(await chat(h.base, 'one worker left'), 'one worker left');
    // The barrier: the master handles the TTIN after the TTOUs, so a worker they retired or
    // replaced would show in the log before the TTIN's "workers: 2".
    h.signal('SIGTTIN');
    const w2c = await waitWorkers(h, 2, 'TTIN after TTOU at the minimum');
    const upToTtin = h.log.slice(mark, mark + h.log.slice(mark).indexOf('workers: 2'));
    assert.ok(!/worker \d+ (started|exited|killed)/.test(upToTtin), `TTOU at 1 worker changed the workers:\n${masterLog(upToTtin)}`);
    assert.ok(w2c.includes(w1[0]), 'the last worker is still there');
  });
});

test('kill -9 of a worker: a replacement appears and the count returns', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    const before = await waitWorkers(h, 2, 'start');
    const victim = before[0];
    process.kill(victim, 'SIGKILL');
    const after = await waitFor(() => {
      const w = h.workers();
      return w.length === 2 && !w.includes(victim) && gone(victim) ? w : null;
    }, { timeout: 5000, what: `replacement of killed worker ${victim}` });
    assert.ok(after.includes(before[1]), 'the other worker is untouched');
    await waitFor(() => h.log.includes(`worker ${victim} killed by signal 9`), { timeout: 3000, what: `log "worker ${victim} killed by signal 9"` });
    const repl = after.find((p) => p !== before[1]);
    await waitFor(() => h.log.includes(`worker ${repl} started`), { timeout: 3000, what: `log "worker ${repl} started"` });
    await waitWorkers(h, 2, 'after replacement', { settle: 500 });
    checkEcho(await chat(h.base, 'still serving'), 'still serving');
  });
});

test('HUP with a valid config rolls every worker with zero failed requests under load', { timeout: 60000 }, async () => {
  await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    const gen1 = await waitWorkers(h, 2, 'start');
    const generations = () => (h.log.match(/reload: generation \d+ started/g) || []).length;
    const load = startLoad(h.base, 8);
    let st;
    try {
      await loadRunning(load);
      // One HUP with an unchanged (valid) config.
      h.signal('SIGHUP');
      const gen2 = await waitFor(() => {
        const w = h.workers();
        return w.length === 2 && w.every((p) => !gen1.includes(p)) && gen1.every(gone) ? w : null;
      }, { timeout: 15000, what: `all workers replaced after HUP (old ${gen1})` });
      await waitFor(() => /reload: generation \d+ started/.test(h.log), { timeout: 3000, what: 'log "reload: generation G started"' });
      await loadRunning(load);
      // Three HUPs in a row (a changed but valid config), still under load.
      h.writeConfig(echoConfig({ workers: 2, limits: 'idle_timeout = 30;' }));
      // One after the other, each once the master has started its generation (a HUP that comes
      // before the master handled the one before is merged with it), while the rolls go on.
      for (let i = 0; i < 3; i++) {
        const n = generations();
        h.signal('SIGHUP');
        await waitFor(() => generations() > n, { timeout: 5000, what: `generation started for HUP ${i + 1} of 3` });
      }
      await waitFor(() => {
        const w = h.workers();
        return w.length === 2 && w.every((p) => !gen2.includes(p)) && gen2.every(gone) ? w : null;
      }, { timeout: 20000, what: `all workers replaced after 3 HUPs (old ${gen2})` });
      await waitWorkers(h, 2, 'settled after 3 HUPs', { settle: 1000 });
    } finally {
      st = await load.stop();
    }
    console.log(`rolling restart: ${st.requests} requests, ${st.failures} failed`);
    assert.ok(st.requests > 0, 'the load made requests');
    assert.equal(st.failures, 0, `failed requests during rolling restarts:\n${st.errors.join('\n')}`);
    checkEcho(await chat(h.base, 'after the rolls'), 'after the rolls');
  });
});

test('HUP with a broken config keeps the current workers', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    const before = await waitWorkers(h, 2, 'start');
    const keepRe = (conf) => new RegExp(`reload: configuration ${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: .+; keeping current workers`, 'g');
    const count = () => (h.log.match(keepRe(h.confPath)) || []).length;
    const mark = h.log.length;

    // 1: unknown key
    h.writeConfig(echoConfig({ workers: 2, extra: 'no_such_key = 1;' }));
    h.signal('SIGHUP');
    await waitFor(() => count() >= 1, { timeout: 5000, what: 'log "reload: configuration FILE:LINE: ...; keeping current workers" (unknown key)' });
    assert.ok(h.log.includes('reload:') && h.log.includes('keeping current workers'));
    assert.deepEqual(h.workers(), before, 'same workers after HUP with unknown key');
    checkEcho(await chat(h.base, 'unknown key ignored'), 'unknown key ignored');

    // 2: syntax error
    h.writeConfig('listen = "127.0.0.1:@PORT@";\nworkers = ;\n');
    h.signal('SIGHUP');
    await waitFor(() => count() >= 2, { timeout: 5000, what: 'second "keeping current workers" (syntax error)' });
    assert.deepEqual(h.workers(), before, 'same workers after HUP with a syntax error');
    assert.ok(!/reload: generation \d+ started/.test(h.log), 'no new generation was started');
    const r = await request(h.base, { path: '/health' });
    assert.equal(r.status, 200);
    checkEcho(await chat(h.base, 'syntax error ignored'), 'syntax error ignored');

    // The barrier: one more HUP (the broken config is still there). The master handles it after
    // the two before, so a worker they started or retired shows in the log before its line.
    h.signal('SIGHUP');
    await waitFor(() => count() >= 3, { timeout: 5000, what: 'third "keeping current workers" (the barrier)' });
    const upTo = h.log.slice(mark, h.log.lastIndexOf('keeping current workers'));
    assert.ok(!/worker \d+ (started|exited|killed)|reload: generation/.test(upTo), `a broken HUP changed the workers:\n${masterLog(upTo)}`);
    assert.deepEqual(h.workers(), before, 'same workers after the broken HUPs');
    assert.ok(before.every((p) => !gone(p)), 'old workers alive');
  });
});

test('QUIT lets an in-flight slow stream finish, refuses new connections, exits 0', { timeout: 40000 }, async () => {
  // 9 words 300 ms apart: ~2.4 s of stream left after QUIT, room for the refusal check on a slow machine
  await withRouter(echoConfig({ workers: 2, echoDelay: 300 }), {}, async (h) => {
    await waitWorkers(h, 2, 'start', { settle: 100 });
    const msg = 'the quick brown fox jumps over the lazy dog';
    const client = clients.openai(h, { apiKey: 'x' });
    const stream = await client.chat.completions.create({
      model: 'echo', stream: true, messages: [{ role: 'user', content: msg }],
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    let quitAt = 0;
    let refused = null;
    let refusedCheck = null;
    for await (const chunk of stream) {
      chunks++;
      const c = chunk.choices[0];
      if (c && c.delta && c.delta.content) text += c.delta.content;
      if (c && c.finish_reason) finish = c.finish_reason;
      if (chunks === 1) {
        h.signal('SIGQUIT');
        quitAt = Date.now();
        // While the stream is still being relayed, new connections must be refused.
        let lastTry = null;
        refusedCheck = waitFor(async () => (lastTry = await tryConnect(h.port, 500)) === 'refused',
          { timeout: 2000, interval: 50, what: 'new connection refused after QUIT' })
          .catch(() => { throw new Error(`new connection not refused within 2 s of QUIT, while the stream is in flight (last attempt: ${lastTry})`); })
          .then(() => { refused = Date.now(); }, (e) => { refused = e; });
      }
    }
    const streamEnd = Date.now();
    await refusedCheck;
    assert.equal(text.split(/\s+/).filter(Boolean).join(' '), msg, `whole text arrived (got ${JSON.stringify(text)})`);
    assert.equal(text.trim(), msg);
    assert.equal(finish, 'stop');
    assert.ok(streamEnd - quitAt >= 1000, `stream kept going after QUIT (${streamEnd - quitAt} ms)`);
    const ex = await Promise.race([h.exited, sleep(12000).then(() => 'timeout')]);
    assert.deepEqual(ex, { code: 0, signal: null }, 'master exits with code 0 after QUIT');
    assert.ok(!(refused instanceof Error), refused instanceof Error ? refused.message : '');
    assert.ok(refused <= streamEnd + 50, 'new connections were refused while the stream was still in flight');
    assert.equal(await tryConnect(h.port), 'refused');
  });
});

test('QUIT (the whole service stops) closes idle kept-alive connections at once, while a stream in flight still finishes', { timeout: 40000 }, async () => {
  // One worker, so the idle connection and the stream share it; 12 words 400 ms apart.
  await withRouter(echoConfig({ workers: 1, echoDelay: 400 }), {}, async (h) => {
    await waitWorkers(h, 1, 'start', { settle: 100 });
    // An idle kept-alive connection: one request answered, then nothing more sent.
    const idle = net.connect(h.port, '127.0.0.1');
    await new Promise((resolve, reject) => { idle.once('connect', resolve); idle.once('error', reject); });
    let idleData = '';
    idle.on('data', (d) => { idleData += d; });
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));
    idle.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => idleData.includes('{"status":"ok"}'), { what: 'health answer on the idle connection' });

    const msg = 'one two three four five six seven eight nine ten eleven twelve';
    const client = clients.openai(h, { apiKey: 'x', timeout: 30000 });
    const stream = await client.chat.completions.create({ model: 'echo', stream: true, messages: [{ role: 'user', content: msg }] });
    let text = '';
    let chunks = 0;
    let chunksWhenIdleClosed = null;
    idleClosed.then(() => { chunksWhenIdleClosed = chunks; });
    for await (const chunk of stream) {
      chunks++;
      const c = chunk.choices[0];
      if (c && c.delta && c.delta.content) text += c.delta.content;
      if (chunks === 1) h.signal('SIGQUIT');
    }
    await idleClosed;
    assert.equal(text.trim(), msg, 'the stream in flight finished');
    // Closed at once: a retiring worker of a reload waits 5 s (12 chunks at 400 ms) for quiet.
    assert.ok(chunksWhenIdleClosed !== null && chunksWhenIdleClosed <= 5,
      `the idle connection was closed after ${chunksWhenIdleClosed} of ${chunks} chunks, not at once`);
    const ex = await Promise.race([h.exited, sleep(12000).then(() => 'timeout')]);
    assert.deepEqual(ex, { code: 0, signal: null }, 'master exits with code 0 after QUIT');
  });
});

test('-t accepts etc/airouter.conf and rejects a broken config with file and line', { timeout: 30000 }, async () => {
  const good = path.join(REPO, 'etc', 'airouter.conf');
  const r = runBin(['-t', '-c', good]);
  assert.equal(r.status, 0, `-t on ${good}: status ${r.status} ${r.signal || ''}\n${r.stderr}`);
  assert.ok(r.stderr.includes(`configuration ${good} is ok`), r.stderr);

  const dir = tmpDir();
  try {
    const port = await freePort();
    // syntax error on line 3
    const bad1 = path.join(dir, 'syntax.conf');
    fs.writeFileSync(bad1, `listen = "127.0.0.1:${port}";\nworkers = 2;\nworkers_x = ;\n`);
    const r1 = runBin(['-t', '-c', bad1]);
    assert.equal(r1.status, 1, `syntax error: status ${r1.status}\n${r1.stderr}`);
    assert.ok(r1.stderr.includes(`${bad1}:3:`), `stderr names ${bad1}:3: -> ${r1.stderr}`);
    assert.ok(r1.stderr.includes(`configuration ${bad1} test failed`), r1.stderr);

    // unknown key on line 5
    const bad2 = path.join(dir, 'unknown.conf');
    fs.writeFileSync(bad2, echoConfig({ workers: 2 }).replaceAll('@PORT@', String(port)).trimStart()
      .replace('log = {', 'bogus_setting = 7;\nlog = {'));
    assert.equal(fs.readFileSync(bad2, 'utf8').split('\n')[2], 'bogus_setting = 7;');
    const r2 = runBin(['-t', '-c', bad2]);
    assert.equal(r2.status, 1, `unknown key: status ${r2.status}\n${r2.stderr}`);
    assert.ok(r2.stderr.includes(`${bad2}:3:`), `stderr names ${bad2}:3: -> ${r2.stderr}`);
    assert.ok(r2.stderr.includes(`configuration ${bad2} test failed`), r2.stderr);

    // a good temp config passes too, and -t starts nothing (port stays free)
    const ok = path.join(dir, 'ok.conf');
    fs.writeFileSync(ok, echoConfig({ workers: 2 }).replaceAll('@PORT@', String(port)));
    const r3 = runBin(['-t', '-c', ok]);
    assert.equal(r3.status, 0, r3.stderr);
    assert.equal(await tryConnect(port), 'refused', '-t does not leave anything listening');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pidfile holds the master pid, is removed on stop, and blocks a second instance', { timeout: 40000 }, async () => {
  let pidfile;
  const h = await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    pidfile = h.pidfile;
    await waitFor(() => fs.existsSync(h.pidfile) && fs.readFileSync(h.pidfile, 'utf8').trim() === String(h.proc.pid),
      { timeout: 5000, what: `pidfile ${h.pidfile} containing ${h.proc.pid}` });
    // A second instance on another port but the same pidfile must refuse to start.
    const port2 = await freePort();
    const conf2 = path.join(h.dir, 'second.conf');
    fs.writeFileSync(conf2, echoConfig({ workers: 1 }).replaceAll('@PORT@', String(port2)));
    const r = runBin(['-c', conf2, '-p', h.pidfile], { timeout: 8000 });
    assert.equal(r.status, 1, `second instance: status ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.ok(r.stderr.trim().length > 0, 'second instance prints a message');
    assert.equal(await tryConnect(port2), 'refused', 'second instance did not listen');
    assert.equal(fs.readFileSync(h.pidfile, 'utf8').trim(), String(h.proc.pid), 'pidfile untouched');
    assert.ok(alive(h.proc.pid));
    checkEcho(await chat(h.base, 'first instance alive'), 'first instance alive');
    const ex = await h.stop();
    assert.equal(ex.signal, null, `master exited by itself on TERM (${JSON.stringify(ex)})`);
    assert.ok(!fs.existsSync(h.pidfile), 'pidfile removed after stop');
  });
  assert.ok(!alive(h.proc.pid));
  assert.ok(!fs.existsSync(pidfile));
});

test('-s reload and -s quit work through the pidfile', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 2, extra: 'pidfile = "@DIR@/from-config.pid";' }), { args: [] }, async (h) => {
    const gen1 = await waitWorkers(h, 2, 'start');
    await waitFor(() => fs.existsSync(h.pidfile), { timeout: 5000, what: 'pidfile' });
    // -s reload: pidfile given with -p
    const r1 = runBin(['-c', h.confPath, '-p', h.pidfile, '-s', 'reload']);
    assert.equal(r1.status, 0, `-s reload: ${r1.status}\n${r1.stderr}`);
    const gen2 = await waitFor(() => {
      const w = h.workers();
      return w.length === 2 && w.every((p) => !gen1.includes(p)) && gen1.every(gone) ? w : null;
    }, { timeout: 15000, what: 'workers rolled after -s reload' });
    await waitFor(() => /reload: generation \d+ started/.test(h.log), { timeout: 3000, what: 'log "reload: generation G started"' });
    checkEcho(await chat(h.base, 'reloaded'), 'reloaded');

    // -s reload with a pidfile naming no process -> exit 1 with a message
    const failedFrom = h.log.length;
    const stale = path.join(h.dir, 'stale.pid');
    fs.writeFileSync(stale, '999999999\n');
    const rs = runBin(['-c', h.confPath, '-p', stale, '-s', 'reload']);
    assert.equal(rs.status, 1, `-s reload with a stale pidfile: ${rs.status}\n${rs.stderr}`);
    assert.ok(rs.stderr.trim().length > 0);
    const rm = runBin(['-c', h.confPath, '-p', path.join(h.dir, 'missing.pid'), '-s', 'reload']);
    assert.equal(rm.status, 1, `-s reload with a missing pidfile: ${rm.status}\n${rm.stderr}`);
    assert.deepEqual(h.workers(), gen2, 'failed -s did not touch the workers');

    // -s quit, also the barrier: the master handles it after anything the failed -s might have
    // sent, which would show in the log before its "graceful stop" line.
    const r2 = runBin(['-c', h.confPath, '-p', h.pidfile, '-s', 'quit']);
    assert.equal(r2.status, 0, `-s quit: ${r2.status}\n${r2.stderr}`);
    await waitFor(() => h.log.includes('graceful stop', failedFrom), { timeout: 5000, what: 'log "graceful stop"' });
    const beforeQuit = h.log.slice(failedFrom, h.log.indexOf('graceful stop', failedFrom));
    assert.ok(!/reload|worker \d+ (started|exited|killed)/.test(beforeQuit), `failed -s reached the master:\n${masterLog(beforeQuit)}`);
    const ex = await Promise.race([h.exited, sleep(12000).then(() => 'timeout')]);
    assert.deepEqual(ex, { code: 0, signal: null }, 'master exits 0 after -s quit');
    assert.ok(gen2.every(gone), 'workers gone');
    assert.ok(!fs.existsSync(h.pidfile), 'pidfile removed');
    // nothing to signal any more
    const r3 = runBin(['-c', h.confPath, '-p', h.pidfile, '-s', 'reload']);
    assert.equal(r3.status, 1, `-s reload after quit: ${r3.status}\n${r3.stderr}`);
  });
});

test('-s reload reads the pidfile from the config when -p is absent', { timeout: 40000 }, async () => {
  const port = await freePort();
  const dir = tmpDir();
  const conf = path.join(dir, 'airouter.conf');
  const pidfile = path.join(dir, 'from-config.pid');
  fs.writeFileSync(conf, echoConfig({ workers: 1, extra: `pidfile = "${pidfile}";` }).replaceAll('@PORT@', String(port)));
  const proc = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let workers = [];
  let ok = false;
  try {
    await waitFor(() => fs.existsSync(pidfile) && fs.readFileSync(pidfile, 'utf8').trim() === String(proc.pid),
      { timeout: 10000, what: `config pidfile ${pidfile}` });
    await waitFor(() => (workers = childPids(proc.pid)).length === 1, { timeout: 5000, what: '1 worker' });
    const r = runBin(['-c', conf, '-s', 'reload']);
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => { const w = childPids(proc.pid); return w.length === 1 && w[0] !== workers[0] && gone(workers[0]); },
      { timeout: 15000, what: 'worker rolled' });
    const q = runBin(['-c', conf, '-s', 'quit']);
    assert.equal(q.status, 0, q.stderr);
    const ex = await Promise.race([exited, sleep(12000).then(() => 'timeout')]);
    assert.deepEqual(ex, { code: 0, signal: null });
    assert.ok(!fs.existsSync(pidfile));
    ok = true;
  } finally {
    for (const p of [...workers, ...childPids(proc.pid)]) { try { process.kill(p, 'SIGKILL'); } catch { } }
    try { proc.kill('SIGKILL'); } catch { }
    if (!ok) console.log(`---- airouter log ----\n${log}\n---- end ----`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('workers exit when the master is killed with SIGKILL', { timeout: 30000 }, async () => {
  await withRouter(echoConfig({ workers: 3 }), {}, async (h) => {
    const w = await waitWorkers(h, 3, 'start');
    h.signal('SIGKILL');
    await h.exited;
    await waitFor(() => w.every(gone), { timeout: 5000, what: `workers ${w} gone after master SIGKILL (left: ${w.filter((p) => !gone(p))})` });
    assert.equal(await tryConnect(h.port), 'refused', 'nothing listens any more');
  });
});

test('USR1 reopens the access log', { timeout: 40000 }, async () => {
  const config = `
listen = "127.0.0.1:@PORT@";
workers = 2;
log = { level = "info"; access_log = "@DIR@/access.log"; };
limits = { drain_timeout = 10; };
backends = ( { name = "echo"; type = "echo"; chunk_delay_ms = 0; } );
models = ( { name = "echo"; backend = "echo"; default = true; } );
`;
  await withRouter(config, {}, async (h) => {
    const workers = await waitWorkers(h, 2, 'start');
    const logPath = path.join(h.dir, 'access.log');
    const rotated = path.join(h.dir, 'access.log.1');
    const readLines = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

    checkEcho(await chat(h.base, 'before rotation', { 'x-request-id': 'rid-before-1' }), 'before rotation');
    await waitFor(() => readLines(logPath).some((l) => l.request_id === 'rid-before-1'), { timeout: 3000, what: 'access line before rotation' });

    fs.renameSync(logPath, rotated);
    checkEcho(await chat(h.base, 'between', { 'x-request-id': 'rid-between' }), 'between');
    await waitFor(() => readLines(rotated).some((l) => l.request_id === 'rid-between'), { timeout: 3000, what: 'line written to the renamed file before USR1' });
    assert.ok(!fs.existsSync(logPath), 'no new file before USR1');

    h.signal('SIGUSR1');
    // Each worker reopens on its own signal, in its own time: wait until every one holds the new
    // file open (a descriptor naming access.log; the old file's now names access.log.1).
    const newLog = path.join(fs.realpathSync(h.dir), 'access.log');
    const holdsNewLog = (pid) => {
      try {
        return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === newLog; } catch { return false; } });
      } catch { return false; }
    };
    await waitFor(() => workers.every(holdsNewLog), { timeout: 5000, what: `workers ${workers} reopening ${newLog} after USR1` });
    const ids = [];
    for (let i = 0; i < 6; i++) {
      const id = `rid-after-${i}`;
      ids.push(id);
      checkEcho(await chat(h.base, `after rotation ${i}`, { 'x-request-id': id }), `after rotation ${i}`);
    }
    await waitFor(() => { const l = readLines(logPath); return ids.every((id) => l.some((x) => x.request_id === id)); },
      { timeout: 3000, what: `new ${logPath} with all post-USR1 lines` });
    assert.ok(!readLines(rotated).some((l) => ids.includes(l.request_id)), 'no post-USR1 line went to the renamed file');

    const line = readLines(logPath).find((l) => l.request_id === 'rid-after-0');
    for (const k of ['time', 'request_id', 'method', 'path', 'status', 'bytes', 'duration_ms', 'worker', 'key', 'model', 'backend']) {
      assert.ok(k in line, `access line has "${k}": ${JSON.stringify(line)}`);
    }
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/v1/chat/completions');
    assert.equal(line.status, 200);
    assert.equal(typeof line.bytes, 'number');
    assert.ok(line.bytes > 0);
    assert.equal(typeof line.duration_ms, 'number');
    assert.equal(typeof line.worker, 'number');
    assert.ok(workers.includes(line.worker), `worker ${line.worker} is one of ${workers}`);
    assert.equal(line.key, null);
    assert.equal(line.model, 'echo');
    assert.equal(line.backend, 'echo');
    assert.deepEqual(h.workers(), workers, 'USR1 does not restart workers');
  });
});

test('X-Request-Id is echoed when given and generated otherwise', { timeout: 30000 }, async () => {
  await withRouter(echoConfig({ workers: 2 }), {}, async (h) => {
    const given = 'client-req-id-12345';
    const a = await chat(h.base, 'hi there', { 'x-request-id': given });
    checkEcho(a, 'hi there');
    assert.equal(a.headers['x-request-id'], given);
    const ah = await request(h.base, { path: '/health', headers: { 'X-Request-Id': 'health-abc' } });
    assert.equal(ah.status, 200);
    assert.equal(ah.headers['x-request-id'], 'health-abc');

    const b = await chat(h.base, 'no id');
    const c = await chat(h.base, 'no id');
    checkEcho(b, 'no id');
    const idB = b.headers['x-request-id'];
    const idC = c.headers['x-request-id'];
    assert.equal(typeof idB, 'string');
    assert.ok(idB.length > 0, 'generated id is non-empty');
    assert.ok(idC.length > 0, 'generated id is non-empty');
    assert.notEqual(idB, idC, 'generated ids differ between requests');
    // errors carry one too
    const nf = await request(h.base, { path: '/no/such/path' });
    assert.equal(nf.status, 404);
    assert.ok((nf.headers['x-request-id'] || '').length > 0, '404 carries a generated X-Request-Id');
    assert.notEqual(nf.headers['x-request-id'], idB);
  });
});

test('a worker that keeps dying at start-up is respawned with growing back-off', { timeout: 40000 }, async () => {
  await withRouter(echoConfig({ workers: 1 }), {}, async (h) => {
    // A worker that dies within a second of starting counts as a start-up failure:
    // kill each replacement as soon as it appears, four times.
    let [victim] = await waitWorkers(h, 1, 'start', { settle: 1200 });
    const killedAt = [];
    for (let i = 0; i < 4; i++) {
      process.kill(victim, 'SIGKILL');
      killedAt.push(Date.now());
      const next = await waitFor(() => { const w = h.workers(); return w.length === 1 && w[0] !== victim ? w[0] : null; },
        { timeout: 5000, interval: 10, what: `replacement ${i + 1}` });
      victim = next;
    }
    // The first death after a full second of life is replaced at once; the next three
    // are start-up failures with delays of 100, 200 and 400 ms.
    // (the master's log lines reach us through a pipe: wait for them rather than assume they are read)
    await waitFor(() => [100, 200, 400].every((ms) => h.log.includes(`worker start-up failing, next attempt in ${ms} ms`)),
      { timeout: 3000, what: 'the three back-off log lines' }).catch(() => {});
    for (const ms of [100, 200, 400])
      assert.ok(h.log.includes(`worker start-up failing, next attempt in ${ms} ms`), `log announces a ${ms} ms back-off\n${masterLog(h.log)}`);
    const w = await waitWorkers(h, 1, 'the last replacement stays', { settle: 1500 });
    assert.equal(w[0], victim);
    checkEcho(await chat(h.base, 'recovered after back-off'), 'recovered after back-off');
  });
});
