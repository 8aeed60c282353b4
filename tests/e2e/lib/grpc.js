'use strict';
// The ai_router gRPC API from a client's side: @grpc/grpc-js with a client-side copy of the proto
// (tests/e2e/proto/ai_router.proto), calls that never reject, and a router started with a gRPC port.
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const h = require('./harness.js');

const PROTO = path.join(__dirname, '..', 'proto', 'ai_router.proto');
const pkgDef = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const ai = grpc.loadPackageDefinition(pkgDef).ai_router;
const S = grpc.status;
const CALL_MS = 15000; // a call's deadline unless the caller sets one

// A client on a channel of its own (grpc-js shares connections between channels to the same
// target unless told not to). Close it when done.
function newClient(port) {
  return new ai.AIRouter(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function metadata(key) {
  const md = new grpc.Metadata();
  if (key !== undefined) md.set('authorization', `Bearer ${key}`);
  return md;
}

function aiRequest(fields) {
  return { provider: '', model: '', prompt: 'hello world', max_tokens: 0, parameters: {}, ...fields };
}

// A unary call: { call, done } where done resolves { err, res, ms } (never rejects). md: the call's
// metadata (else an authorization header for key, if given).
function unary(client, request, { key, md, deadlineMs = CALL_MS } = {}) {
  const t0 = Date.now();
  let call;
  const done = new Promise((resolve) => {
    call = client.RouteRequest(aiRequest(request), md || metadata(key), { deadline: Date.now() + deadlineMs },
      (err, res) => resolve({ err, res, ms: Date.now() - t0 }));
  });
  return { call, done };
}

// A server-streaming call: { call, msgs, done } where done resolves { msgs, err, status, ms } when the
// call ends (never rejects). Each message gets `at`, when it arrived; onMessage(msg, msgs) is
// called for each.
function streaming(client, request, { key, md, deadlineMs = CALL_MS, onMessage } = {}) {
  const t0 = Date.now();
  const call = client.StreamingRouteRequest(aiRequest(request), md || metadata(key), { deadline: Date.now() + deadlineMs });
  const msgs = [];
  const done = new Promise((resolve) => {
    let err = null;
    call.on('data', (m) => { msgs.push({ ...m, at: Date.now() }); if (onMessage) onMessage(m, msgs); });
    call.on('error', (e) => { err = e; });
    call.on('status', (status) => setImmediate(() => resolve({ msgs, err, status, ms: Date.now() - t0 })));
  });
  return { call, msgs, done };
}

// Starts a router whose config has @GPORT@ where its gRPC port goes; resolves once gRPC answers.
async function startWithGrpc(configText, opts) {
  const gport = await h.freePort();
  const r = await h.startRouter(configText.replaceAll('@GPORT@', String(gport)), opts);
  r.gport = gport;
  const probe = newClient(gport);
  try {
    await h.waitFor(async () => {
      const { err } = await unary(probe, { prompt: '' }, { deadlineMs: 1000 }).done;
      return !err || (err.code !== S.UNAVAILABLE && err.code !== S.DEADLINE_EXCEEDED);
    }, { timeout: 10000, what: `gRPC on ${gport}\n${r.log}` });
  } catch (e) {
    await r.stop();
    throw e;
  } finally {
    probe.close();
  }
  return r;
}

// The access-log lines of gRPC calls (JSON objects with method "GRPC") in a router's log.
function grpcAccessLines(router) {
  const out = [];
  for (const line of router.log.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"GRPC"')) continue;
    try { out.push(JSON.parse(line)); } catch { /* a line still being written */ }
  }
  return out;
}

module.exports = { S, ai, CALL_MS, newClient, metadata, aiRequest, unary, streaming, startWithGrpc, grpcAccessLines };
