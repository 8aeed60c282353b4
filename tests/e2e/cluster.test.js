'use strict';
// End-to-end tests of shared limits: three real airouter processes on one real
// redis-server (started here on a free loopback port, no persistence), hammered together with
// the official openai client. Each limit is checked for its worst case: overshoot 0 for rpm and
// max_concurrent, at most one reservation for tpm; then Redis is stopped and restarted under the
// three on_error policies. A single-host test shows the token reservation without Redis.
//
// Windows are Redis's fixed minutes: a test that counts a window first waits until the current
// minute has at least 25 s left (an event on the clock, not a sleep standing in for one).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness.js');
const clients = require('./lib/client.js');
const { idle, scrape } = require('./lib/metrics.js');
const { startRedis } = require('./lib/redis.js');

const T = { timeout: 120000 };
const KEY_RPM = 'sk-cluster-rpm300-0001';
const KEY_CONC = 'sk-cluster-conc3-00002';
const KEY_TPM = 'sk-cluster-tpm200-0003';
const KEY_OUT = 'sk-cluster-outage-0004';
const KEY_ABORT = 'sk-cluster-abort-00005';
let redis;
const routers = [];

// timeout_ms is generous here: a loaded machine (or a sanitizer build) must not turn a slow answer
// into an outage in the counting tests; the outage test stops Redis, which refuses at once.
function clusterConfig(url, { onError = 'local', hosts = 3, echoDelay = 0, prefix = 'airouter:' } = {}) {
  return h.echoConfig({
    workers: 2,
    echoDelay,
    extra: `
cluster = { redis = "${url}"; key_prefix = "${prefix}"; on_error = "${onError}"; timeout_ms = 2000; hosts = ${hosts}; };
api_keys = (
  { key = "${KEY_RPM}"; name = "rpm300"; rpm = 300; },
  { key = "${KEY_CONC}"; name = "conc3"; max_concurrent = 3; },
  { key = "${KEY_TPM}"; name = "tpm200"; tpm = 200; },
  { key = "${KEY_OUT}"; name = "outage"; rpm = 30; },
  { key = "${KEY_ABORT}"; name = "abort"; tpm = 100000; }
);`,
  });
}

const client = (router, key) => clients.openai(router, { apiKey: key });

// Waits until Redis's current minute has at least `need` seconds left.
async function roomInMinute(need = 25) {
  await h.waitFor(() => {
    const t = Number(redis.cli('TIME').split('\n')[0]);
    return 60 - (t % 60) >= need;
  }, { timeout: 40000, interval: 250, what: 'a fresh minute' });
}

// Runs n calls of fn with at most `width` in flight; returns every outcome.
async function hammer(n, width, fn) {
  const results = [];
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      try { results[i] = { ok: true, value: await fn(i) }; } catch (e) { results[i] = { ok: false, error: e }; }
    }
  }
  await Promise.all(Array.from({ length: width }, lane));
  return results;
}

