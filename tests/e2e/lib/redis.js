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
    // Watches every command Redis runs (MONITOR) until stop(), which resolves to them as
    // { client: "ADDR:PORT" or "lua", args: [...] }, in order (its own barrier command last).
    async monitor() {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d; });
      await new Promise((resolve, reject) => { s.on('connect', resolve); s.on('error', reject); });
      s.write('MONITOR\r\n');
      await waitFor(() => got.startsWith('+OK\r\n'), { what: 'MONITOR started' });
      return {
        async stop() {
          // a barrier: whatever Redis ran before it has reached this connection once it shows
          const marker = `monitor-end-${Date.now()}-${Math.random()}`;
          execFileSync('redis-cli', ['-p', String(port), 'ECHO', marker]);
          await waitFor(() => got.includes(marker), { what: 'the MONITOR barrier' });
          s.destroy();
          return got.split('\r\n').slice(1, -1).filter((l) => l.startsWith('+')).map((l) => {
            const client = /\[\d+ ([^\]]+)\]/.exec(l)[1];
            const args = [...l.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
            return { client, args };
          });
        },
      };
    },
    // One command through redis-cli; returns its trimmed output.
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

module.exports = { startRedis };
