#!/usr/bin/env node
'use strict';
// A mock NVIDIA Triton Inference Server (KServe v2 gRPC) for airouter's tests, as faithful to the
// real server as the tests need (/work/shared/docs/protocols.md §1-5). It speaks real gRPC
// (@grpc/grpc-js from tests/node_modules) with its own proto (tests/e2e/proto/triton.proto),
// validates requests the way Triton does and answers the way a TensorRT-LLM ensemble / BLS or a
// vLLM model does.
//
// Module use:
//   const { startMock } = require('./scripts/mock-triton.js');
//   const m = await startMock({ port: 0 });
//   m.port, m.url ("127.0.0.1:PORT", what goes in a triton backend's `url`)
//   m.streams   every ModelStreamInfer call: { id, metadata (plain object, first value per key),
//               traceparent, peer (the client's "ip:port": one per TCP connection), deadline (ms since epoch or null), openedAt, halfClosedAt, cancelled,
//               cancelledAt, endedAt, status ({ code, details } the server ended with), requests }
//   m.requests  every ModelInferRequest received (stream or unary), decoded:
//               { stream, rpc ('ModelStreamInfer'|'ModelInfer'), at, model, version, id,
//                 params: { key: value }, paramTypes: { key: 'bool_param'|'int64_param'|... },
//                 inputs: { NAME: { datatype, shape: [Number], values: [...], raw: Buffer } },
//                 inputOrder: [NAME...], outputs: [NAME...], rawCount, traceparent,
//                 text (text_input's first element), sampling (parsed sampling_parameters JSON),
//                 error (the error_message sent, if validation or the model failed),
//                 responses: [{ at, final, text, error, flagOnly }], done, cancelled }
//               Values are decoded from raw little-endian bytes: BOOL -> true/false, INT8..INT32 /
//               UINT8..UINT32 / FP16? (not decoded) / FP32 / FP64 -> Number, INT64 / UINT64 -> BigInt,
//               BYTES -> strings (4-byte little-endian length + bytes per element, UTF-8).
//   m.health    [{ rpc, name, at }] for ServerLive / ServerReady / ModelReady / ModelMetadata
//   m.ready     server readiness (ServerReady answer), default true
//   m.reset(), m.last(pred), await m.waitFor(pred, ms), await m.close()
//
// CLI: node scripts/mock-triton.js [--port N] [--host H]
//
// Models. A model name is BASE or BASE+KNOB+KNOB=VALUE...; anything else is unknown, and a request
// for it gets the in-stream error "Request for unknown model: 'NAME' is not found" (ModelReady: a
// non-OK status). Bases:
//   ensemble          TensorRT-LLM ensemble (current tensor names: seed UINT64, min_tokens),
//                     max_batch_size 64 (wire shapes carry the batch dim: [1,1], [1,N]), decoupled
//   ensemble_legacy   the same before c2e65b8: random_seed, min_length instead of seed, min_tokens
//   ensemble_nobatch  TensorRT-LLM tensors with max_batch_size 0 (shapes [1], [N])
//   vllm_model        vLLM backend model: max_batch_size 0, always decoupled
// Knobs:
//   flagonly     (TRT-LLM) data responses never carry the final flag; a flag-only final response
//                follows, sent only if the request enabled triton_enable_empty_final_response (like
//                tensorrt_llm_bls in decoupled mode). Without it the request just ends silently.
//   eos          (TRT-LLM) one more data response after the last token: empty text_output (the EOS
//                token decoded with skip_special_tokens), carrying the final flag
//   delay=MS     pause before each streamed response (default 5); when given explicitly, a
//                non-streaming answer waits MS per token before its one response
//   first=MS     pause before the first response (default 0)
//   hang         never answers (cancel / timeout tests); the call stays open until cancelled
//   error        the model fails: in-stream error_message before any data (vLLM: with the final
//                flag; TRT-LLM: error, then a flag-only final if empty finals are enabled)
//   error_after=N  the same after N data responses
//   status=CODE  the whole stream ends with gRPC status CODE (numeric) before any response
//   status_after=N with status=CODE: after N data responses
//   notready     ModelReady answers ready=false
//   cumulative   (streaming) every response carries all the text so far (BLS accumulate_tokens)
//   echo         the prompt is echoed whatever exclude_input_in_output says (non-streaming: in
//                front of the text; streaming: in front of the first response, or of every one
//                with cumulative), like older vLLM backends
//   big=N        (non-streaming) N more 'x' characters after the answer (messages over 4 MiB);
//                (streaming) the second response carries N more 'x' characters
//
// Answers (deterministic, derived from the prompt P = text_input[0]):
//   replyTokens(P) = ["Hello", " from", " Triton", ":", " W", " words", ",", " C", " chars."]
//   with W = whitespace-separated words of P and C = P.length (UTF-16 units). Generation takes at
//   most max_tokens tokens (TRT-LLM: the max_tokens tensor; vLLM: sampling_parameters.max_tokens,
//   default 16 like vLLM's SamplingParams). If the reply contains a stop word (TRT-LLM stop_words,
//   vLLM "stop"), it is cut before it. finish reason: "length" if cut by max_tokens, else "stop".
//   Streaming (stream=true): one response per token, text_output = that token (a delta).
//     TRT-LLM: final flag on the last data response (or see flagonly / eos).
//     vLLM: finish_reason "None" on every response but the last; num_output_tokens = tokens in that
//     response; num_input_tokens = W on every response; the final flag rides on the last one.
//   Non-streaming: one response with the whole text and the final flag; the prompt is echoed in
//   front unless exclude_input_in_output is true (TRT-LLM: tensor, default false; vLLM: tensor,
//   and when absent the prompt is echoed for stream=false).
//   Outputs: the requested ones (unknown names are an error); none requested -> all of the model's.
//   vLLM produces finish_reason / num_input_tokens / num_output_tokens only when the matching
//   return_* input is true.
// Stream end: after the client half-closes and every request on the stream is done, status OK.
// ModelInfer (unary) on these decoupled models: UNIMPLEMENTED, as Triton does.

