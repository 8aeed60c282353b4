'use strict';
// A real redis-server for tests: loopback only, a free port, no persistence; stopped at exit.
const { spawn, execFileSync } = require('node:child_process');
const net = require('node:net');
const { freePort, waitFor } = require('./harness.js');

const live = new Set();
process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { } } });

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { got += d; if (got.includes('\r\n')) { s.destroy(); resolve(got.startsWith('+PONG')); } });
    s.on('error', () => resolve(false));
  });
}

// Starts redis-server on port (a free one if not given); resolves once it answers PING.
async function startRedis(port) {
  port = port || await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', () => { live.delete(proc); resolve(); }));
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
    return ping(port);
  }, { what: `redis-server on ${port}` });
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get log() { return out; },
    // One command through redis-cli; returns its trimmed output.
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

module.exports = { startRedis };
