#!/usr/bin/env node
'use strict';
// airouter soak benchmark (`make soak`): for SOAK_SECONDS, a mix of non-streaming chats,
// streams read to the end, streams the client drops after the first chunk, and calls through an
// OpenAI mock backend and a Triton mock (gRPC), while the master is sent HUP (a reload: a new generation of workers) every
// SOAK_RELOAD_SECONDS. The resident memory (VmRSS) of the master and of every worker is sampled
// each second; at the end it prints, per process, the growth per minute (least-squares slope
// after a warm-up), which should be flat: a leak per request shows in the workers, a leak per
// reload in the master. Everything is on 127.0.0.1 and stops by itself. A benchmark, not a test:
// it exits 0 unless the router dies or most requests fail.
//
// Environment (defaults in brackets):
//   SOAK_SECONDS [180]   how long the load runs        SOAK_RELOAD_SECONDS [60] HUP period (0: never)
//   SOAK_CONCURRENCY [8] request loops                 SOAK_WORKERS [2]   airouter workers
//   SOAK_WARMUP [10]     seconds of a process's life left out of its slope
//   AIROUTER_BIN [<repo>/airouter]
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const env = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? Number(process.env[k]) : d);
const SECONDS = env('SOAK_SECONDS', 180);
const RELOAD = env('SOAK_RELOAD_SECONDS', 60);
const CONC = env('SOAK_CONCURRENCY', 8);
const WORKERS = env('SOAK_WORKERS', 2);
const WARMUP = env('SOAK_WARMUP', 10);
const BIN = process.env.AIROUTER_BIN || path.join(ROOT, 'airouter');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
function cleanup() { for (const c of children) { try { c.kill('SIGKILL'); } catch { } } }
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function freePort() {
  return new Promise((resolve) => {
    const s = require('node:net').createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}

function workerPids(master) {
  try {
    return fs.readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { return []; }
}

async function waitHealthy(base) {
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${base}/health`)).status === 200) return; } catch { }
    await sleep(50);
  }
  throw new Error('airouter did not become healthy');
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
const counts = { chat: 0, stream: 0, abort: 0, mock: 0, triton: 0, failed: 0 };

// One request; resolves when it is over. abortAfterFirst drops the connection after the first chunk.
function request(port, body, abortAfterFirst) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: abortAfterFirst ? false : agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let ok = res.statusCode === 200;
      res.on('data', () => { if (abortAfterFirst) { req.destroy(); resolve(ok); } });
      res.on('end', () => resolve(ok));
      res.on('error', () => resolve(abortAfterFirst && ok));
      res.on('aborted', () => resolve(abortAfterFirst && ok));
    });
    req.on('error', () => resolve(abortAfterFirst));
    req.setTimeout(30000, () => { req.destroy(); resolve(false); });
    req.end(data);
  });
}

async function loop(port, end, id) {
  const text = 'soak '.repeat(20 + id);
  for (let n = 0; Date.now() < end; n++) {
    const pick = (n + id) % 10;
    const messages = [{ role: 'user', content: `${text}${n}` }];
    let ok;
    if (pick < 4) { ok = await request(port, { model: 'echo', messages }, false); counts.chat++; }
    else if (pick < 7) { ok = await request(port, { model: 'echo', stream: true, messages }, false); counts.stream++; }
    else if (pick < 9) { ok = await request(port, { model: 'echo', stream: true, messages }, true); counts.abort++; }
    else if (n % 2) { ok = await request(port, { model: 'mock', stream: n % 4 === 1, messages }, false); counts.mock++; }
    else { ok = await request(port, { model: 'triton', stream: n % 4 === 0, max_tokens: 16, messages }, false); counts.triton++; }
    if (!ok) counts.failed++;
  }
}

// Least-squares slope of (t seconds, kb) in KB per minute.
function slopePerMin(points) {
  if (points.length < 3) return null;
  const n = points.length, mt = points.reduce((a, p) => a + p[0], 0) / n, mk = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0, den = 0;
  for (const [t, k] of points) { num += (t - mt) * (k - mk); den += (t - mt) * (t - mt); }
  return den ? (num / den) * 60 : null;
}

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} not found (make airouter)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'airouter-soak-'));
  const [port, mockPort, tritonPort] = [await freePort(), await freePort(), await freePort()];
  const mock = spawn(process.execPath, [path.join(ROOT, 'scripts/mock-openai.js'), '--port', String(mockPort), '--quiet'], { stdio: 'ignore' });
  children.push(mock);
  const triton = spawn(process.execPath, [path.join(ROOT, 'scripts/mock-triton.js'), '--port', String(tritonPort)], { stdio: 'ignore' });
  children.push(triton);
  const conf = path.join(dir, 'airouter.conf');
  fs.writeFileSync(conf, `
listen = "127.0.0.1:${port}";
workers = ${WORKERS};
log = { level = "warn"; };
limits = { drain_timeout = 10; };
backends = (
  { name = "echo"; type = "echo"; chunk_delay_ms = 1; },
  { name = "mock"; type = "openai"; url = "http://127.0.0.1:${mockPort}/v1"; },
  { name = "triton"; type = "triton"; url = "127.0.0.1:${tritonPort}"; }
);
models = (
  { name = "echo"; backend = "echo"; default = true; },
  { name = "mock"; backend = "mock"; backend_model = "gpt-4o-mini"; },
  { name = "triton"; backend = "triton"; backend_model = "ensemble"; profile = "trtllm"; prompt_format = "llama3"; }
);
`);
  const router = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(router);
  let log = '';
  router.stderr.on('data', (d) => { log = (log + d).slice(-20000); });
  let died = null;
  router.on('exit', (code, sig) => { died = `exit ${code} ${sig || ''}`; });
  await waitHealthy(`http://127.0.0.1:${port}`);
  await waitHealthy(`http://127.0.0.1:${mockPort}`).catch(() => { });

  const start = Date.now(), end = start + SECONDS * 1000;
  const series = new Map(); // pid -> { role, born, points: [[t, kb]] }
  const sample = () => {
    const t = (Date.now() - start) / 1000;
    for (const [pid, role] of [[router.pid, 'master'], ...workerPids(router.pid).map((p) => [p, 'worker'])]) {
      const kb = rssKb(pid);
      if (kb === null) continue;
      if (!series.has(pid)) series.set(pid, { role, born: t, points: [] });
      series.get(pid).points.push([t, kb]);
    }
  };
  const sampler = setInterval(sample, 1000);
  let reloads = 0;
  const reloader = RELOAD > 0 ? setInterval(() => { if (!died) { process.kill(router.pid, 'SIGHUP'); reloads++; } }, RELOAD * 1000) : null;
  await Promise.all(Array.from({ length: CONC }, (_, i) => loop(port, end, i)));
  clearInterval(sampler);
  if (reloader) clearInterval(reloader);
  sample();

  const total = counts.chat + counts.stream + counts.abort + counts.mock;
  console.log(`soak: ${SECONDS} s, ${total} requests (${counts.chat} chat, ${counts.stream} streams, ${counts.abort} streams dropped after the first chunk, ${counts.mock} through the OpenAI mock, ${counts.triton} through the Triton mock), ${counts.failed} failed, ${reloads} reloads`);
  console.log('process     pid      life(s)  first KB   last KB   growth KB/min (after a ' + WARMUP + ' s warm-up)');
  const slopes = [];
  for (const [pid, s] of series) {
    const pts = s.points.filter(([t]) => t >= s.born + WARMUP);
    const slope = slopePerMin(pts);
    const life = s.points[s.points.length - 1][0] - s.born;
    if (s.role === 'worker' && slope !== null) slopes.push(slope);
    console.log(`${s.role.padEnd(10)}  ${String(pid).padEnd(7)}  ${life.toFixed(0).padStart(7)}  ${String(s.points[0][1]).padStart(8)}  ${String(s.points[s.points.length - 1][1]).padStart(8)}   ${slope === null ? 'n/a (too short)' : slope.toFixed(1)}`);
  }
  if (slopes.length) {
    slopes.sort((a, b) => a - b);
    console.log(`workers: median growth ${slopes[Math.floor(slopes.length / 2)].toFixed(1)} KB/min, max ${slopes[slopes.length - 1].toFixed(1)} KB/min over ${slopes.length} worker(s)`);
  }
  if (died) { console.log(`soak: airouter died (${died}); its log:\n${log}`); process.exitCode = 1; }
  else if (counts.failed > total / 100) { console.log(`soak: too many failures; airouter's log:\n${log}`); process.exitCode = 1; }
  router.kill('SIGQUIT');
  await new Promise((r) => { router.on('exit', r); setTimeout(r, 15000); });
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(() => process.exit(), (e) => { console.error(`soak: ${e.stack || e}`); process.exit(1); });