const path = require('node:path');
const { sleep, runCommand } = require('./mock-lib.js');

const TESTS = path.join(__dirname, '..', 'tests');
const grpc = require(require.resolve('@grpc/grpc-js', { paths: [TESTS] }));
const protoLoader = require(require.resolve('@grpc/proto-loader', { paths: [TESTS] }));

const PROTO = path.join(TESTS, 'e2e', 'proto', 'triton.proto');
const LOAD_OPTS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

const S = grpc.status;

// ---- model configs (config.pbtxt facts, §3.2 / §4.1) ----

function trtllmInputs(legacy) {
  const i = (name, datatype, dims, optional = true) => ({ name, datatype, dims, optional });
  return [
    i('text_input', 'BYTES', [1], false),
    i('decoder_text_input', 'BYTES', [1]),
    i('max_tokens', 'INT32', [1], false),
    i('num_return_sequences', 'INT32', [1]),
    i('bad_words', 'BYTES', [-1]),
    i('stop_words', 'BYTES', [-1]),
    i('exclude_input_in_output', 'BOOL', [1]),
    i('end_id', 'INT32', [1]),
    i('pad_id', 'INT32', [1]),
    i('top_k', 'INT32', [1]),
    i('top_p', 'FP32', [1]),
    i('temperature', 'FP32', [1]),
    i('length_penalty', 'FP32', [1]),
    i('repetition_penalty', 'FP32', [1]),
    i(legacy ? 'min_length' : 'min_tokens', 'INT32', [1]),
    i('presence_penalty', 'FP32', [1]),
    i('frequency_penalty', 'FP32', [1]),
    i(legacy ? 'random_seed' : 'seed', 'UINT64', [1]),
    i('return_log_probs', 'BOOL', [1]),
    i('return_context_logits', 'BOOL', [1]),
    i('return_generation_logits', 'BOOL', [1]),
    i('return_perf_metrics', 'BOOL', [1]),
    i('beam_width', 'INT32', [1]),
    i('stream', 'BOOL', [1]),
    i('prompt_embedding_table', 'FP16', [-1, -1]),
    i('prompt_vocab_size', 'INT32', [1]),
    i('embedding_bias_words', 'BYTES', [-1]),
    i('embedding_bias_weights', 'FP32', [-1]),
  ];
}
const TRTLLM_OUTPUTS = [
  { name: 'text_output', datatype: 'BYTES', dims: [-1] },
  { name: 'cum_log_probs', datatype: 'FP32', dims: [-1] },
  { name: 'output_log_probs', datatype: 'FP32', dims: [-1, -1] },
  { name: 'batch_index', datatype: 'INT32', dims: [1] },
  { name: 'sequence_index', datatype: 'INT32', dims: [1] },
];
const VLLM_INPUTS = [
  { name: 'text_input', datatype: 'BYTES', dims: [1], optional: false },
  { name: 'image', datatype: 'BYTES', dims: [-1], optional: true },
  { name: 'stream', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'sampling_parameters', datatype: 'BYTES', dims: [1], optional: true },
  { name: 'exclude_input_in_output', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'return_finish_reason', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'return_cumulative_logprob', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'return_logprobs', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'return_num_input_tokens', datatype: 'BOOL', dims: [1], optional: true },
  { name: 'return_num_output_tokens', datatype: 'BOOL', dims: [1], optional: true },
];
const VLLM_OUTPUTS = [
  { name: 'text_output', datatype: 'BYTES', dims: [-1] },
  { name: 'finish_reason', datatype: 'BYTES', dims: [-1] },
  { name: 'cumulative_logprob', datatype: 'FP32', dims: [-1] },
  { name: 'logprobs', datatype: 'BYTES', dims: [-1] },
  { name: 'num_input_tokens', datatype: 'UINT32', dims: [1] },
  { name: 'num_output_tokens', datatype: 'UINT32', dims: [-1] },
];