async function metric(router, name) {
  const text = await (await fetch(`${router.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

before(async () => {
  redis = await startRedis();
  for (let i = 0; i < 3; i++) routers.push(await h.startRouter(clusterConfig(redis.url, { echoDelay: 0 })));
});

after(async () => {
  // a graceful stop: each worker sends its queued settlements and frees its connections (the
  // sanitizer build checks for leaks there)
  for (const r of routers) { r.signal('SIGQUIT'); await Promise.race([r.exited, h.sleep(15000)]); await r.stop(); }
  if (redis) await redis.stop();
});

test('rpm = 300 across three hosts: exactly 300 of 420 concurrent requests succeed, the rest 429 with Retry-After', T, async () => {
  await roomInMinute();
  const results = await hammer(420, 24, (i) =>
    client(routers[i % 3], KEY_RPM).chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] }));
  const ok = results.filter((r) => r.ok).length;
  const refused = results.filter((r) => !r.ok);
  assert.equal(ok, 300, 'overshoot must be 0 and no request lost');
  assert.equal(refused.length, 120);
  for (const r of refused) {
    assert.equal(r.error.status, 429);
    assert.equal(r.error.code, 'rate_limit_exceeded');
    assert.ok(Number(r.error.headers['retry-after']) >= 1);
  }
  // counted in Redis all along (no request fell back to on_error)
  for (const r of routers) assert.equal(await metric(r, 'airouter_cluster_errors_total'), 0);
  assert.equal(redis.cli('EXISTS', `airouter:key:rpm300:r:${Math.floor(Number(redis.cli('TIME').split('\n')[0]) / 60)}`), '1');
});

test('max_concurrent = 3 across three hosts: of 9 concurrent slow streams exactly 3 are admitted', T, async () => {
  const slow = [];
  for (let i = 0; i < 3; i++) slow.push(await h.startRouter(clusterConfig(redis.url, { echoDelay: 300 })));
  try {
    const words = Array.from({ length: 12 }, (_, i) => `w${i}`).join(' ');
    const opened = await Promise.allSettled(Array.from({ length: 9 }, (_, i) =>
      client(slow[i % 3], KEY_CONC).chat.completions.create({ model: 'echo', stream: true, messages: [{ role: 'user', content: words }] })));
    const streams = opened.filter((o) => o.status === 'fulfilled').map((o) => o.value);
    const refused = opened.filter((o) => o.status === 'rejected').map((o) => o.reason);
    assert.equal(streams.length, 3);
    assert.equal(refused.length, 6);
    for (const e of refused) assert.equal(e.status, 429);
    for (const s of streams) { let n = 0; for await (const c of s) n += c.choices.length ? 1 : 0; assert.ok(n > 0); }
    // the slots are given back (just after each answer, off the request's path): a new request is admitted
    await h.waitFor(() => redis.cli('ZCARD', 'airouter:key:conc3:c') === '0', { what: 'slots given back' });
    const again = await client(slow[1], KEY_CONC).chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(again.choices[0].message.content, 'x');
  } finally {
    for (const r of slow) await r.stop();
  }
});

test('tpm = 200 across three hosts with reservation: tokens admitted stay within the limit plus one reservation', T, async () => {
  const slow = [];
  for (let i = 0; i < 3; i++) slow.push(await h.startRouter(clusterConfig(redis.url, { echoDelay: 200 })));
  try {
    await roomInMinute();
    // "a b c d e": the echo backend reports 5 prompt + 5 completion tokens, known in advance
    const body = { model: 'echo', max_tokens: 10, messages: [{ role: 'user', content: 'a b c d e' }] };
    const reservation = Math.floor(JSON.stringify(body).length / 4) + 10;
    const results = await hammer(30, 30, (i) => client(slow[i % 3], KEY_TPM).chat.completions.create(body));
    const ok = results.filter((r) => r.ok);
    const refused = results.filter((r) => !r.ok);
    for (const r of ok) assert.equal(r.value.usage.total_tokens, 10);
    for (const r of refused) { assert.equal(r.error.status, 429); assert.equal(r.error.type, 'tokens'); }
    const admitted = ok.length * 10;
    assert.ok(ok.length >= 1 && refused.length >= 1, `${ok.length} admitted, ${refused.length} refused`);
    // Without reservation all 30 slow requests would pass the check (600 tokens) before any usage counts.
    assert.ok(admitted <= 200 + reservation, `admitted ${admitted} tokens, limit 200 + reservation ${reservation}`);
    // settled to the true usage: Redis holds exactly what was used
    const minute = Math.floor(Number(redis.cli('TIME').split('\n')[0]) / 60);
    await h.waitFor(() => Number(redis.cli('GET', `airouter:key:tpm200:t:${minute}`)) === admitted,
      { what: `Redis settled to ${admitted} tokens` });
  } finally {
    for (const r of slow) await r.stop();
  }
});

test('a client that leaves a stream before any usage is settled with what was produced, not with its reservation', T, async () => {
  const r = await h.startRouter(clusterConfig(redis.url, { echoDelay: 100, prefix: 'ab:' }));
  try {
    await roomInMinute();
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const body = { model: 'echo', stream: true, max_tokens: 1000, messages: [{ role: 'user', content: words }] };
    const ac = new AbortController();
    const stream = await client(r, KEY_ABORT).chat.completions.create(body, { signal: ac.signal });
    let n = 0;
    try { for await (const c of stream) { if (c && ++n === 3) ac.abort(); } } catch { /* aborted */ }
    assert.equal(n, 3);
    await h.waitFor(() => /"key":"abort".*"client_abort":true/.test(r.log), { what: 'the abort in the access log' });
    const minute = Math.floor(Number(redis.cli('TIME').split('\n')[0]) / 60);
    // the reservation was over 1000 tokens (max_tokens); what stays is the prompt estimate and a few chunks
    const settled = await h.waitFor(() => {
      const v = Number(redis.cli('GET', `ab:key:abort:t:${minute}`));
      return v > 0 && v < 500 ? v : false;
    }, { what: 'the abort settled below the reservation' });
    assert.ok(settled >= 3, `settled ${settled}`);
  } finally {
    await r.stop();
  }
});

test('a gRPC call cancelled before any usage is settled with what was produced, not given back whole', T, async () => {
  const grpc = require('@grpc/grpc-js');
  const gport = await h.freePort();
  const r = await h.startRouter(clusterConfig(redis.url, { echoDelay: 100, prefix: 'gab:' }) + `grpc_listen = "127.0.0.1:${gport}";`);
  const c = require('./lib/grpc.js').newClient(gport);
  try {
    await roomInMinute();
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${KEY_ABORT}`);
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const call = c.StreamingRouteRequest({ provider: '', model: 'echo', prompt: words, max_tokens: 1000, parameters: {} }, md,
      { deadline: Date.now() + 20000 });
    let n = 0;
    const ended = new Promise((resolve) => { call.on('error', resolve); call.on('status', resolve); });
    call.on('data', () => { if (++n === 3) call.cancel(); });
    const end = await ended;
    assert.equal(end.code, grpc.status.CANCELLED);
    await h.waitFor(() => /"method":"GRPC".*"key":"abort".*"error":"client_abort"/.test(r.log), { what: 'the cancelled call in the access log' });
    const minute = Math.floor(Number(redis.cli('TIME').split('\n')[0]) / 60);
    // the reservation was over 1000 tokens (max_tokens); what stays is the prompt estimate and the chunks produced
    const settled = await h.waitFor(() => {
      const v = Number(redis.cli('GET', `gab:key:abort:t:${minute}`));
      return v > 0 && v < 500 ? v : false;
    }, { what: 'the cancelled call settled below its reservation' });
    assert.ok(settled >= 3, `settled ${settled}`);
  } finally {
    c.close();
    await r.stop();
  }
});

