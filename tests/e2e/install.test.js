'use strict';
// Installing and operating airouter: -T (the effective configuration, secrets masked, fed
// back to -t), -V (library versions), make install / uninstall into a scratch DESTDIR, the
// Grafana dashboard against a real /metrics scrape, and (under `make deb-test`, which sets
// AIROUTER_DEB) the Debian package unpacked into a scratch root and answering a request.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const OpenAI = require('openai');
const { REPO, BIN, tmpDir, startRouter, freePort, waitFor } = require('./lib/harness');

function run(bin, args, env = {}) {
  const r = spawnSync(bin, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// -T's first line names the file it read; the rest must be a fixed point.
const body = (dump) => dump.split('\n').slice(1).join('\n');

function roundTrip(confPath, env = {}, bin = BIN) {
  const first = run(bin, ['-T', '-c', confPath], env);
  assert.equal(first.code, 0, `-T ${confPath}: ${first.err}`);
  assert.match(first.err, /configuration .* is ok/);
  const dumped = path.join(tmpDir(), 'dumped.conf');
  fs.writeFileSync(dumped, first.out);
  const tested = run(bin, ['-t', '-c', dumped]);
  assert.equal(tested.code, 0, `-t on the -T output of ${confPath} fails: ${tested.err}\n${first.out}`);
  const second = run(bin, ['-T', '-c', dumped]);
  assert.equal(second.code, 0, second.err);
  assert.equal(body(second.out), body(first.out), `dumping the dump of ${confPath} changes it`);
  return first.out;
}

const SECRETS = {
  T_METRICS_TOKEN: 'metrics-token-secret',
  T_BACKEND_KEY: 'sk-backend-secret',
  T_KEY_A: 'key-a-secret-123',
};
const SECRET_CONFIG = `
listen = "127.0.0.1:18080";
workers = 3;
metrics = { token = "\${T_METRICS_TOKEN}"; };
tracing = { otlp_endpoint = "http://collector:pw-otlp-secret@127.0.0.1:4318/"; service_name = "\${T_SERVICE:-router-a}"; };
limits = { max_body_bytes = 12884901888L; };
retry = { deadline = 12.5; retry_on = ["5xx", "connect"]; };
circuit_breaker = { failure_ratio = 0.25; };
backends = (
  { name = "up"; type = "openai"; url = "https://user:pw-url-secret@api.example.com/v1?api_key=q-url-secret&region=eu";
    api_key = "\${T_BACKEND_KEY}"; connect_timeout = 2.5;
    headers = ["Authorization: Bearer hdr-auth-secret", "X-Api-Key: hdr-key-secret", "X-Team: visible-team"];
    health_check = { path = "/models"; interval = 5; }; },
  { name = "claude"; type = "anthropic"; url = "https://api.anthropic.com/v1"; api_key = "literal-anthropic-secret"; },
  { name = "echo"; type = "echo"; }
);
prompt_formats = ( { name = "mine"; user_prefix = "<u>\\n\\"quoted\\"\\t"; user_suffix = "</u>"; system = "in_user"; } );
models = (
  { name = "gpt"; targets = ( { backend = "up"; backend_model = "gpt-4o"; weight = 3; }, { backend = "claude"; backend_model = "c"; } );
    kinds = ["chat"]; strategy = "ordered"; fallbacks = ["echo"]; },
  { name = "claude*"; backend = "claude"; max_tokens = 1024; backend_stream = true; },
  { name = "echo"; backend = "echo"; default = true; }
);
api_keys = (
  { key = "\${T_KEY_A}"; name = "team-a"; models = ["gpt*"]; rpm = 60; tpm = 5000000000L; },
  { key = "literal-key-b-secret"; name = "team-b"; }
);
passthrough = ( { prefix = "/v1/files"; backend = "up"; } );
`;

test('-T prints the effective configuration with every secret masked, and -t accepts it again', () => {
  const dir = tmpDir();
  const conf = path.join(dir, 'secrets.conf');
  fs.writeFileSync(conf, SECRET_CONFIG);
  const out = roundTrip(conf, SECRETS);
  const secrets = [...Object.values(SECRETS), 'pw-otlp-secret', 'pw-url-secret', 'q-url-secret', 'hdr-auth-secret',
    'hdr-key-secret', 'literal-anthropic-secret', 'literal-key-b-secret'];
  for (const s of secrets) assert.ok(!out.includes(s), `-T shows the secret ${s}:\n${out}`);
  for (const shown of [
    'url = "https://user:********@api.example.com/v1?api_key=********&region=eu";',
    'otlp_endpoint = "http://collector:********@127.0.0.1:4318";',
    'token = "********";',
    'api_key = "********";',
    '"Authorization: ********", "X-Api-Key: ********", "X-Team: visible-team"',
    'key = "********-1";', 'key = "********-2";',
    'service_name = "router-a";', // a ${VAR:-default} that is no secret shows its value
    'max_body_bytes = 12884901888L;', 'deadline = 12.5;', 'retry_on = [ "connect", "5xx" ];', 'failure_ratio = 0.25;',
    'connect_timeout = 2.5;', 'first_byte_timeout = 300.0;', 'drain_timeout = 30;', 'workers = 3;',
    'tpm = 5000000000L;', 'fallbacks = [ "echo" ];', 'strategy = "ordered";', 'weight = 3;',
    'user_prefix = "<u>\\n\\"quoted\\"\\t";', 'system = "in_user";', 'backend_stream = true;',
    'interval = 5.0;', 'prefix = "/v1/files";',
  ]) assert.ok(out.includes(shown), `-T lacks ${shown}:\n${out}`);
});

test('-T shows the defaults of an empty-ish config and the command line overrides', () => {
  const dir = tmpDir();
  const conf = path.join(dir, 'min.conf');
  fs.writeFileSync(conf, 'backends = ( { name = "e"; type = "echo"; } );\nmodels = ( { name = "m"; backend = "e"; } );\n');
  const out = roundTrip(conf);
  for (const d of ['listen = "127.0.0.1:8080";', 'workers = 2;', 'pidfile = "/run/airouter.pid";', 'level = "info";',
    'max_connections = 1024;', 'idle_timeout = 60;', 'attempts = 2;', 'retry_on = [ "connect", "timeout", "5xx", "429" ];',
    'failures = 5;', 'cooldown = 30.0;', '# failure_ratio: off', 'hide_unavailable_models = false;', 'stream_usage = true;',
    'kinds = [ "chat", "completions", "messages" ];', 'grpc_listen = "";', 'token = "";'])
    assert.ok(out.includes(d), `-T lacks the default ${d}:\n${out}`);
  const over = run(BIN, ['-T', '-c', conf, '-w', '7', '-p', '/tmp/x.pid']);
  assert.equal(over.code, 0, over.err);
  assert.match(over.out, /^workers = 7;$/m);
  assert.match(over.out, /^pidfile = "\/tmp\/x.pid";$/m);
  const bad = run(BIN, ['-T', '-c', path.join(dir, 'missing.conf')]);
  assert.equal(bad.code, 1);
  assert.equal(bad.out, '', 'nothing is printed for a config that fails');
  assert.match(bad.err, /test failed/);
});

test('-T round-trips the shipped configuration and every example', () => {
  const env = { OPENAI_API_KEY: 'sk-x-secret', ANTHROPIC_API_KEY: 'sk-ant-x-secret', KEY_TEAM_A: 'team-a-key-secret',
    KEY_TEAM_B: 'team-b-key-secret', KEY_CI: 'ci-key-secret-1', KEY_DEV: 'dev-key-secret-1' };
  const files = ['etc/airouter.conf', ...fs.readdirSync(path.join(REPO, 'etc/examples')).map((f) => `etc/examples/${f}`)];
  for (const f of files) {
    const out = roundTrip(path.join(REPO, f), env);
    assert.ok(!/-secret/.test(out), `${f}: a secret is shown:\n${out}`);
  }
});

test('-V names each library with the version built against and the one running', () => {
  const r = run(BIN, ['-V']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^airouter \d+\.\d+\.\d+$/m);
  const pc = (pkg) => execFileSync('pkg-config', ['--modversion', pkg], { encoding: 'utf8' }).trim();
  const expect = { libmicrohttpd: pc('libmicrohttpd'), libcurl: pc('libcurl'), 'json-c': pc('json-c'),
    grpc: pc('grpc'), 'protobuf-c': pc('libprotobuf-c') };
  for (const [lib, version] of Object.entries(expect))
    assert.match(r.out, new RegExp(`^  ${lib} +built with ${version.replaceAll('.', '\\.')} +runs with ${version.replaceAll('.', '\\.')}`, 'm'), r.out);
  assert.match(r.out, /^  libcurl .*\(TLS: \w+/m, 'libcurl shows its TLS backend');
  assert.match(r.out, /^  libconfig +built with \d+\.\d+\.\d+ +runs with \(reports none; loaded libconfig\.so\.[\d.]+\)$/m);
  const linksJemalloc = execFileSync('ldd', [BIN], { encoding: 'utf8' }).includes('libjemalloc');
  if (linksJemalloc) assert.match(r.out, /^  jemalloc +built with \d+\.\d+\.\d+ +runs with \d+\.\d+\.\d+$/m, r.out);
  else assert.match(r.out, /^  jemalloc +not linked/m, r.out);
});

// Every metric name a dashboard query uses, per query.
function dashboardQueries(dashboard) {
  const queries = [];
  (function walk(v, key) {
    if (typeof v === 'string' && ['expr', 'query', 'definition'].includes(key) && v !== 'prometheus') queries.push(v);
    else if (Array.isArray(v)) v.forEach((x) => walk(x));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
  })(dashboard);
  return queries;
}

// The names the scrape exposes: each # TYPE, and a histogram's _bucket, _sum and _count.
function exposedNames(scrape) {
  const names = new Set();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1] + s);
  }
  return names;
}

