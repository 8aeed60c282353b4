'use strict';
// Server-sent events as a client reads them. One parser (sseEvents) follows the spec; the others
// are views of its result for the shapes the tests check.

// Every event of an SSE body: [{ event, data, json, comments, other }]. event is the last `event:`
// field (null if none), data the `data:` lines joined with \n ('' if none), json the data parsed
// (null if it is not JSON), comments the `:` lines, other any line that is none of these. Blocks
// with neither data nor event dispatch nothing and are left out. lf: only \n ends a line (otherwise
// \r\n and \r do too).
function sseEvents(text, { lf = false } = {}) {
  const out = [];
  if (!lf) text = text.replace(/\r\n?/g, '\n');
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    const comments = [];
    const other = [];
    for (const line of block.split('\n')) {
      if (line === '') continue;
      if (line.startsWith(':')) { comments.push(line); continue; }
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let val = i < 0 ? '' : line.slice(i + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'data') data.push(val);
      else if (field === 'event') event = val;
      else other.push(line);
    }
    if (!data.length && event === null) continue;
    const d = data.join('\n');
    let json = null;
    try { json = JSON.parse(d); } catch { /* [DONE] or not JSON */ }
    out.push({ event, data: d, json, comments, other });
  }
  return out;
}

// An OpenAI stream (data-only events): { events: [parsed JSON, '[DONE]' or { unparsable }],
// comments, badLines }. A line other than data or a comment (an `event:` line included) is a bad
// line, and the event it is in counts as unparsable.
function parseSse(text) {
  const events = [];
  const comments = [];
  const badLines = [];
  text = text.replace(/\r\n?/g, '\n');
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) { comments.push(line); continue; }
      if (line.startsWith('data: ')) data.push(line.slice(6));
      else if (line.startsWith('data:')) data.push(line.slice(5));
      else { badLines.push(line); data.push(`!!unexpected line: ${line}`); }
    }
    if (!data.length) continue;
    const d = data.join('\n');
    if (d === '[DONE]') events.push('[DONE]');
    else { try { events.push(JSON.parse(d)); } catch { events.push({ unparsable: d }); } }
  }
  return { events, comments, badLines };
}

// The data of each event that has some, as strings.
function sseData(text) { return sseEvents(text).filter((e) => e.data !== '').map((e) => e.data); }

// [{ event, data }] with data parsed as JSON (null if the event has no data); throws on data that
// is not JSON, but for '[DONE]' (kept as is) when done is true.
function sseJson(text, { done = false } = {}) {
  return sseEvents(text).map((e) => ({ event: e.event, data: e.data === '' ? null : done && e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data) }));
}

// [{ event, data }] as a browser's EventSource sees them: the event name defaults to "message",
// data is the joined string, and only \n ends a line.
function sseMessages(text) {
  return sseEvents(text, { lf: true }).map((e) => ({ event: e.event === null ? 'message' : e.event, data: e.data }));
}

module.exports = { sseEvents, parseSse, sseData, sseJson, sseMessages };
