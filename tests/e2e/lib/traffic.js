'use strict';
// A record of every response a test file received (status, headers, body), so that one test at the
// end can check all of them for leaks.
class Traffic {
  constructor() {
    this.entries = []; // { where, status, headers: [[name, value]], body }
    this.reads = []; // the reads of the recorded clones' bodies
  }

  push(entry) { this.entries.push(entry); return entry; }

  // A fetch (for an SDK's `fetch` option) that records every response; impl is the fetch to wrap.
  fetch(where, impl = fetch) {
    return async (url, init) => {
      const res = await impl(url, init);
      const entry = this.push({ where: `${where} ${init && init.method || 'GET'} ${url}`, status: res.status, headers: [...res.headers], body: '' });
      this.reads.push(res.clone().text().then((t) => { entry.body = t; }, () => { }));
      return res;
    };
  }

  // Waits until the recorded bodies are read, or ms passed (a body a test left unread never ends).
  async settle(ms = 5000) {
    let timer;
    await Promise.race([Promise.all(this.reads), new Promise((r) => { timer = setTimeout(r, ms); })]);
    clearTimeout(timer);
  }
}

module.exports = { Traffic };
