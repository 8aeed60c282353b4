'use strict';
// The official SDK clients as the tests use them: no retries (a test sees each answer the router
// gave), a 20 s bound, the router's base URL.
const OpenAI = require('openai');

// target: a router handle ({ base }) or a base URL.
function openai(target, { apiKey = 'sk-test', ...opts } = {}) {
  const base = typeof target === 'string' ? target : target.base;
  return new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 20000, ...opts });
}

function anthropic(target, { apiKey = 'sk-test', ...opts } = {}) {
  const Anthropic = require('@anthropic-ai/sdk');
  const base = typeof target === 'string' ? target : target.base;
  return new Anthropic({ baseURL: base, apiKey, maxRetries: 0, timeout: 20000, ...opts });
}

module.exports = { openai, anthropic };