function missingNames(queries, names) {
  const missing = [];
  for (const q of queries) {
    const used = q.match(/\bairouter_[a-zA-Z0-9_]+/g) || [];
    if (used.length === 0) missing.push(`(no airouter metric in: ${q})`);
    for (const n of used) if (!names.has(n)) missing.push(n);
  }
  return missing;
}

// Label names on the scrape's series, per series name.
function seriesLabels(scrape) {
  const labels = new Map();
  for (const line of scrape.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/);
    if (!m) continue;
    const set = labels.get(m[1]) || new Set();
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) set.add(l[1]);
    labels.set(m[1], set);
  }
  return labels;
}

// Labels a query groups by or matches on that the series of its metrics do not carry.
function missingLabels(queries, labels) {
  const missing = [];
  for (const q of queries) {
    const wanted = new Set();
    for (const m of q.matchAll(/\bby \(([^)]*)\)/g)) m[1].split(',').map((x) => x.trim()).filter(Boolean).forEach((x) => wanted.add(x));
    for (const m of q.matchAll(/\{([^}]*)\}/g)) for (const x of m[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) wanted.add(x[1]);
    for (const metric of new Set(q.match(/\bairouter_[a-zA-Z0-9_]+/g) || [])) {
      const have = labels.get(metric);
      if (!have) { missing.push(`${metric}: no series`); continue; }
      for (const l of wanted) if (!have.has(l)) missing.push(`${metric}: no label ${l}`);
    }
  }
  return missing;
}

