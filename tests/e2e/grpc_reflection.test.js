'use strict';
// End-to-end tests of gRPC server reflection: every worker serves
// grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection on grpc_listen,
// so that a client without ai_router.proto (grpcurl, or the dynamic client here) can list the
// services, fetch their descriptors and call ai_router.AIRouter.
//
// The reflection client is @grpc/grpc-js with the reflection protocol's definition as published by
// the official @grpc/reflection package (not airouter's own proto/reflection.proto, so a wrong
// field number on either side shows). Descriptors are decoded with protobufjs/ext/descriptor, and
// the ai_router client is built from them alone.
//
// Routers (127.0.0.1, ports from harness.freePort()): MAIN (echo backend, workers=2), KEYS (the
// same with api_keys); the QUIT and idle tests start their own.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const descriptor = require('protobufjs/ext/descriptor');
const h = require('./lib/harness.js');

const T = { timeout: 30000 };
const S = grpc.status;
const CALL_MS = 10000;
const LOAD = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const REFLECTION_PROTOS = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
const reflectionPkg = (version) => grpc.loadPackageDefinition(
  protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { ...LOAD, includeDirs: [REFLECTION_PROTOS] }),
).grpc.reflection[version];
const V1 = reflectionPkg('v1');
const V1ALPHA = reflectionPkg('v1alpha');

const SERVICES = ['ai_router.AIRouter', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];
const clients = [];
const routers = [];
let MAIN;
let KEYS;

function config({ keys = false, idleTimeout = 60 } = {}) {
  return `
listen = "127.0.0.1:@PORT@";
grpc_listen = "127.0.0.1:@GPORT@";
workers = 2;
log = { level = "info"; };
limits = { drain_timeout = 60; idle_timeout = ${idleTimeout}; };
backends = ( { name = "echo"; type = "echo"; } );
models = ( { name = "echo"; backend = "echo"; default = true; } );
${keys ? 'api_keys = ( { key = "key-refl-0001"; name = "one"; } );' : ''}
`;
}

function reflectionClient(port, pkg = V1) {
  const c = new pkg.ServerReflection(`127.0.0.1:${port}`, grpc.credentials.createInsecure(),
    { 'grpc.use_local_subchannel_pool': 1 });
  clients.push(c);
  return c;
}

// Opens a reflection stream. ask(request) sends one request and resolves its response; end()
// half-closes; done resolves { err, status } when the call ends.
function openStream(client, { md = new grpc.Metadata() } = {}) {
  const call = client.ServerReflectionInfo(md, { deadline: Date.now() + CALL_MS * 3 });
  const waiting = [];
  const early = [];
  call.on('data', (m) => { const w = waiting.shift(); if (w) w.resolve(m); else early.push(m); });
  const done = new Promise((resolve) => {
    let err = null;
    call.on('error', (e) => { err = e; for (const w of waiting.splice(0)) w.reject(e); });
    call.on('status', (status) => setImmediate(() => resolve({ err, status })));
  });
  return {
    call,
    done,
    ask(request) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        call.write(request);
      });
    },
    end() { call.end(); },
    early,
  };
}

// One request on a stream of its own, which is then half-closed.
async function reflect(port, request, pkg = V1) {
  const s = openStream(reflectionClient(port, pkg));
  const res = await s.ask(request);
  s.end();
  const { err } = await s.done;
  assert.equal(err, null, `the stream ends OK: ${err && err.details}`);
  return res;
}

const decodeFile = (bytes) => descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(bytes), { defaults: false });

async function startWithGrpc(text) {
  const gport = await h.freePort();
  const r = await h.startRouter(text.replaceAll('@GPORT@', String(gport)));
  r.gport = gport;
  routers.push(r);
  await h.waitFor(async () => {
    try {
      const res = await reflect(gport, { list_services: '' });
      return res.list_services_response;
    } catch { return false; }
  }, { timeout: 10000, what: `gRPC reflection on ${gport}\n${r.log}` });
  return r;
}

before(async () => {
  MAIN = await startWithGrpc(config());
});

after(async () => {
  for (const c of clients) c.close();
  for (const r of routers) await r.stop();
});