const BASES = {
  ensemble: { profile: 'trtllm', platform: 'ensemble', maxBatch: 64, inputs: trtllmInputs(false), outputs: TRTLLM_OUTPUTS },
  ensemble_legacy: { profile: 'trtllm', platform: 'ensemble', maxBatch: 64, inputs: trtllmInputs(true), outputs: TRTLLM_OUTPUTS },
  ensemble_nobatch: { profile: 'trtllm', platform: 'ensemble', maxBatch: 0, inputs: trtllmInputs(false), outputs: TRTLLM_OUTPUTS },
  vllm_model: { profile: 'vllm', platform: 'vllm', maxBatch: 0, inputs: VLLM_INPUTS, outputs: VLLM_OUTPUTS },
};

// The model named name (base + knobs), or null when Triton would not know it.
function modelFor(name) {
  if (typeof name !== 'string' || !name) return null;
  const [base, ...rest] = name.split('+');
  const b = BASES[base];
  if (!b) return null;
  const knobs = {};
  for (const k of rest) {
    const i = k.indexOf('=');
    if (i < 0) knobs[k] = true; else knobs[k.slice(0, i)] = k.slice(i + 1);
  }
  return { name, base, ...b, knobs };
}

// ---- tensor bytes ----

const SIZES = { BOOL: 1, INT8: 1, UINT8: 1, INT16: 2, UINT16: 2, FP16: 2, BF16: 2, INT32: 4, UINT32: 4, FP32: 4, INT64: 8, UINT64: 8, FP64: 8 };

function decodeRaw(datatype, buf) {
  const out = [];
  if (datatype === 'BYTES') {
    let off = 0;
    while (off < buf.length) {
      if (buf.length - off < 4) throw new Error('unexpected end of BYTES data (a 4-byte length prefix is cut short)');
      const n = buf.readUInt32LE(off);
      off += 4;
      if (n > buf.length - off) throw new Error(`element byte size indicates more data than remaining (${n} > ${buf.length - off})`);
      out.push(buf.subarray(off, off + n).toString('utf8'));
      off += n;
    }
    return out;
  }
  const size = SIZES[datatype];
  for (let off = 0; off + size <= buf.length; off += size) {
    switch (datatype) {
      case 'BOOL': out.push(buf[off] !== 0); break;
      case 'INT8': out.push(buf.readInt8(off)); break;
      case 'UINT8': out.push(buf.readUInt8(off)); break;
      case 'INT16': out.push(buf.readInt16LE(off)); break;
      case 'UINT16': out.push(buf.readUInt16LE(off)); break;
      case 'INT32': out.push(buf.readInt32LE(off)); break;
      case 'UINT32': out.push(buf.readUInt32LE(off)); break;
      case 'FP32': out.push(buf.readFloatLE(off)); break;
      case 'FP64': out.push(buf.readDoubleLE(off)); break;
      case 'INT64': out.push(buf.readBigInt64LE(off)); break;
      case 'UINT64': out.push(buf.readBigUInt64LE(off)); break;
      default: out.push(buf.subarray(off, off + size).toString('hex'));
    }
  }
  return out;
}

