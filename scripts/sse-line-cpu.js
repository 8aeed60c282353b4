#!/usr/bin/env node
'use strict';
// Measures the CPU time a worker spends relaying one huge SSE data: line (a chat stream whose third
// event is N MiB long; with --responses, a /v1/responses stream, relayed line by line), for each size
// given in MiB (default 16 32). One worker, loopback, a mock backend; limits.max_event_bytes is raised
// to its maximum (64 MiB) so the line is relayed, not refused.
//   node scripts/sse-line-cpu.js [--responses] [MiB ...]     (AIROUTER_BIN=path picks the binary)
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const { startMock } = require('./mock-openai.js');
const { startRouter, BIN } = require('../tests/e2e/lib/harness.js');

// utime + stime of a process, in seconds.
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function main() {
  const responses = process.argv.includes('--responses');
  const sizes = process.argv.slice(2).filter((a) => a !== '--responses').map(Number);
  if (!sizes.length) sizes.push(16, 32);
  const mock = await startMock({ record: false });
  let limits = 'max_event_bytes = 67108864;';
  const config = () => `listen = "127.0.0.1:@PORT@"; workers = 1; log = { level = "warn"; };
limits = { idle_timeout = 600; ${limits} };
backends = ( { name = "m"; type = "openai"; url = "${mock.url}"; idle_timeout = 600; } );
models = ( ${sizes.map((n) => `{ name = "big${n}"; backend = "m"; backend_model = "huge-line-late-${n}"; kinds = ["chat", "responses"]; }`).join(', ')} );`;
  const probe = `/tmp/sse-line-cpu-${process.pid}.conf`;
  fs.writeFileSync(probe, config().replaceAll('@PORT@', '1'));
  try { execFileSync(BIN, ['-t', '-c', probe], { stdio: 'ignore' }); } catch { limits = ''; } // a build without the key
  fs.unlinkSync(probe);
  const r = await startRouter(config());
  try {
    const [worker] = r.workers();
    for (const n of sizes) {
      const before = cpuSeconds(worker), t0 = Date.now();
      const res = await fetch(`${r.base}/v1/${responses ? 'responses' : 'chat/completions'}`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify(responses ? { model: `big${n}`, stream: true, input: 'hi' }
          : { model: `big${n}`, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      let bytes = 0;
      for await (const piece of res.body) bytes += piece.length;
      const cpu = cpuSeconds(worker) - before;
      console.log(`${n} MiB line: ${cpu.toFixed(2)} s worker CPU, ${((Date.now() - t0) / 1000).toFixed(2)} s wall, ${bytes} bytes relayed (HTTP ${res.status})`);
    }
  } finally {
    await r.stop();
    await mock.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
