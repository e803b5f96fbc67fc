import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalJson, crc32Hex, decodeKey, decodeValue, encodeKey, encodeValue } from '../../src/log/codec.js';
import { CorruptLogError, SchemaVersionError } from '../../src/log/errors.js';

describe('keys', () => {
  it('are fixed-width so byte order is numeric order', () => {
    expect(encodeKey(0)).toBe('000000000000');
    expect(encodeKey(12)).toBe('000000000012');
    expect(decodeKey('000000000012')).toBe(12);
    expect(decodeKey('12')).toBeNull();
    expect(() => encodeKey(-1)).toThrow(RangeError);
    expect(() => encodeKey(1.5)).toThrow(RangeError);
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (a, b) => {
        const [ka, kb] = [encodeKey(a), encodeKey(b)];
        expect(Buffer.compare(Buffer.from(ka), Buffer.from(kb))).toBe(Math.sign(a - b));
      }),
    );
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every level and drops undefined properties', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('round-trips through JSON.parse for JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(JSON.parse(canonicalJson(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  it('refuses what JSON would silently change, naming the path', () => {
    expect(() => canonicalJson({ loss: NaN }, 'data')).toThrow('data.loss is NaN');
    expect(() => canonicalJson({ w: new Float32Array(2) }, 'data')).toThrow(/data\.w is a typed array/);
    expect(() => canonicalJson([1, undefined])).toThrow(/\[1\] is undefined/);
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/circular/);
    expect(canonicalJson({ t: new Date(0) })).toBe('{"t":"1970-01-01T00:00:00.000Z"}');
  });
});

describe('values', () => {
  const rec = { v: 1, seq: 7, type: 'step.finished', at: '2026-01-01T00:00:00.000Z', data: { loss: 0.5, step: 7 } };

  it('round-trip with a CRC-32 header over the canonical body', () => {
    const { value, crc } = encodeValue(rec);
    expect(value.slice(0, 9)).toBe(`${crc} `);
    expect(crc).toBe(crc32Hex(value.slice(9)));
    const back = decodeValue('r', encodeKey(7), value);
    expect(back).toEqual({ ...rec, crc });
  });

  it('a flipped character is a CorruptLogError naming run and seq', () => {
    const { value } = encodeValue(rec);
    const bad = value.replace('0.5', '0.6');
    const err = (() => {
      try {
        decodeValue('run-a', encodeKey(7), bad);
      } catch (e) {
        return e;
      }
    })() as CorruptLogError;
    expect(err).toBeInstanceOf(CorruptLogError);
    expect(err.runId).toBe('run-a');
    expect(err.seq).toBe(7);
    expect(err.message).toMatch(/run "run-a": event 7 is corrupt \(checksum mismatch/);
  });

  it('a record under the wrong key is corruption', () => {
    const { value } = encodeValue(rec);
    expect(() => decodeValue('r', encodeKey(8), value)).toThrow(/stored as event 8 says it is event 7/);
  });

  it('a value without header is corruption', () => {
    expect(() => decodeValue('r', encodeKey(3), '{"v":1}')).toThrow(CorruptLogError);
  });

  it('a newer schema version is a SchemaVersionError', () => {
    const { value } = encodeValue({ ...rec, v: 3 });
    expect(() => decodeValue('r', encodeKey(7), value, { maxSchemaVersion: 2 })).toThrow(SchemaVersionError);
    expect(() => decodeValue('r', encodeKey(7), value, { maxSchemaVersion: 2 })).toThrow(/event 7 has schema version 3/);
    expect(decodeValue('r', encodeKey(7), value, { maxSchemaVersion: 3 }).v).toBe(3);
  });

  it('needs data (null is fine)', () => {
    expect(() => encodeValue({ ...rec, data: undefined })).toThrow(/has no data/);
    expect(decodeValue('r', encodeKey(7), encodeValue({ ...rec, data: null }).value).data).toBeNull();
  });
});
