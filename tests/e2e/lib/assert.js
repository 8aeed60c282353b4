'use strict';
// Checks the API tests share: error bodies in the OpenAI and Anthropic shapes, that nothing a
// client must not see (backend keys, names, addresses) reaches it, and that a router's log shows no
// sanitizer report and no dead worker.
const assert = require('node:assert/strict');

// Fails if text contains any of needles.
function assertNoLeak(text, what, needles) {
  for (const n of needles) assert.ok(!String(text).includes(n), `${what} leaks "${n}": ${String(text).slice(0, 400)}`);
}

// An OpenAI-style error answer: the status, an error object with a non-empty message and the type,
// param and code fields, and no leak. code undefined: any code. Returns the error object.
function assertOpenAIError(r, status, code, { type, param, needles = [] } = {}) {
  assert.equal(r.status, status, `status (body: ${r.text})`);
  assert.ok(r.json && r.json.error && typeof r.json.error === 'object', `OpenAI-style error body, got: ${r.text}`);
  const e = r.json.error;
  assert.equal(typeof e.message, 'string', `error.message (body: ${r.text})`);
  assert.ok(e.message.length > 0, 'error.message not empty');
  assert.ok('type' in e && 'param' in e && 'code' in e, `error has message/type/param/code: ${r.text}`);
  if (code !== undefined) assert.equal(e.code, code, `error.code (body: ${r.text})`);
  if (type !== undefined) assert.equal(e.type, type, `error.type (body: ${r.text})`);
  if (param !== undefined) assert.equal(e.param, param, `error.param (body: ${r.text})`);
  assertNoLeak(r.text, `error body ${status} ${code}`, needles);
  return e;
}

// An Anthropic-style error answer: { type: "error", error: { type, message } } with a request-id
// header, and no leak.
function assertAnthropicError(r, status, type, { needles = [] } = {}) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json && r.json.type, 'error', r.text);
  assert.equal(r.json.error.type, type, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.headers.get('request-id'), 'request-id header');
  assertNoLeak(r.text, `${status} ${type}`, needles);
  return r.json.error;
}

// The error a promise rejects with (fails if it resolves).
async function sdkError(p) {
  try { await p; } catch (e) { return e; }
  assert.fail('expected the call to fail');
}

const SANITIZER_REPORT = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/;
const WORKER_DIED = /killed by signal|exited with status/;

// A router's log shows no sanitizer report and no worker that died.
function assertCleanLog(log, what = 'router') {
  assert.ok(!SANITIZER_REPORT.test(log), `${what}: sanitizer report:\n${log.slice(-4000)}`);
  assert.ok(!WORKER_DIED.test(log), `${what}: a worker died:\n${log.split('\n').filter((l) => WORKER_DIED.test(l)).join('\n')}`);
}

module.exports = { assertNoLeak, assertOpenAIError, assertAnthropicError, sdkError, assertCleanLog, SANITIZER_REPORT };