test('list_services names ai_router.AIRouter and both reflection services, over v1 and v1alpha', T, async () => {
  for (const pkg of [V1, V1ALPHA]) {
    const res = await reflect(MAIN.gport, { host: 'example:1', list_services: '*' }, pkg);
    assert.equal(res.message_response, 'list_services_response');
    assert.deepEqual(res.list_services_response.service.map((s) => s.name).sort(), SERVICES);
    assert.equal(res.valid_host, 'example:1', 'the host is echoed');
    assert.equal(res.original_request.list_services, '*', 'the request is echoed');
    assert.equal(res.original_request.host, 'example:1');
  }
});

test('file_containing_symbol answers ai_router.proto for the service, its methods and its message types', T, async () => {
  for (const symbol of ['ai_router.AIRouter', 'ai_router.AIRouter.RouteRequest', 'ai_router.AIRouter.StreamingRouteRequest',
    'ai_router.AIRequest', 'ai_router.AIResponse', 'ai_router.AIRequest.ParametersEntry', 'ai_router.AIRequest.prompt']) {
    const res = await reflect(MAIN.gport, { file_containing_symbol: symbol });
    assert.equal(res.message_response, 'file_descriptor_response', symbol);
    const files = res.file_descriptor_response.file_descriptor_proto.map(decodeFile);
    assert.deepEqual(files.map((f) => f.name), ['ai_router.proto'], symbol);
  }
  const res = await reflect(MAIN.gport, { file_containing_symbol: 'ai_router.AIRouter' });
  const file = decodeFile(res.file_descriptor_response.file_descriptor_proto[0]);
  assert.equal(file.package, 'ai_router');
  assert.equal(file.syntax, 'proto3');
  const svc = file.service.find((s) => s.name === 'AIRouter');
  const methods = Object.fromEntries(svc.method.map((m) => [m.name, m]));
  assert.equal(methods.RouteRequest.inputType, '.ai_router.AIRequest');
  assert.equal(methods.RouteRequest.outputType, '.ai_router.AIResponse');
  assert.ok(!methods.RouteRequest.serverStreaming && !methods.RouteRequest.clientStreaming);
  assert.equal(methods.StreamingRouteRequest.serverStreaming, true);
  assert.ok(!methods.StreamingRouteRequest.clientStreaming);
  const req = file.messageType.find((m) => m.name === 'AIRequest');
  assert.deepEqual(req.field.map((f) => [f.name, f.number]),
    [['provider', 1], ['model', 2], ['prompt', 3], ['max_tokens', 4], ['parameters', 5]]);
  const resp = file.messageType.find((m) => m.name === 'AIResponse');
  assert.deepEqual(resp.field.map((f) => [f.name, f.number]), [['content', 1], ['provider', 2], ['model', 3]]);
});

test('the reflection services describe themselves (v1 and v1alpha packages)', T, async () => {
  for (const [symbol, pkg] of [['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1'],
    ['grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo', 'grpc.reflection.v1alpha']]) {
    const res = await reflect(MAIN.gport, { file_containing_symbol: symbol }, V1ALPHA);
    const file = decodeFile(res.file_descriptor_response.file_descriptor_proto[0]);
    assert.equal(file.package, pkg);
    const info = file.service[0].method[0];
    assert.equal(info.name, 'ServerReflectionInfo');
    assert.ok(info.clientStreaming && info.serverStreaming, 'a bidi stream');
    assert.equal(info.inputType, `.${pkg}.ServerReflectionRequest`);
  }
});