test('tpm on one host without Redis: concurrent slow requests reserve, so the minute admits at most tpm + one reservation', T, async () => {
  const solo = await h.startRouter(h.echoConfig({
    workers: 2, echoDelay: 200,
    extra: `api_keys = ( { key = "${KEY_TPM}"; name = "solo-tpm"; tpm = 100; } );`,
  }));
  try {
    const body = { model: 'echo', max_tokens: 10, messages: [{ role: 'user', content: 'a b c d e' }] };
    const reservation = Math.floor(JSON.stringify(body).length / 4) + 10;
    const t0 = new Date();
    if (60 - t0.getSeconds() < 25) await h.waitFor(() => 60 - new Date().getSeconds() >= 25, { timeout: 40000, what: 'a fresh minute' });
    const results = await hammer(20, 20, () => client(solo, KEY_TPM).chat.completions.create(body));
    const ok = results.filter((r) => r.ok).length;
    assert.ok(ok >= 1 && ok * 10 <= 100 + reservation, `${ok} admitted of 20 (each 10 tokens, reservation ${reservation})`);
    for (const r of results.filter((x) => !x.ok)) assert.equal(r.error.status, 429);
  } finally {
    await solo.stop();
  }
});

test('Redis stopped mid-run: deny answers 503, local counts the host share, allow lets through; counting resumes when Redis is back', T, async () => {
  const r2 = await startRedis();
  const deny = await h.startRouter(clusterConfig(r2.url, { onError: 'deny', prefix: 'o:' }));
  const local = await h.startRouter(clusterConfig(r2.url, { onError: 'local', hosts: 3, prefix: 'o:' }));
  const allow = await h.startRouter(clusterConfig(r2.url, { onError: 'allow', prefix: 'o:' }));
  let r3;
  try {
    const ask = (r) => client(r, KEY_OUT).chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] });
    await ask(deny);
    assert.equal(await metric(deny, 'airouter_cluster_up'), 1);
    await r2.stop();
    // deny: 503 cluster_unavailable with Retry-After, at once
    const e = await ask(deny).then(() => null, (err) => err);
    assert.ok(e, 'deny must refuse while Redis is down');
    assert.equal(e.status, 503);
    assert.equal(e.code, 'cluster_unavailable');
    assert.equal(e.headers['retry-after'], '1');
    await h.waitFor(async () => (await metric(deny, 'airouter_cluster_up')) === 0, { what: 'cluster_up 0' });
    assert.ok((await metric(deny, 'airouter_cluster_errors_total')) >= 1);
    // a host that has had no request since Redis stopped shows the outage too: every worker checks Redis when idle
    await h.waitFor(async () => (await metric(local, 'airouter_cluster_up')) === 0, { what: 'an idle host shows cluster_up 0' });
    // local: rpm 30 over 3 hosts is 10 on this one
    const localRes = await hammer(14, 4, () => ask(local));
    assert.equal(localRes.filter((r) => r.ok).length, 10);
    for (const r of localRes.filter((x) => !x.ok)) assert.equal(r.error.status, 429);
    // allow: no limit at all
    const allowRes = await hammer(40, 4, () => ask(allow));
    assert.equal(allowRes.filter((r) => r.ok).length, 40);
    // the outage is logged once per worker, not per request
    const lines = deny.log.split('\n').filter((l) => l.includes('unreachable'));
    assert.ok(lines.length >= 1 && lines.length <= 2, lines.join('\n'));
    // Redis back on the same port: counting resumes without restarting airouter
    r3 = await startRedis(r2.port);
    await h.waitFor(async () => { try { await ask(deny); return true; } catch { return false; } },
      { timeout: 15000, what: 'deny host admits again' });
    await h.waitFor(async () => (await metric(deny, 'airouter_cluster_up')) === 1, { what: 'cluster_up 1' });
    await h.waitFor(async () => (await metric(allow, 'airouter_cluster_up')) === 1, { what: 'cluster_up 1 on every host' });
    await h.waitFor(() => /answers again/.test(deny.log), { what: 'recovery logged' });
    assert.ok(Number(r3.cli('GET', `o:key:outage:r:${Math.floor(Number(r3.cli('TIME').split('\n')[0]) / 60)}`)) >= 1);
  } finally {
    for (const r of [deny, local, allow]) await r.stop();
    if (r3) await r3.stop();
    await r2.stop();
  }
});