const DASHBOARD_CONFIG = `
listen = "127.0.0.1:@PORT@";
workers = 1;
backends = ( { name = "echo"; type = "echo"; }, { name = "slow"; type = "echo"; chunk_delay_ms = 200; },
             { name = "down"; type = "openai"; url = "http://127.0.0.1:1/v1"; } );
models = ( { name = "echo"; backend = "echo"; default = true; }, { name = "slow"; backend = "slow"; },
           { name = "down"; backend = "down"; } );
`;

test('the Grafana dashboard only queries metrics and labels a running router exports', async () => {
  const file = path.join(REPO, 'etc/grafana/airouter.json');
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8'));
  const queries = dashboardQueries(dashboard);
  assert.ok(queries.length >= 20, `only ${queries.length} queries found`);
  // Traffic that makes every series appear: answers, a stream, a backend error, a client abort.
  const h = await startRouter(DASHBOARD_CONFIG);
  try {
    const client = new OpenAI({ baseURL: `${h.base}/v1`, apiKey: 'x', maxRetries: 0 });
    await client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] });
    const stream = await client.chat.completions.create({ model: 'echo', stream: true, messages: [{ role: 'user', content: 'a b c' }] });
    for await (const _ of stream) { /* drain */ }
    await assert.rejects(client.chat.completions.create({ model: 'down', messages: [{ role: 'user', content: 'x' }] }));
    const abort = new AbortController();
    const slow = await fetch(`${h.base}/v1/chat/completions`, {
      method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }] }),
    });
    await slow.body.getReader().read();
    abort.abort();
    const scrape = await waitFor(async () => {
      const text = await (await fetch(`${h.base}/metrics`)).text();
      return ['airouter_time_to_first_token_seconds_bucket', 'airouter_backend_errors_total{', 'airouter_client_aborts_total{']
        .every((n) => text.includes(n)) && text;
    }, { what: 'a scrape with every series' });
    const names = exposedNames(scrape);
    assert.deepEqual(missingNames(queries, names), [], 'the dashboard names metrics airouter does not export');
    const labels = seriesLabels(scrape);
    assert.deepEqual(missingLabels(queries, labels), [], 'the dashboard uses labels the metrics do not have');
    // The checks themselves fail on a name that does not exist, a query without a metric, a wrong label.
    assert.deepEqual(missingNames(['rate(airouter_no_such_total[5m])', 'up'], names),
      ['airouter_no_such_total', '(no airouter metric in: up)']);
    assert.deepEqual(missingLabels(['sum by (model) (airouter_backend_errors_total{reason="x"})'], labels),
      ['airouter_backend_errors_total: no label model']);
    // The new gauges carry the labels the dashboard groups by.
    assert.match(scrape, /^airouter_target_circuit_open\{backend="echo",backend_model="\*"\} 0$/m);
    assert.match(scrape, /^airouter_backend_healthy\{backend="down"\} 1$/m);
  } finally {
    await h.stop();
  }
});

