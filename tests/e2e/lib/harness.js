'use strict';
// Starts the real airouter binary on a temporary config and tears it down.
// Every process started here is bounded in time and killed at test exit.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.AIROUTER_BIN || path.join(REPO, 'airouter');
const live = new Set();

process.on('exit', () => { for (const p of live) { try { process.kill(p.pid, 'SIGKILL'); } catch { } } });

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// A free loopback port (bound then released; races are unlikely on loopback).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function tmpDir() { return fs.mkdtempSync(path.join(os.tmpdir(), 'airouter-test-')); }

// Polls fn() until it returns a truthy value or the deadline passes.
async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// Per-key rate windows are fixed minutes of CLOCK_MONOTONIC (libuv's hrtime reads the same clock).
function monoSecondsLeftInMinute() { return 60 - (Math.floor(Number(process.hrtime.bigint() / 1000000n) / 1000) % 60); }
// Waits for the next window if fewer than needS seconds are left in this one, so that a test's
// requests all fall in one window (a real wait: the window is the router's state).
async function awayFromMinuteEdge(needS) {
  const left = monoSecondsLeftInMinute();
  if (left < needS) await sleep(left * 1000 + 300);
}

function childPids(pid) {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
  } catch { return []; }
}

function alive(pid) { try { process.kill(pid, 0); return true; } catch { return false; } }

// Starts airouter. `config` is the config text; the string @PORT@ is replaced by the
// chosen port and @DIR@ by the temp directory; `bin` runs another binary. Returns a handle.
async function startRouter(config, { args = [], env = {}, port, waitReady = true, bin = BIN } = {}) {
  port = port || await freePort();
  const dir = tmpDir();
  const confPath = path.join(dir, 'airouter.conf');
  const pidfile = path.join(dir, 'airouter.pid');
  fs.writeFileSync(confPath, config.replaceAll('@PORT@', String(port)).replaceAll('@DIR@', dir));
  const proc = spawn(bin, ['-c', confPath, '-p', pidfile, ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let stderr = '';
  proc.stdout.on('data', (d) => { stderr += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  const h = {
    proc, port, dir, confPath, pidfile, exited,
    base: `http://127.0.0.1:${port}`,
    get log() { return stderr; },
    workers: () => childPids(proc.pid),
    signal: (sig) => process.kill(proc.pid, sig),
    writeConfig: (text) => fs.writeFileSync(confPath, text.replaceAll('@PORT@', String(port)).replaceAll('@DIR@', dir)),
    // A graceful stop (QUIT), so that the ASan build's workers, which check for leaks once they
    // have drained, do so at the end of every test; a router still draining after 3 s (a stream a
    // test left open) is stopped fast (TERM), and killed 5 s later.
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGQUIT');
      const fast = setTimeout(() => { try { proc.kill('SIGTERM'); } catch { } }, 3000);
      const kill = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { } }, 8000);
      const r = await exited;
      clearTimeout(fast);
      clearTimeout(kill);
      return r;
    },
  };
  if (waitReady) {
    try {
      await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error(`airouter exited early: ${stderr}`);
        const r = await fetch(`${h.base}/health`);
        return r.status === 200;
      }, { what: `airouter /health on ${port}\n${stderr}` });
    } catch (e) {
      // not handed to the caller, so nobody else would stop it (and its pipes keep node running)
      try { proc.kill('SIGKILL'); } catch { }
      throw e;
    }
  }
  return h;
}

// A minimal config using the built-in echo backend.
function echoConfig({ workers = 2, extra = '', echoDelay = 0, limits = '' } = {}) {
  return `
listen = "127.0.0.1:@PORT@";
workers = ${workers};
log = { level = "info"; };
limits = { drain_timeout = 10; ${limits} };
backends = ( { name = "echo"; type = "echo"; chunk_delay_ms = ${echoDelay}; } );
models = ( { name = "echo"; backend = "echo"; default = true; } );
${extra}
`;
}

module.exports = {
  REPO, BIN, sleep, freePort, tmpDir, waitFor, childPids, alive, startRouter, echoConfig, monoSecondsLeftInMinute, awayFromMinuteEdge,
};