test('a HUP reload keeps the counts: the new generation of workers goes on counting in Redis', T, async () => {
  await roomInMinute();
  const r = await h.startRouter(clusterConfig(redis.url, { prefix: 'hup:' }));
  try {
    const ask = () => client(r, KEY_OUT).chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] });
    for (let i = 0; i < 20; i++) await ask();
    r.signal('SIGHUP');
    await h.waitFor(async () => (await metric(r, 'airouter_config_generation')) === 2, { what: 'generation 2' });
    const results = await hammer(15, 1, ask);
    assert.equal(results.filter((x) => x.ok).length, 10, 'rpm = 30: 20 before the reload, 10 after');
  } finally {
    await r.stop();
  }
});

// Prices make each echo answer to "a b c d e" (5 prompt + 5 completion tokens) cost $0.01.
const PRICED_MODELS = `models = ( { name = "echo"; backend = "echo"; default = true; price = { input = 1000.0; output = 1000.0; }; } );`;
const BUDGET_BODY = { model: 'echo', max_tokens: 10, messages: [{ role: 'user', content: 'a b c d e' }] };
// what a request reserves before it runs: (body bytes / 4 + max_tokens) tokens at $0.001
const BUDGET_RESERVATION = (Math.floor(JSON.stringify(BUDGET_BODY).length / 4) + 10) * 0.001;