function bytesTensor(values) {
  const parts = [];
  for (const v of values) {
    const b = Buffer.from(String(v), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length, 0);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}
function u32Tensor(values) {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32LE(v, 4 * i));
  return b;
}
function f32Tensor(values) {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeFloatLE(v, 4 * i));
  return b;
}
function i32Tensor(values) {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeInt32LE(v, 4 * i));
  return b;
}

// Typed contents (InferTensorContents) for the non-raw path.
function decodeContents(datatype, c) {
  switch (datatype) {
    case 'BOOL': return c.bool_contents || [];
    case 'INT8': case 'INT16': case 'INT32': return c.int_contents || [];
    case 'INT64': return (c.int64_contents || []).map((v) => BigInt(v));
    case 'UINT8': case 'UINT16': case 'UINT32': return c.uint_contents || [];
    case 'UINT64': return (c.uint64_contents || []).map((v) => BigInt(v));
    case 'FP32': return c.fp32_contents || [];
    case 'FP64': return c.fp64_contents || [];
    case 'BYTES': return (c.bytes_contents || []).map((b) => Buffer.from(b).toString('utf8'));
    default: return [];
  }
}

const fmtShape = (s) => `[${s.join(',')}]`;
const hasContents = (c) => !!c && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);

// ---- answers ----

function words(s) { return s.split(/\s+/).filter(Boolean).length; }

function replyTokens(prompt) {
  return ['Hello', ' from', ' Triton', ':', ` ${words(prompt)}`, ' words', ',', ` ${prompt.length}`, ' chars.'];
}

// The tokens generated for a prompt under max_tokens and stop words: { tokens, finish }.
function generate(prompt, maxTokens, stops) {
  let tokens = replyTokens(prompt);
  let finish = 'stop';
  const full = tokens.join('');
  let cut = full.length;
  for (const s of stops || []) {
    if (!s) continue;
    const i = full.indexOf(s);
    if (i >= 0 && i < cut) cut = i;
  }
  if (cut < full.length) {
    const kept = [];
    let at = 0;
    for (const t of tokens) {
      if (at + t.length <= cut) kept.push(t);
      else { if (cut > at) kept.push(t.slice(0, cut - at)); break; }
      at += t.length;
    }
    tokens = kept;
  }
  if (maxTokens >= 0 && tokens.length > maxTokens) { tokens = tokens.slice(0, maxTokens); finish = 'length'; }
  return { tokens, finish };
}

// Plain object of gRPC metadata (first value per key).
function mdObject(md) {
  const out = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : v;
  return out;
}