test('a client built from the reflected descriptor alone calls RouteRequest and StreamingRouteRequest', T, async () => {
  const res = await reflect(MAIN.gport, { file_by_filename: 'ai_router.proto' });
  const files = res.file_descriptor_response.file_descriptor_proto.map((b) => descriptor.FileDescriptorProto.decode(b));
  const set = descriptor.FileDescriptorSet.encode({ file: files }).finish();
  const ai = grpc.loadPackageDefinition(protoLoader.loadFileDescriptorSetFromBuffer(set, LOAD)).ai_router;
  const client = new ai.AIRouter(`127.0.0.1:${MAIN.gport}`, grpc.credentials.createInsecure());
  clients.push(client);
  const answer = await new Promise((resolve, reject) => {
    client.RouteRequest({ model: 'echo', prompt: 'hello reflection' }, { deadline: Date.now() + CALL_MS },
      (err, r) => (err ? reject(err) : resolve(r)));
  });
  assert.deepEqual({ ...answer }, { content: 'hello reflection', provider: '', model: 'echo' });
  const pieces = await new Promise((resolve, reject) => {
    const got = [];
    const call = client.StreamingRouteRequest({ model: 'echo', prompt: 'one two three' }, { deadline: Date.now() + CALL_MS });
    call.on('data', (m) => got.push(m.content));
    call.on('error', reject);
    call.on('end', () => resolve(got));
  });
  assert.ok(pieces.length >= 1);
  assert.equal(pieces.join(''), 'one two three');
});

test('one stream answers several requests in order; unknown names get error_response NOT_FOUND', T, async () => {
  const s = openStream(reflectionClient(MAIN.gport));
  const list = await s.ask({ list_services: '' });
  assert.equal(list.message_response, 'list_services_response');
  const unknown = await s.ask({ file_containing_symbol: 'ai_router.NoSuchThing' });
  assert.equal(unknown.message_response, 'error_response');
  assert.equal(unknown.error_response.error_code, S.NOT_FOUND);
  assert.match(unknown.error_response.error_message, /ai_router\.NoSuchThing/);
  assert.equal(unknown.original_request.file_containing_symbol, 'ai_router.NoSuchThing');
  const noFile = await s.ask({ file_by_filename: 'triton.proto' });
  assert.equal(noFile.error_response.error_code, S.NOT_FOUND, 'the Triton client proto is not served');
  const ext = await s.ask({ file_containing_extension: { containing_type: 'ai_router.AIRequest', extension_number: 100 } });
  assert.equal(ext.error_response.error_code, S.NOT_FOUND);
  const numbers = await s.ask({ all_extension_numbers_of_type: 'ai_router.AIRequest' });
  assert.equal(numbers.message_response, 'all_extension_numbers_response');
  assert.equal(numbers.all_extension_numbers_response.base_type_name, 'ai_router.AIRequest');
  assert.deepEqual(numbers.all_extension_numbers_response.extension_number, []);
  const notAType = await s.ask({ all_extension_numbers_of_type: 'ai_router.AIRouter' });
  assert.equal(notAType.error_response.error_code, S.NOT_FOUND, 'a service is not a message type');
  const empty = await s.ask({ host: 'h' });
  assert.equal(empty.error_response.error_code, S.INVALID_ARGUMENT, 'a request that asks for nothing');
  const file = await s.ask({ file_containing_symbol: 'ai_router.AIResponse' });
  assert.equal(decodeFile(file.file_descriptor_response.file_descriptor_proto[0]).name, 'ai_router.proto');
  // several requests written at once are answered in the order written
  const many = await Promise.all(['ai_router.AIRequest', 'nope.Nope', 'ai_router.AIRouter'].map((sym) => s.ask({ file_containing_symbol: sym })));
  assert.deepEqual(many.map((m) => m.original_request.file_containing_symbol), ['ai_router.AIRequest', 'nope.Nope', 'ai_router.AIRouter']);
  assert.deepEqual(many.map((m) => m.message_response), ['file_descriptor_response', 'error_response', 'file_descriptor_response']);
  assert.equal(s.early.length, 0, 'one response per request');
  s.end();
  const { err, status } = await s.done;
  assert.equal(err, null);
  assert.equal(status.code, S.OK, 'the stream ends OK when the client half-closes');
});