function budgetConfig(extra, { echoDelay = 0 } = {}) {
  return h.echoConfig({ workers: 2, echoDelay, extra: extra + '\n' + PRICED_MODELS })
    .replace('models = ( { name = "echo"; backend = "echo"; default = true; } );', '');
}

// A key's spend, once every request so far has been charged (as it finishes, which can trail the
// client's read of its answer).
async function spendMetric(router, key) {
  await idle(router);
  const text = await scrape(router);
  const line = text.split('\n').find((l) => l.startsWith(`airouter_spend_usd_total{key="${key}",model="echo"}`));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

test('budget on one host: requests stop within one request of the budget, 429 budget_exceeded with Retry-After and the reset time; spend is counted, logged and survives a restart', T, async () => {
  const dir = h.tmpDir();
  const conf = budgetConfig(`state_file = "${dir}/state";
api_keys = ( { key = "sk-budget-day-000001"; name = "daily"; budget = { usd = 0.05; period = "day"; }; } );`);
  let r = await h.startRouter(conf);
  try {
    const c = client(r, 'sk-budget-day-000001');
    let served = 0, refusal;
    for (let i = 0; i < 10 && !refusal; i++) {
      try { await c.chat.completions.create(BUDGET_BODY); served++; } catch (e) { refusal = e; }
    }
    assert.equal(served, 5, 'five answers of $0.01 fit a $0.05 budget');
    assert.equal(refusal.status, 429);
    assert.equal(refusal.type, 'budget_exceeded');
    assert.equal(refusal.code, 'budget_exceeded');
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    const retry = Number(refusal.headers['retry-after']);
    assert.ok(Math.abs(retry - (midnight - now.getTime()) / 1000) <= 5, `Retry-After ${retry}`);
    assert.match(refusal.message, /\$0\.05 per day\. It resets at \d{4}-\d\d-\d\dT00:00:00Z/);
    assert.equal(await spendMetric(r, 'daily'), 0.05);
    await h.waitFor(() => /"cost_usd":0\.010000/.test(r.log), { what: 'cost_usd in the access log' });
    await r.stop();
    // the master wrote the spend on its way out; a new process still refuses
    assert.match(require('node:fs').readFileSync(`${dir}/state`, 'utf8'), /^daily\tday\t\d+\t50000$/m);
    r = await h.startRouter(conf);
    await assert.rejects(client(r, 'sk-budget-day-000001').chat.completions.create(BUDGET_BODY),
      (e) => e.status === 429 && e.type === 'budget_exceeded');
  } finally {
    await r.stop();
  }
});

test('budget on one host under concurrency: the reservation keeps the spend within one request of the budget', T, async () => {
  const dir = h.tmpDir();
  const r = await h.startRouter(budgetConfig(`state_file = "${dir}/state";
api_keys = ( { key = "sk-budget-conc-00001"; name = "conc"; budget = { usd = 0.05; period = "month"; }; } );`, { echoDelay: 200 }));
  try {
    const results = await hammer(20, 20, () => client(r, 'sk-budget-conc-00001').chat.completions.create(BUDGET_BODY));
    const ok = results.filter((x) => x.ok).length;
    for (const x of results.filter((y) => !y.ok)) assert.equal(x.error.type, 'budget_exceeded');
    // without reservation all 20 slow requests would pass before any cost counts ($0.20)
    assert.ok(ok >= 1 && ok * 0.01 <= 0.05 + BUDGET_RESERVATION + 1e-9, `${ok} admitted`);
  } finally {
    await r.stop();
  }
});

test('budget across three hosts in Redis ("total": no Retry-After): spend stops within one request of the budget', T, async () => {
  const conf = budgetConfig(`cluster = { redis = "${redis.url}"; key_prefix = "b:"; timeout_ms = 2000; hosts = 3; };
api_keys = ( { key = "sk-budget-total-0001"; name = "lifetime"; budget = { usd = 0.1; period = "total"; }; } );`, { echoDelay: 100 });
  const hosts = [];
  for (let i = 0; i < 3; i++) hosts.push(await h.startRouter(conf));
  try {
    const results = await hammer(45, 15, (i) => client(hosts[i % 3], 'sk-budget-total-0001').chat.completions.create(BUDGET_BODY));
    const ok = results.filter((x) => x.ok).length;
    const refused = results.filter((x) => !x.ok);
    assert.ok(ok >= 1 && ok * 0.01 <= 0.1 + BUDGET_RESERVATION + 1e-9, `${ok} admitted`);
    assert.ok(refused.length >= 1);
    for (const x of refused) {
      assert.equal(x.error.type, 'budget_exceeded');
      assert.equal(x.error.headers['retry-after'], undefined);
      assert.match(x.error.message, /per lifetime\.$/);
    }
    // Redis holds the exact spend (micro-dollars), settled to the real costs
    await h.waitFor(() => Number(redis.cli('GET', 'b:key:lifetime:b:0')) === ok * 10000,
      { what: `Redis settled to ${ok * 10000} micro-dollars` });
    // each host counts what it served; together they make the whole spend
    let sum = 0;
    for (const r of hosts) sum += await spendMetric(r, 'lifetime');
    assert.ok(Math.abs(sum - ok * 0.01) < 1e-9, `metrics sum ${sum}`);
    for (const r of hosts) assert.equal(await metric(r, 'airouter_cluster_errors_total'), 0);
  } finally {
    for (const r of hosts) await r.stop();
  }
});

test('one Redis call before a request runs, whatever the limits of its key: admission, tpm and budget reservations together; settlements after, batched', T, async () => {
  const conf = budgetConfig(`cluster = { redis = "${redis.url}"; key_prefix = "one:"; timeout_ms = 2000; };
api_keys = ( { key = "sk-one-call-all-0001"; name = "all"; rpm = 1000; tpm = 1000000; max_concurrent = 10; budget = { usd = 100.0; period = "month"; }; },
             { key = "sk-one-call-rpm-0002"; name = "rpm"; rpm = 1000; } );`);
  const r = await h.startRouter(conf);
  try {
    // the workers have connected and loaded their scripts: a first request each way is answered
    await client(r, 'sk-one-call-all-0001').chat.completions.create(BUDGET_BODY);
    await client(r, 'sk-one-call-rpm-0002').chat.completions.create(BUDGET_BODY);
    await h.waitFor(() => redis.cli('ZCARD', 'one:key:all:c') === '0', { what: 'the first slot given back' });
    const mon = await redis.monitor();
    for (let i = 0; i < 10; i++) await client(r, 'sk-one-call-all-0001').chat.completions.create(BUDGET_BODY);
    for (let i = 0; i < 10; i++) await client(r, 'sk-one-call-rpm-0002').chat.completions.create(BUDGET_BODY);
    await h.waitFor(() => redis.cli('ZCARD', 'one:key:all:c') === '0', { what: 'the slots given back' });
    const seen = (await mon.stop()).filter((c) => c.client !== 'lua' && !['ZCARD', 'PING', 'ECHO'].includes(c.args[0]));
    const other = seen.filter((c) => c.args[0].toUpperCase() !== 'EVALSHA');
    assert.deepEqual(other.map((c) => c.args[0]), [], 'nothing but scripts: no SELECT, AUTH, SCRIPT or EXISTS on the way');
    // admission: 11 arguments after EVALSHA sha 0, the key's base first
    const admits = (name) => seen.filter((c) => c.args.length === 14 && c.args[3] === `one:key:${name}`).length;
    assert.equal(admits('all'), 10, 'rpm, tpm, max_concurrent and budget: one call per request');
    assert.equal(admits('rpm'), 10, 'rpm only: one call per request');
    // settlements: six arguments per request, several requests per call; none for the rpm-only key
    const settles = seen.filter((c) => c.args.length !== 14);
    const entries = settles.reduce((n, c) => n + (c.args.length - 3) / 6, 0);
    assert.equal(entries, 10, 'each request of the key with tpm, a slot and a budget settles once');
    assert.ok(settles.every((c) => (c.args.length - 3) % 6 === 0 && c.args.slice(3).filter((_, i) => i % 6 === 0).every((b) => b === 'one:key:all')));
  } finally {
    await r.stop();
  }
});

function check(config) {
  const dir = h.tmpDir();
  const file = require('node:path').join(dir, 'bad.conf');
  require('node:fs').writeFileSync(file, config.replaceAll('@PORT@', '18080'));
  return spawnSync(h.BIN, ['-t', '-c', file], { encoding: 'utf8' });
}

test('-t refuses a bad Redis URL, an unknown on_error, a budget without prices, with file and line', T, () => {
  let r = check(h.echoConfig({ extra: 'cluster = { redis = "http://127.0.0.1:6379"; };' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad\.conf:\d+: cluster\.redis must start with redis:\/\//);
  r = check(h.echoConfig({ extra: 'cluster = { redis = "rediss://127.0.0.1:6380/0"; };' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad\.conf:\d+: cluster\.redis asks for TLS \(rediss:\/\/\), which this build of airouter cannot do \(hiredis \d+\.\d+, without TLS\)/);
  r = check(h.echoConfig({ extra: 'cluster = { redis = "redis://127.0.0.1:notaport/0"; };' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /cluster\.redis must be redis:\/\/\[\[user\]:password@\]host\[:port\]\[\/db\]/);
  r = check(h.echoConfig({ extra: 'cluster = { redis = "redis://127.0.0.1:6379/0"; on_error = "retry"; };' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /cluster\.on_error must be "local", "allow" or "deny"/);
  r = check(h.echoConfig({ extra: 'cluster = { redis = "redis://u:${NO_SUCH_VAR_15}@127.0.0.1/0"; };' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /NO_SUCH_VAR_15/);
  r = check(h.echoConfig({ extra: 'cluster = { redis = "redis://:secret@127.0.0.1:6380/2"; on_error = "deny"; hosts = 2; };' }));
  assert.equal(r.status, 0, r.stderr);
  // a budget that can reach a model without a price, or whose spend would not survive a restart
  r = check(h.echoConfig({ extra: 'state_file = "/tmp/x"; api_keys = ( { key = "sk-12345678"; name = "b"; budget = { usd = 5.0; }; } );' }));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad\.conf:\d+: api key 'b' has a budget but can reach model 'echo', which has no price/);
  r = check(budgetConfig('api_keys = ( { key = "sk-12345678"; name = "b"; budget = { usd = 5.0; }; } );'));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /set state_file \(or a cluster group\)/);
  r = check(budgetConfig('state_file = "/tmp/x"; api_keys = ( { key = "sk-12345678"; name = "b"; budget = { usd = 5.0; period = "year"; }; } );'));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /budget\.period must be "day", "week", "month" or "total"/);
  r = check(budgetConfig('state_file = "/tmp/x"; api_keys = ( { key = "sk-12345678"; name = "b"; models = ["echo"]; budget = { usd = 5.0; }; } );'));
  assert.equal(r.status, 0, r.stderr);
});
