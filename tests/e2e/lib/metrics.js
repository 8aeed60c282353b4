'use strict';
// A router's /metrics, read on a fresh connection (any worker answers with the totals of all), and
// the barrier the tests use to show that something did not happen.
const { request } = require('./http.js');
const { waitFor } = require('./harness.js');

async function scrape(router) {
  const r = await request(router.base, '/metrics', { timeout: 5000 });
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.text.slice(0, 200)}`);
  return r.text;
}

// The sum of the samples of one metric whose labels include `labels`, in an exposition text.
function sumIn(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(?:\{(.*)\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

async function metricSum(router, name, labels = {}) { return sumIn(await scrape(router), name, labels); }

// Resolves once the router serves no API request and has no backend call open. A request's
// metrics are counted before it leaves the in-flight gauge, and a backend call is in the target
// gauge from before it connects until it is closed; so once both are 0, whatever the requests
// made so far were going to count or send to a backend has been counted or has reached it.
async function idle(router, { timeout = 10000 } = {}) {
  let last = '';
  await waitFor(async () => {
    last = await scrape(router);
    return sumIn(last, 'airouter_requests_in_flight') === 0 && sumIn(last, 'airouter_target_in_flight') === 0;
  }, { timeout, interval: 20, what: 'no request and no backend call in flight' }).catch((e) => {
    throw new Error(`${e.message}\n${last.split('\n').filter((l) => /_in_flight[{ ]/.test(l) && !/ 0$/.test(l)).join('\n')}`);
  });
}

module.exports = { scrape, sumIn, metricSum, idle };