test('bytes that are not a ServerReflectionRequest end the stream with INVALID_ARGUMENT', T, async () => {
  const Raw = grpc.makeGenericClientConstructor({
    ServerReflectionInfo: {
      path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      requestStream: true,
      responseStream: true,
      requestSerialize: (b) => b,
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
  }, 'Raw');
  const c = new Raw(`127.0.0.1:${MAIN.gport}`, grpc.credentials.createInsecure());
  clients.push(c);
  const call = c.ServerReflectionInfo({ deadline: Date.now() + CALL_MS });
  const ended = new Promise((resolve) => { call.on('error', resolve); call.on('end', () => resolve(null)); call.on('data', () => {}); });
  call.write(Buffer.from([0xff, 0xff, 0xff])); // a field tag whose varint never ends
  const err = await ended;
  assert.ok(err, 'the call fails');
  assert.equal(err.code, S.INVALID_ARGUMENT);
  assert.match(err.details, /ServerReflectionRequest/);
});

test('reflection needs no API key when api_keys are set; the API itself still does', T, async () => {
  KEYS = await startWithGrpc(config({ keys: true }));
  const res = await reflect(KEYS.gport, { file_containing_symbol: 'ai_router.AIRouter' });
  assert.equal(res.message_response, 'file_descriptor_response');
  const files = res.file_descriptor_response.file_descriptor_proto.map((b) => descriptor.FileDescriptorProto.decode(b));
  const ai = grpc.loadPackageDefinition(protoLoader.loadFileDescriptorSetFromBuffer(
    descriptor.FileDescriptorSet.encode({ file: files }).finish(), LOAD)).ai_router;
  const client = new ai.AIRouter(`127.0.0.1:${KEYS.gport}`, grpc.credentials.createInsecure());
  clients.push(client);
  const err = await new Promise((resolve) => {
    client.RouteRequest({ model: 'echo', prompt: 'x' }, { deadline: Date.now() + CALL_MS }, (e) => resolve(e));
  });
  assert.equal(err && err.code, S.UNAUTHENTICATED);
});

test('a reflection call writes an access-log line with its method and status', T, async () => {
  await reflect(MAIN.gport, { list_services: '' }, V1ALPHA);
  const line = await h.waitFor(() => MAIN.log.split('\n').filter((l) => l.startsWith('{') && l.includes('"GRPC"'))
    .map((l) => { try { return JSON.parse(l); } catch { return null; } })
    .find((l) => l && l.path === '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'),
  { what: `access log of a reflection call\n${MAIN.log}` });
  assert.equal(line.grpc_status, 'OK');
  assert.equal(line.model, null);
  assert.equal(line.stream, true);
});

test('QUIT: an idle reflection stream ends with UNAVAILABLE at once instead of holding the drain', T, async () => {
  const R = await startWithGrpc(config());
  const s = openStream(reflectionClient(R.gport));
  const first = await s.ask({ list_services: '' });
  assert.equal(first.message_response, 'list_services_response');
  R.signal('SIGQUIT');
  const { err } = await s.done;
  assert.ok(err, 'the stream ends with an error status');
  assert.equal(err.code, S.UNAVAILABLE);
  assert.match(err.details, /stopping/);
  const exit = await R.exited; // drain_timeout is 60 s: the stream must not hold the stop that long
  assert.equal(exit.code, 0);
  assert.doesNotMatch(R.log, /drain timeout/);
});

test('a reflection stream that waits longer than limits.idle_timeout for a request ends with UNAVAILABLE', T, async () => {
  const R = await startWithGrpc(config({ idleTimeout: 2 }));
  const s = openStream(reflectionClient(R.gport));
  const first = await s.ask({ list_services: '' });
  assert.equal(first.message_response, 'list_services_response');
  const { err } = await s.done; // no further request: the worker ends the stream by itself
  assert.ok(err, 'the stream ends with an error status');
  assert.equal(err.code, S.UNAVAILABLE);
  assert.match(err.details, /idle_timeout/);
  const line = await h.waitFor(() => R.log.split('\n').filter((l) => l.startsWith('{') && l.includes('ServerReflectionInfo'))
    .map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((l) => l && l.error === 'idle_timeout'),
  { what: `access log of the idle stream\n${R.log}` });
  assert.equal(line.grpc_status, 'UNAVAILABLE');
  // the worker still answers
  const again = await reflect(R.gport, { file_containing_symbol: 'ai_router.AIRouter' });
  assert.equal(again.message_response, 'file_descriptor_response');
});
