// Key and value encoding of the run log.
//
// Keys are the seq as 12-digit zero-padded decimal, so LevelDB's byte order is numeric order.
// Values are `<crc> <json>`: 8 lowercase hex digits of the CRC-32 (node:zlib) of the UTF-8 bytes of
// the canonical JSON body, a space, then that body. Canonical JSON = JSON with object keys sorted at
// every level, so the same record always has the same bytes and the same crc.
import { crc32 } from 'node:zlib';
import { CorruptLogError, SchemaVersionError } from './errors.js';

import type { StoredRecord } from '../storage/types.js';

/** One record of a run's log (defined with the storage seam, src/storage/types.ts). */
export type { StoredRecord } from '../storage/types.js';

export const SEQ_WIDTH = 12;
export const MAX_SEQ = 10 ** SEQ_WIDTH - 1;
const KEY_RE = /^\d{12}$/;

export function encodeKey(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQ) {
    throw new RangeError(`seq ${seq} is not an integer in 0..${MAX_SEQ}`);
  }
  return String(seq).padStart(SEQ_WIDTH, '0');
}

/** The seq of a key, or null if the key is not a seq key. */
export function decodeKey(key: string): number | null {
  return KEY_RE.test(key) ? Number(key) : null;
}

/**
 * JSON with object keys sorted at every level. Throws a TypeError naming the path for values JSON
 * cannot carry faithfully (NaN, ±Infinity, bigint, functions, symbols, typed arrays, Maps, Sets,
 * class instances, cycles) instead of silently changing them as JSON.stringify would. Object
 * properties whose value is undefined are left out (as JSON.stringify does); an undefined array
 * element is an error.
 */
export function canonicalJson(value: unknown, path = 'value'): string {
  try {
    return canon(value, null, new Set());
  } catch (err) {
    if (err !== INVALID) throw err;
  }
  canon(value, path, new Set()); // again, tracking the path, to say where
  throw new TypeError(`${path} cannot be represented in JSON`); // not reached
}

/** Thrown by the fast pass (no path tracking); the slow pass then throws the real message. */
const INVALID = new Error('invalid JSON value');

function fail(p: string | null, message: string): never {
  if (p === null) throw INVALID;
  throw new TypeError(`${p} ${message}`);
}

function sub(p: string | null, key: string | number): string | null {
  if (p === null) return null;
  return typeof key === 'number' ? `${p}[${key}]` : `${p}.${key}`;
}

function isSorted(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1] > keys[i]) return false;
  return true;
}

function canon(v: unknown, p: string | null, seen: Set<object>): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) fail(p, `is ${v}, which JSON cannot represent`);
      return JSON.stringify(v);
    case 'object':
      break;
    default:
      fail(p, `is a ${typeof v}, which JSON cannot represent`);
  }
  if (v === null) return 'null';
  const obj = v as object;
  if (seen.has(obj)) fail(p, 'is a circular reference');
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    return canon((obj as { toJSON: () => unknown }).toJSON(), p, seen);
  }
  seen.add(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = '[';
    for (let i = 0; i < obj.length; i++) {
      const el: unknown = obj[i];
      if (el === undefined) fail(sub(p, i), 'is undefined, which JSON cannot represent');
      out += (i > 0 ? ',' : '') + canon(el, sub(p, i), seen);
    }
    out += ']';
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const kind = ArrayBuffer.isView(obj) ? 'typed array (store tensors as blobs)' : (proto?.constructor?.name ?? 'object');
      fail(p, `is a ${kind}, not a plain object, array or primitive`);
    }
    const keys = Object.keys(obj);
    if (!isSorted(keys)) keys.sort();
    out = '{';
    let first = true;
    for (const k of keys) {
      const child = (obj as Record<string, unknown>)[k];
      if (child === undefined) continue;
      out += (first ? '' : ',') + JSON.stringify(k) + ':' + canon(child, sub(p, k), seen);
      first = false;
    }
    out += '}';
  }
  seen.delete(obj);
  return out;
}

/** CRC-32 of a string's UTF-8 bytes as 8 lowercase hex digits. */
export function crc32Hex(s: string): string {
  return crc32(s).toString(16).padStart(8, '0');
}

export interface EncodedValue {
  value: string;
  crc: string;
}

/** Encodes a record as `<crc> <canonical json>`. */
export function encodeValue(rec: StoredRecord): EncodedValue {
  if (rec.data === undefined) throw new TypeError(`event ${rec.seq} (${rec.type}) has no data; use null for none`);
  const body = canonicalJson({ v: rec.v, seq: rec.seq, type: rec.type, at: rec.at, data: rec.data }, 'record');
  const crc = crc32Hex(body);
  return { value: `${crc} ${body}`, crc };
}

export interface DecodeOptions {
  /** Records with a higher `v` throw SchemaVersionError. Default: no limit. */
  maxSchemaVersion?: number;
}

/**
 * Decodes and verifies the value stored under `key` of run `runId`: checksum, shape, and that the
 * record's own seq is the key's. Throws CorruptLogError (or SchemaVersionError) naming run and seq.
 */
export function decodeValue(
  runId: string,
  key: string,
  value: string,
  opts: DecodeOptions = {},
): StoredRecord & { crc: string } {
  const keySeq = decodeKey(key);
  if (keySeq === null) throw new CorruptLogError(runId, -1, `the log has a key that is not a seq: ${JSON.stringify(key)}`);
  if (value.length < 10 || value[8] !== ' ' || !/^[0-9a-f]{8}$/.test(value.slice(0, 8))) {
    throw new CorruptLogError(runId, keySeq, `event ${keySeq} is corrupt (its value has no checksum header)`);
  }
  const stored = value.slice(0, 8);
  const body = value.slice(9);
  const actual = crc32Hex(body);
  if (actual !== stored) {
    throw new CorruptLogError(runId, keySeq, `event ${keySeq} is corrupt (checksum mismatch: stored ${stored}, computed ${actual})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw new CorruptLogError(runId, keySeq, `event ${keySeq} is unreadable (${(err as Error).message})`);
  }
  const r = parsed as Partial<StoredRecord> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    !Number.isSafeInteger(r.v) ||
    !Number.isSafeInteger(r.seq) ||
    typeof r.type !== 'string' ||
    typeof r.at !== 'string' ||
    !('data' in r)
  ) {
    throw new CorruptLogError(runId, keySeq, `event ${keySeq} is not a log record (needs v, seq, type, at, data)`);
  }
  if (r.seq !== keySeq) {
    throw new CorruptLogError(runId, keySeq, `the record stored as event ${keySeq} says it is event ${r.seq}`);
  }
  if (opts.maxSchemaVersion !== undefined && (r.v as number) > opts.maxSchemaVersion) {
    throw new SchemaVersionError(runId, keySeq, r.v as number, opts.maxSchemaVersion);
  }
  return { v: r.v as number, seq: keySeq, type: r.type, at: r.at, data: r.data, crc: stored };
}
