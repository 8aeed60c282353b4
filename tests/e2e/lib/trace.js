'use strict';
// Helpers for the checks of exported spans (W3C trace context ids, OTLP attributes).
const crypto = require('node:crypto');

// n random lowercase hex digits (n even).
const hex = (n) => crypto.randomBytes(n / 2).toString('hex');
// s is exactly n lowercase hex digits.
const isHex = (s, n) => typeof s === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(s);
// A span's attribute as sent ({ key, value: { stringValue | intValue | ... } }).
const rawAttr = (span, key) => (span.attributes || []).find((a) => a.key === key);

module.exports = { hex, isHex, rawAttr };