async function startMock({ port = 0, host = '127.0.0.1', quiet = true } = {}) {
  const pkgDef = protoLoader.loadSync(PROTO, LOAD_OPTS);
  const inference = grpc.loadPackageDefinition(pkgDef).inference;
  const server = new grpc.Server();
  const m = {
    streams: [],
    requests: [],
    health: [],
    ready: true,
    reset() { this.streams.length = 0; this.requests.length = 0; this.health.length = 0; },
    last(pred = () => true) { for (let i = this.requests.length - 1; i >= 0; i--) if (pred(this.requests[i])) return this.requests[i]; return null; },
    async waitFor(pred, ms = 5000) {
      const end = Date.now() + ms;
      for (;;) {
        const r = pred();
        if (r) return r;
        if (Date.now() > end) throw new Error('mock-triton: timed out waiting for a condition');
        await sleep(20);
      }
    },
  };
  let streamSeq = 0;
  const log = (...a) => { if (!quiet) console.error('[mock-triton]', ...a); };

  // Validates req against Triton's rules and decodes it into rec. Returns an error message or null.
  function validate(req, model, rec) {
    if (!model) return `Request for unknown model: '${req.model_name}' is not found`;
    for (const [k, p] of Object.entries(req.parameters || {})) {
      const type = p.parameter_choice || Object.keys(p).find((x) => x.endsWith('_param'));
      rec.paramTypes[k] = type;
      rec.params[k] = type ? p[type] : undefined;
      if (k.startsWith('triton_')) {
        if (k === 'triton_enable_empty_final_response') {
          if (type !== 'bool_param') return "invalid value type for 'triton_enable_empty_final_response' parameter, expected bool_param.";
        } else {
          return "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.";
        }
      }
    }
    const inputs = req.inputs || [];
    const raw = req.raw_input_contents || [];
    rec.rawCount = raw.length;
    if (raw.length > 0 && raw.length !== inputs.length) {
      return `expected ${inputs.length} raw_input_contents entries (one per input, in the order of 'inputs'), got ${raw.length} for model '${model.name}'`;
    }
    const byName = new Map(model.inputs.map((i) => [i.name, i]));
    for (let k = 0; k < inputs.length; k++) {
      const t = inputs[k];
      const cfg = byName.get(t.name);
      if (!cfg) return `unexpected inference input '${t.name}' for model '${model.name}'`;
      if (rec.inputs[t.name]) return `input '${t.name}' already exists in request`;
      if (t.datatype !== cfg.datatype) return `inference input '${t.name}' data-type is '${t.datatype}', but model '${model.name}' expects '${cfg.datatype}'`;
      const shape = (t.shape || []).map(Number);
      const want = model.maxBatch > 0 ? [-1, ...cfg.dims] : cfg.dims;
      let okShape = shape.length === want.length;
      if (okShape && model.maxBatch > 0) okShape = shape[0] >= 1 && shape[0] <= model.maxBatch;
      for (let d = model.maxBatch > 0 ? 1 : 0; okShape && d < want.length; d++) okShape = want[d] === -1 ? shape[d] >= 0 : shape[d] === want[d];
      if (!okShape) return `unexpected shape for input '${t.name}' for model '${model.name}'. Expected ${fmtShape(want)}, got ${fmtShape(shape)}`;
      const count = shape.reduce((a, b) => a * b, 1);
      let values;
      let rawBuf = null;
      if (raw.length > 0) {
        if (hasContents(t.contents)) return `contents field must not be specified when using raw_input_contents for '${t.name}' for model '${model.name}'`;
        rawBuf = Buffer.from(raw[k]);
        if (t.datatype !== 'BYTES') {
          const want = count * SIZES[t.datatype];
          if (rawBuf.length !== want) return `input byte size mismatch for input '${t.name}' for model '${model.name}'. Expected ${want}, got ${rawBuf.length}`;
        }
        try { values = decodeRaw(t.datatype, rawBuf); } catch (e) { return `${e.message} for input '${t.name}' for model '${model.name}'`; }
      } else if (hasContents(t.contents)) {
        values = decodeContents(t.datatype, t.contents);
      } else {
        return `unable to find data for input tensor '${t.name}' for model '${model.name}'`;
      }
      if (values.length !== count) return `expected ${count} elements for inference input '${t.name}' (shape ${fmtShape(shape)}), got ${values.length} for model '${model.name}'`;
      rec.inputs[t.name] = { datatype: t.datatype, shape, values, raw: rawBuf };
      rec.inputOrder.push(t.name);
    }
    const missing = model.inputs.filter((i) => !i.optional && !rec.inputs[i.name]).map((i) => i.name);
    if (missing.length) {
      const got = rec.inputOrder.map((n) => `'${n}'`).join(',');
      return `[request id: ${req.id || '<id_unknown>'}] expected ${model.inputs.filter((i) => !i.optional).length} inputs but got ${inputs.length} inputs for model '${model.name}'. Got input(s) [${got}], but missing required input(s) [${missing.map((n) => `'${n}'`).join(',')}]. Please provide all required input(s).`;
    }
    const outNames = new Set(model.outputs.map((o) => o.name));
    for (const o of req.outputs || []) {
      if (!outNames.has(o.name)) return `unexpected inference output '${o.name}' for model '${model.name}'`;
      rec.outputs.push(o.name);
    }
    rec.text = rec.inputs.text_input ? rec.inputs.text_input.values[0] : undefined;
    return null;
  }

  // What the model does with a valid request: { error } or { steps: [ {text, final, ...} ], ... }.
  function plan(model, rec) {
    const val = (n) => (rec.inputs[n] ? rec.inputs[n].values[0] : undefined);
    const stream = val('stream') === true;
    const prompt = rec.text;
    if (model.profile === 'trtllm') {
      const maxTokens = val('max_tokens');
      if (!(maxTokens > 0)) return { error: `[TensorRT-LLM][ERROR] Assertion failed: max_tokens must be > 0 (got ${maxTokens})` };
      const stops = rec.inputs.stop_words ? rec.inputs.stop_words.values : [];
      const g = generate(prompt, maxTokens, stops);
      const exclude = rec.inputs.exclude_input_in_output ? val('exclude_input_in_output') === true : false;
      return { stream, gen: g, echo: !stream && !exclude ? prompt : '' };
    }
    // vLLM
    const exclTensor = rec.inputs.exclude_input_in_output;
    if (stream && exclTensor && exclTensor.values[0] === false) return { error: 'When streaming, `exclude_input_in_output` = False is not allowed.' };
    let sp = {};
    if (rec.inputs.sampling_parameters) {
      try { sp = JSON.parse(val('sampling_parameters')); } catch (e) { return { error: `Error generating stream: invalid sampling_parameters JSON: ${e.message}` }; }
      if (!sp || typeof sp !== 'object' || Array.isArray(sp)) return { error: 'Error generating stream: sampling_parameters must be a JSON object' };
      rec.sampling = sp;
    }
    const maxTokens = sp.max_tokens === undefined || sp.max_tokens === null ? 16 : Number(sp.max_tokens);
    const stops = sp.stop === undefined ? [] : Array.isArray(sp.stop) ? sp.stop : [sp.stop];
    const g = generate(prompt, maxTokens, stops);
    const prepend = exclTensor ? exclTensor.values[0] === false : !stream;
    return { stream, gen: g, echo: prepend ? prompt : '' };
  }

  function outputsFor(model, rec, { text, finish, nIn, nOut }) {
    const batch = model.maxBatch > 0;
    const sh = (n) => (batch ? [1, n] : [n]);
    const want = rec.outputs.length ? rec.outputs : null;
    const produced = [];
    const add = (name, datatype, shape, raw) => { if (!want || want.includes(name)) produced.push({ name, datatype, shape, raw }); };
    if (model.profile === 'trtllm') {
      add('text_output', 'BYTES', sh(1), bytesTensor([text]));
      if (!want) { // everything the ensemble lists, mostly empty
        add('cum_log_probs', 'FP32', sh(1), f32Tensor([0]));
        add('output_log_probs', 'FP32', batch ? [1, 1, 0] : [1, 0], Buffer.alloc(0));
        add('batch_index', 'INT32', sh(1), i32Tensor([0]));
        add('sequence_index', 'INT32', sh(1), i32Tensor([0]));
      }
    } else {
      const flag = (n) => rec.inputs[n] && rec.inputs[n].values[0] === true;
      add('text_output', 'BYTES', [1], bytesTensor([text]));
      if (flag('return_finish_reason')) add('finish_reason', 'BYTES', [1], bytesTensor([finish]));
      if (flag('return_num_input_tokens')) add('num_input_tokens', 'UINT32', [1], u32Tensor([nIn]));
      if (flag('return_num_output_tokens')) add('num_output_tokens', 'UINT32', [1], u32Tensor([nOut]));
    }
    return {
      outputs: produced.map(({ name, datatype, shape }) => ({ name, datatype, shape, parameters: {} })),
      raw_output_contents: produced.map((p) => p.raw),
    };
  }

  function response(model, rec, final, body) {
    return {
      error_message: '',
      infer_response: {
        model_name: model ? model.name : rec.model,
        model_version: '1',
        id: rec.id,
        parameters: { triton_final_response: { bool_param: !!final } },
        outputs: body ? body.outputs : [],
        raw_output_contents: body ? body.raw_output_contents : [],
      },
    };
  }
  function errorResponse(model, rec, msg, final) {
    return {
      error_message: msg,
      infer_response: {
        model_name: model ? model.name : rec.model, model_version: model ? '1' : '', id: rec.id,
        parameters: { triton_final_response: { bool_param: !!final } }, outputs: [], raw_output_contents: [],
      },
    };
  }

  function newRec(req, rpc, st, md) {
    return {
      stream: st, rpc, at: Date.now(), model: req.model_name, version: req.model_version, id: req.id,
      params: {}, paramTypes: {}, inputs: {}, inputOrder: [], outputs: [], rawCount: 0,
      traceparent: md.traceparent, metadata: md, text: undefined, sampling: undefined, error: null,
      responses: [], done: false, cancelled: false,
    };
  }

  // Runs one request on a stream; resolves when the request is done (or the call is gone).
  async function runRequest(call, st, req) {
    const model = modelFor(req.model_name);
    const rec = newRec(req, 'ModelStreamInfer', st, st.metadata);
    m.requests.push(rec);
    st.requests.push(rec);
    const gone = () => st.cancelled || st.endedAt !== null;
    const send = (msg, note) => {
      if (gone()) return false;
      rec.responses.push({ at: Date.now(), ...note });
      try { call.write(msg); } catch { return false; }
      return true;
    };
    const verr = validate(req, model, rec);
    const emptyFinal = rec.params.triton_enable_empty_final_response === true;
    if (verr) {
      rec.error = verr;
      send(errorResponse(model, rec, verr, true), { error: verr, final: true });
      rec.done = true;
      return;
    }
    const k = model.knobs;
    if (k.hang) { // never answers
      await new Promise((resolve) => { st.onGone.push(resolve); });
      rec.cancelled = st.cancelled;
      return;
    }
    const p = plan(model, rec);
    const failWith = (msg) => {
      rec.error = msg;
      if (model.profile === 'vllm') {
        send(errorResponse(model, rec, msg, true), { error: msg, final: true });
      } else {
        send(errorResponse(model, rec, msg, false), { error: msg, final: false });
        if (emptyFinal) send(response(model, rec, true, null), { final: true, flagOnly: true });
      }
    };
    if (p.error) { failWith(p.error); rec.done = true; return; }
    const delay = k.delay !== undefined ? Number(k.delay) : 5;
    if (k.first) await sleep(Number(k.first));
    const statusCode = k.status !== undefined ? Number(k.status) : null;
    const statusAfter = k.status_after !== undefined ? Number(k.status_after) : 0;
    const errorAfter = k.error ? 0 : k.error_after !== undefined ? Number(k.error_after) : -1;
    const nIn = words(rec.text || '');
    const endWithStatus = () => {
      rec.error = `status ${statusCode}`;
      st.status = { code: statusCode, details: `mock-triton: model '${model.name}' failed the stream` };
      try { call.emit('error', { code: statusCode, details: st.status.details }); } catch { /* gone */ }
    };
    if (statusCode !== null && statusAfter === 0) { endWithStatus(); rec.done = true; return; }
    if (errorAfter === 0) { failWith(`Error generating stream: mock failure in model '${model.name}'`); rec.done = true; return; }

    const { tokens, finish } = p.gen;
    const echoed = k.echo ? rec.text : p.echo; // knob echo: the prompt comes back whatever was asked
    if (!p.stream) {
      // generation takes time: with an explicit delay knob, delay per token before the one answer
      if (k.delay !== undefined) await sleep(delay * tokens.length);
      if (gone()) { rec.cancelled = st.cancelled; return; }
      const text = echoed + tokens.join('') + (k.big ? 'x'.repeat(Number(k.big)) : '');
      send(response(model, rec, true, outputsFor(model, rec, { text, finish, nIn, nOut: tokens.length })), { final: true, text });
      rec.done = true;
      return;
    }
    // Streaming: one response per token (a delta).
    const flagOnly = model.profile === 'trtllm' && k.flagonly;
    const eos = model.profile === 'trtllm' && k.eos;
    for (let i = 0; i < tokens.length; i++) {
      await sleep(delay);
      if (gone()) { rec.cancelled = st.cancelled; return; }
      if (statusCode !== null && i === statusAfter) { endWithStatus(); rec.done = true; return; }
      if (errorAfter > 0 && i === errorAfter) { failWith(`Error generating stream: mock failure in model '${model.name}'`); rec.done = true; return; }
      const last = i === tokens.length - 1;
      const final = last && !flagOnly && !eos;
      const fin = model.profile === 'vllm' && last ? finish : 'None';
      let text = k.cumulative ? tokens.slice(0, i + 1).join('') : tokens[i];
      if (k.echo && (k.cumulative || i === 0)) text = rec.text + text;
      if (k.big && i === 1) text += 'x'.repeat(Number(k.big));
      send(response(model, rec, final, outputsFor(model, rec, { text, finish: fin, nIn, nOut: 1 })), { final, text });
    }
    if (tokens.length === 0 && !flagOnly && !eos) { // nothing generated: one empty final data response
      send(response(model, rec, true, outputsFor(model, rec, { text: '', finish, nIn, nOut: 0 })), { final: true, text: '' });
    }
    if (eos) {
      await sleep(delay);
      send(response(model, rec, true, outputsFor(model, rec, { text: '', finish, nIn, nOut: 1 })), { final: true, text: '' });
    }
    if (flagOnly) {
      await sleep(delay);
      // The backend's flag-only final reaches the client only when empty finals are enabled.
      if (emptyFinal) send(response(model, rec, true, null), { final: true, flagOnly: true });
    }
    rec.done = true;
  }

  function streamInfer(call) {
    const st = {
      id: ++streamSeq, metadata: mdObject(call.metadata), traceparent: undefined, deadline: null, peer: null,
      openedAt: Date.now(), halfClosedAt: null, cancelled: false, cancelledAt: null, endedAt: null,
      status: null, requests: [], onGone: [],
    };
    st.traceparent = st.metadata.traceparent;
    try { st.peer = call.getPeer(); } catch { /* unknown */ }
    try {
      const d = call.getDeadline();
      st.deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? d : null;
    } catch { /* none */ }
    m.streams.push(st);
    let inflight = 0;
    const goneNow = () => { const f = st.onGone.splice(0); for (const r of f) r(); };
    const maybeEnd = () => {
      if (st.halfClosedAt !== null && inflight === 0 && st.endedAt === null && !st.cancelled) {
        st.endedAt = Date.now();
        if (!st.status) st.status = { code: S.OK, details: 'OK' };
        try { call.end(); } catch { /* gone */ }
        goneNow();
      }
    };
    call.on('data', (req) => {
      inflight++;
      runRequest(call, st, req).catch((e) => log('request failed', e)).finally(() => {
        inflight--;
        if (st.status && st.status.code !== S.OK && st.endedAt === null) { st.endedAt = Date.now(); goneNow(); }
        maybeEnd();
      });
    });
    call.on('end', () => { st.halfClosedAt = Date.now(); maybeEnd(); });
    call.on('cancelled', () => {
      if (st.endedAt !== null) return;
      st.cancelled = true;
      st.cancelledAt = Date.now();
      for (const r of st.requests) if (!r.done) r.cancelled = true;
      goneNow();
    });
    call.on('error', () => { /* the status was sent (or the client is gone) */ });
  }

  server.addService(inference.GRPCInferenceService.service, {
    ServerLive(call, cb) { m.health.push({ rpc: 'ServerLive', at: Date.now() }); cb(null, { live: true }); },
    ServerReady(call, cb) { m.health.push({ rpc: 'ServerReady', at: Date.now() }); cb(null, { ready: !!m.ready }); },
    ModelReady(call, cb) {
      const name = call.request.name;
      m.health.push({ rpc: 'ModelReady', name, at: Date.now() });
      const model = modelFor(name);
      if (!model) return cb({ code: S.UNAVAILABLE, details: `Request for unknown model: '${name}' is not found` });
      cb(null, { ready: !!m.ready && !model.knobs.notready });
    },
    ModelMetadata(call, cb) {
      const name = call.request.name;
      m.health.push({ rpc: 'ModelMetadata', name, at: Date.now() });
      const model = modelFor(name);
      if (!model) return cb({ code: S.UNAVAILABLE, details: `Request for unknown model: '${name}' is not found` });
      const shp = (dims) => (model.maxBatch > 0 ? [-1, ...dims] : dims);
      cb(null, {
        name, versions: ['1'], platform: model.platform,
        inputs: model.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: shp(i.dims) })),
        outputs: model.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: shp(o.dims) })),
      });
    },
    ModelInfer(call, cb) {
      const req = call.request;
      const model = modelFor(req.model_name);
      const rec = newRec(req, 'ModelInfer', null, mdObject(call.metadata));
      m.requests.push(rec);
      const verr = validate(req, model, rec);
      rec.done = true;
      if (verr) { rec.error = verr; return cb({ code: model ? S.INVALID_ARGUMENT : S.UNAVAILABLE, details: verr }); }
      rec.error = "ModelInfer RPC doesn't support models with decoupled transaction policy";
      cb({ code: S.UNIMPLEMENTED, details: rec.error });
    },
    ModelStreamInfer: streamInfer,
  });

  const bound = await new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  m.port = bound;
  m.url = `${host}:${bound}`;
  m.server = server;
  m.close = () => new Promise((resolve) => {
    const t = setTimeout(() => { server.forceShutdown(); resolve(); }, 1000);
    server.tryShutdown(() => { clearTimeout(t); resolve(); });
  });
  return m;
}

module.exports = { startMock, modelFor, replyTokens, generate, decodeRaw, bytesTensor, words, PROTO };

if (require.main === module) {
  runCommand('mock-triton', 'node scripts/mock-triton.js [--port N] [--host H]',
    (opt) => startMock({ port: Number(opt('--port', 8001)), host: opt('--host', '127.0.0.1'), quiet: false }));
}