function make(args, env = {}) {
  // MAKEFLAGS from an outer `make test` would hand this make the outer jobserver.
  return execFileSync('make', ['-s', '--no-print-directory', '-C', REPO, ...args],
    { encoding: 'utf8', env: { ...process.env, MAKEFLAGS: '', MFLAGS: '', ...env }, timeout: 300000 });
}

function listTree(root) {
  const out = [];
  (function walk(d) {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else out.push(path.relative(root, p));
    }
  })(root);
  return out.sort();
}

test('make install puts each file in place, keeps an existing config; make uninstall removes only its own', () => {
  const dest = tmpDir();
  make(['install', `DESTDIR=${dest}`, 'PREFIX=/opt/ar']);
  const examples = fs.readdirSync(path.join(REPO, 'etc/examples')).sort();
  assert.deepEqual(listTree(dest), [
    'etc/airouter/airouter.conf', ...examples.map((e) => `etc/airouter/examples/${e}`), 'etc/logrotate.d/airouter',
    'opt/ar/lib/systemd/system/airouter.service', 'opt/ar/sbin/airouter',
    'opt/ar/share/man/man5/airouter.conf.5', 'opt/ar/share/man/man8/airouter.8',
  ].sort());
  assert.equal(fs.statSync(path.join(dest, 'opt/ar/sbin/airouter')).mode & 0o777, 0o755);
  const conf = fs.readFileSync(path.join(dest, 'etc/airouter/airouter.conf'), 'utf8');
  assert.match(conf, /^pidfile = "\/run\/airouter\/airouter.pid";$/m);
  const unit = fs.readFileSync(path.join(dest, 'opt/ar/lib/systemd/system/airouter.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/ar\/sbin\/airouter -c \/etc\/airouter\/airouter.conf -p \/run\/airouter\/airouter.pid$/m);
  // A reload tests the config first: the -t line comes before the HUP.
  const reloads = unit.match(/^ExecReload=.*$/gm);
  assert.deepEqual(reloads, ['ExecReload=/opt/ar/sbin/airouter -t -c /etc/airouter/airouter.conf', 'ExecReload=/bin/kill -HUP $MAINPID']);
  assert.match(unit, /^User=airouter$/m);
  assert.match(unit, /^RuntimeDirectory=airouter$/m);
  assert.ok(!unit.includes('/usr/local/sbin'), 'no path of the default PREFIX is left');
  // logrotate reopens through the pidfile the unit writes.
  const rotate = fs.readFileSync(path.join(dest, 'etc/logrotate.d/airouter'), 'utf8');
  assert.match(rotate, /^\s+\/opt\/ar\/sbin\/airouter -s reopen -p \/run\/airouter\/airouter.pid /m);
  // The installed binary tests the installed config.
  const t = run(path.join(dest, 'opt/ar/sbin/airouter'), ['-t', '-c', path.join(dest, 'etc/airouter/airouter.conf')]);
  assert.equal(t.code, 0, t.err);

  // An edited config survives a second install and the uninstall; a foreign file too.
  fs.appendFileSync(path.join(dest, 'etc/airouter/airouter.conf'), '# edited\n');
  fs.writeFileSync(path.join(dest, 'etc/airouter/examples/mine.conf'), '# mine\n');
  fs.writeFileSync(path.join(dest, 'opt/ar/sbin/other-tool'), '');
  assert.match(make(['install', `DESTDIR=${dest}`, 'PREFIX=/opt/ar']), /keeping the existing/);
  assert.match(fs.readFileSync(path.join(dest, 'etc/airouter/airouter.conf'), 'utf8'), /# edited\n$/);
  make(['uninstall', `DESTDIR=${dest}`, 'PREFIX=/opt/ar']);
  assert.deepEqual(listTree(dest), ['etc/airouter/airouter.conf', 'etc/airouter/examples/mine.conf', 'opt/ar/sbin/other-tool']);

  // An unedited config goes with the rest.
  const clean = tmpDir();
  make(['install', `DESTDIR=${clean}`]);
  assert.ok(fs.existsSync(path.join(clean, 'usr/local/sbin/airouter')));
  assert.ok(fs.existsSync(path.join(clean, 'usr/local/lib/systemd/system/airouter.service')));
  make(['uninstall', `DESTDIR=${clean}`]);
  assert.deepEqual(listTree(clean), []);
});

const DEB = process.env.AIROUTER_DEB;
test('the Debian package unpacked into a scratch root answers a chat request', { skip: !DEB && 'run by make deb-test' }, async () => {
  const field = (name) => execFileSync('dpkg-deb', ['-f', DEB, name], { encoding: 'utf8' }).trim();
  assert.equal(field('Package'), 'airouter');
  const root = tmpDir();
  execFileSync('dpkg-deb', ['-x', DEB, root]);
  const bin = path.join(root, 'usr/sbin/airouter');

  // Depends names the package of every shared library the binary needs directly.
  const depends = field('Depends').split(',').map((d) => d.trim().split(' ')[0]);
  const needed = execFileSync('objdump', ['-p', bin], { encoding: 'utf8' }).match(/NEEDED\s+\S+/g).map((l) => l.split(/\s+/)[1]);
  const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' });
  assert.ok(!ldd.includes('not found'), ldd);
  for (const lib of needed) {
    const where = ldd.match(new RegExp(`^\\s*${lib.replaceAll('.', '\\.')} => (\\S+)`, 'm'));
    if (!where) continue; // the dynamic loader itself
    const owner = execFileSync('sh', ['-c', `dpkg -S "$(readlink -f ${where[1]})" 2>/dev/null || dpkg -S ${where[1]}`], { encoding: 'utf8' }).split(':')[0];
    assert.ok(depends.includes(owner), `${lib} is in ${owner}, which Depends (${depends}) lacks`);
  }
  assert.ok(depends.includes('adduser'), 'postinst uses adduser');

  // Config files are conffiles; postinst makes the user and enables the unit without starting it.
  const control = tmpDir();
  execFileSync('dpkg-deb', ['-e', DEB, control]);
  const conffiles = fs.readFileSync(path.join(control, 'conffiles'), 'utf8').trim().split('\n').sort();
  assert.deepEqual(conffiles, listTree(path.join(root, 'etc')).map((f) => `/etc/${f}`));
  assert.ok(conffiles.includes('/etc/airouter/airouter.conf'));
  const postinst = fs.readFileSync(path.join(control, 'postinst'), 'utf8');
  assert.match(postinst, /adduser --system --group/);
  assert.match(postinst, /deb-systemd-helper enable airouter.service/);
  assert.doesNotMatch(postinst, /systemctl (start|restart|enable --now)|deb-systemd-invoke start/);
  const unit = fs.readFileSync(path.join(root, 'lib/systemd/system/airouter.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/sbin\/airouter -c \/etc\/airouter\/airouter.conf /m);
  assert.match(unit, /^ExecReload=\/usr\/sbin\/airouter -t /m);

  // The installed binary on the installed default config (its port moved off 8080, the only
  // line changed, so that it cannot meet another router on this machine).
  const installed = fs.readFileSync(path.join(root, 'etc/airouter/airouter.conf'), 'utf8');
  const port = await freePort();
  const conf = path.join(tmpDir(), 'airouter.conf');
  const moved = installed.replace(/^listen = "127.0.0.1:8080";$/m, `listen = "127.0.0.1:${port}";`);
  assert.notEqual(moved, installed);
  assert.equal(moved.split('\n').filter((l, i) => l !== installed.split('\n')[i]).length, 1);
  fs.writeFileSync(conf, moved);
  assert.equal(run(bin, ['-t', '-c', conf]).code, 0);
  const h = await startRouter(moved, { port, bin });
  try {
    const client = new OpenAI({ baseURL: `${h.base}/v1`, apiKey: 'none' });
    const r = await client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'hello from the package' }] });
    assert.equal(r.choices[0].message.content, 'hello from the package');
    const v = run(bin, ['-V']);
    assert.match(v.out, /^airouter \d/m);
  } finally {
    await h.stop();
  }
});
