// Read-only checks of LevelDB's own files, byte by byte, for fsck. LevelDB itself does not say when
// it meets damage: on open it silently drops write-ahead-log records whose checksum fails, and its
// reads do not verify table block checksums unless asked (classic-level never asks). So fsck reads
// the files itself (formats: leveldb-1.20 doc/log_format.md, doc/table_format.md):
//
//   - write-ahead logs (NNNNNN.log) and MANIFEST-NNNNNN: 32 KiB blocks of records, each with a
//     masked CRC-32C of its type and payload; block tails shorter than a header are zeros;
//   - tables (NNNNNN.ldb / .sst): blocks, each followed by a type byte and a masked CRC-32C, then a
//     48-byte footer (two block handles, zero padding, the magic number). The index and metaindex
//     blocks name every other block, so the blocks must tile the file exactly: every byte of a
//     table is covered by a checksum or checked for its fixed value;
//   - CURRENT: "MANIFEST-NNNNNN\n" naming a present manifest.
//
// Every function here only reads the bytes it is given. The log-format reader is src/log/leveldb-log.ts
// (the store uses it too, before it opens a run for writing).
import { concat, crc32c, hex, maskCrc, readLogFile, u32, LOG_BLOCK, type LogFileResult } from './leveldb-log.js';

export { crc32c, maskCrc, readLogFile, LOG_BLOCK, type LogFileResult };

// ---------------------------------------------------------------------------------------------
// Varints

class Cursor {
  constructor(
    readonly buf: Uint8Array,
    public pos = 0,
    readonly end = buf.length,
  ) {}
  get done(): boolean {
    return this.pos >= this.end;
  }
  byte(): number {
    if (this.pos >= this.end) throw new FormatError('unexpected end of data');
    return this.buf[this.pos++]!;
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i += 1) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if (!(b & 0x80)) {
        if (!Number.isSafeInteger(result)) throw new FormatError('varint out of range');
        return result;
      }
      mul *= 128;
    }
    throw new FormatError('varint too long');
  }
  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.end) throw new FormatError(`a length of ${n} runs past the end of the data`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  fixed32(): number {
    const b = this.bytes(4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }
  fixed64(): bigint {
    const b = this.bytes(8);
    let v = 0n;
    for (let i = 7; i >= 0; i -= 1) v = (v << 8n) | BigInt(b[i]!);
    return v;
  }
}

export class FormatError extends Error {
  override name = 'FormatError';
}


// ---------------------------------------------------------------------------------------------
// Snappy (block compression of tables): decompression only.

export function snappyUncompress(input: Uint8Array): Uint8Array {
  const c = new Cursor(input);
  const length = c.varint();
  if (length > 64 * 1024 * 1024) throw new FormatError(`snappy: implausible length ${length}`);
  const out = new Uint8Array(length);
  let o = 0;
  while (!c.done) {
    const tag = c.byte();
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >>> 2;
      if (len >= 60) {
        const n = len - 59;
        len = 0;
        for (let i = 0; i < n; i += 1) len |= c.byte() << (8 * i);
        len >>>= 0;
      }
      len += 1;
      if (o + len > length) throw new FormatError('snappy: literal past the end');
      out.set(c.bytes(len), o);
      o += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      len = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | c.byte();
    } else if (kind === 2) {
      len = (tag >>> 2) + 1;
      offset = c.byte() | (c.byte() << 8);
    } else {
      len = (tag >>> 2) + 1;
      offset = c.fixed32();
    }
    if (offset === 0 || offset > o || o + len > length) throw new FormatError('snappy: bad copy');
    for (let i = 0; i < len; i += 1, o += 1) out[o] = out[o - offset]!;
  }
  if (o !== length) throw new FormatError(`snappy: ${o} bytes instead of ${length}`);
  return out;
}

/** A write batch (one record of a write-ahead log): its put and delete keys. */
export function decodeWriteBatch(data: Uint8Array): { sequence: bigint; puts: Array<{ key: string; value: Uint8Array }>; deletes: string[] } {
  const c = new Cursor(data);
  const sequence = c.fixed64();
  const count = c.fixed32();
  const puts: Array<{ key: string; value: Uint8Array }> = [];
  const deletes: string[] = [];
  const text = new TextDecoder();
  for (let i = 0; i < count; i += 1) {
    const tag = c.byte();
    const key = text.decode(c.bytes(c.varint()));
    if (tag === 1) puts.push({ key, value: c.bytes(c.varint()) });
    else if (tag === 0) deletes.push(key);
    else throw new FormatError(`write batch entry ${i} has unknown tag ${tag}`);
  }
  if (!c.done) throw new FormatError(`write batch has ${c.end - c.pos} bytes after its ${count} entries`);
  return { sequence, puts, deletes };
}

/** The files a manifest says are live. */
export interface ManifestState {
  logNumber: number | null;
  prevLogNumber: number | null;
  nextFileNumber: number | null;
  /** Live table files: number → size in bytes. */
  tables: Map<number, number>;
}

/** Applies a manifest's version edits in order. */
export function decodeManifest(records: Array<{ data: Uint8Array }>): ManifestState {
  const state: ManifestState = { logNumber: null, prevLogNumber: null, nextFileNumber: null, tables: new Map() };
  for (const { data } of records) {
    const c = new Cursor(data);
    while (!c.done) {
      const tag = c.varint();
      switch (tag) {
        case 1:
          c.bytes(c.varint()); // comparator name
          break;
        case 2:
          state.logNumber = c.varint();
          break;
        case 3:
          state.nextFileNumber = c.varint();
          break;
        case 4:
          c.varint(); // last sequence
          break;
        case 5:
          c.varint();
          c.bytes(c.varint());
          break;
        case 6: {
          c.varint();
          state.tables.delete(c.varint());
          break;
        }
        case 7: {
          c.varint(); // level
          const number = c.varint();
          const size = c.varint();
          c.bytes(c.varint());
          c.bytes(c.varint());
          state.tables.set(number, size);
          break;
        }
        case 9:
          state.prevLogNumber = c.varint();
          break;
        default:
          throw new FormatError(`unknown version edit tag ${tag}`);
      }
    }
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Tables

const FOOTER = 48;
const TRAILER = 5;
const MAGIC = 0xdb4775248b80fb57n;

interface Handle {
  offset: number;
  size: number;
  what: string;
}

function readHandle(c: Cursor, what: string): Handle {
  return { offset: c.varint(), size: c.varint(), what };
}

/** A block's entries (key, value), restart array checked. */
function blockEntries(block: Uint8Array): Array<{ key: Uint8Array; value: Uint8Array }> {
  if (block.length < 4) throw new FormatError('block too short');
  const numRestarts = u32(block, block.length - 4);
  const restartsAt = block.length - 4 - 4 * numRestarts;
  if (numRestarts === 0 || restartsAt < 0) throw new FormatError(`block has a bad restart count ${numRestarts}`);
  const c = new Cursor(block, 0, restartsAt);
  const out: Array<{ key: Uint8Array; value: Uint8Array }> = [];
  let last: Uint8Array = new Uint8Array(0);
  while (!c.done) {
    const shared = c.varint();
    const nonShared = c.varint();
    const valueLength = c.varint();
    if (shared > last.length) throw new FormatError('block entry shares more key bytes than the previous key has');
    const key = concat([last.subarray(0, shared), c.bytes(nonShared)]);
    out.push({ key, value: c.bytes(valueLength) });
    last = key;
  }
  for (let i = 0; i < numRestarts; i += 1) {
    if (u32(block, restartsAt + 4 * i) >= Math.max(1, restartsAt)) throw new FormatError(`block restart point ${i} is outside the block`);
  }
  return out;
}

export interface TableResult {
  problems: Array<{ offset: number; message: string }>;
  blocks: number;
  /** Internal keys' user keys of every data entry that could be read. */
  keys: string[];
}

/** Verifies a table: the footer, every block's checksum, and that the blocks tile the file. */
export function checkTable(buf: Uint8Array): TableResult {
  const problems: TableResult['problems'] = [];
  const keys: string[] = [];
  if (buf.length < FOOTER) return { problems: [{ offset: 0, message: `table is ${buf.length} bytes, shorter than its 48-byte footer` }], blocks: 0, keys };
  const footerAt = buf.length - FOOTER;
  const fc = new Cursor(buf, footerAt, buf.length);
  let metaindex: Handle;
  let index: Handle;
  try {
    metaindex = readHandle(fc, 'metaindex block');
    index = readHandle(fc, 'index block');
  } catch (err) {
    return { problems: [{ offset: footerAt, message: `table footer is unreadable: ${(err as Error).message}` }], blocks: 0, keys };
  }
  for (let i = fc.pos; i < buf.length - 8; i += 1) {
    if (buf[i] !== 0) {
      problems.push({ offset: i, message: `byte ${i} of the table footer's padding is ${buf[i]} (expected 0)` });
      break;
    }
  }
  const magic = new Cursor(buf, buf.length - 8).fixed64();
  if (magic !== MAGIC) {
    problems.push({ offset: buf.length - 8, message: `table magic number is ${magic.toString(16)}, not ${MAGIC.toString(16)}` });
    return { problems, blocks: 0, keys };
  }

  const readBlock = (h: Handle): Uint8Array | null => {
    if (h.offset + h.size + TRAILER > footerAt) {
      problems.push({ offset: h.offset, message: `${h.what} (bytes ${h.offset}+${h.size}) runs past the table's blocks` });
      return null;
    }
    const contents = buf.subarray(h.offset, h.offset + h.size);
    const type = buf[h.offset + h.size]!;
    const stored = u32(buf, h.offset + h.size + 1);
    const actual = maskCrc(crc32c(contents, Uint8Array.of(type)));
    if (stored !== actual) {
      problems.push({ offset: h.offset, message: `${h.what} at byte ${h.offset} fails its checksum (stored ${hex(stored)}, computed ${hex(actual)})` });
      return null;
    }
    if (type === 0) return contents;
    if (type === 1) {
      try {
        return snappyUncompress(contents);
      } catch (err) {
        problems.push({ offset: h.offset, message: `${h.what} at byte ${h.offset} does not decompress: ${(err as Error).message}` });
        return null;
      }
    }
    problems.push({ offset: h.offset + h.size, message: `${h.what} at byte ${h.offset} has unknown compression type ${type}` });
    return null;
  };

  const handles: Handle[] = [metaindex, index];
  const indexBlock = readBlock(index);
  const metaBlock = readBlock(metaindex);
  const text = new TextDecoder();
  if (indexBlock) {
    try {
      blockEntries(indexBlock).forEach((e, i) => handles.push(readHandle(new Cursor(e.value), `data block ${i}`)));
    } catch (err) {
      problems.push({ offset: index.offset, message: `index block is unreadable: ${(err as Error).message}` });
    }
  }
  if (metaBlock) {
    try {
      for (const e of blockEntries(metaBlock)) handles.push(readHandle(new Cursor(e.value), `meta block ${text.decode(e.key)}`));
    } catch (err) {
      problems.push({ offset: metaindex.offset, message: `metaindex block is unreadable: ${(err as Error).message}` });
    }
  }
  for (const h of handles) {
    if (!h.what.startsWith('data block')) continue;
    const block = readBlock(h);
    if (!block) continue;
    try {
      for (const e of blockEntries(block)) keys.push(text.decode(e.key.subarray(0, Math.max(0, e.key.length - 8))));
    } catch (err) {
      problems.push({ offset: h.offset, message: `${h.what} at byte ${h.offset} is unreadable: ${(err as Error).message}` });
    }
  }
  for (const h of handles) if (h.what.startsWith('meta block')) readBlock(h);

  // The blocks must tile the file: nothing unchecked between them.
  if (problems.length === 0) {
    const sorted = [...handles].sort((a, b) => a.offset - b.offset);
    let at = 0;
    for (const h of sorted) {
      if (h.offset !== at) {
        problems.push({ offset: at, message: `bytes ${at}..${h.offset - 1} of the table belong to no block (before the ${h.what})` });
        break;
      }
      at = h.offset + h.size + TRAILER;
    }
    if (problems.length === 0 && at !== footerAt) problems.push({ offset: at, message: `bytes ${at}..${footerAt - 1} of the table belong to no block` });
  }
  return { problems, blocks: handles.length, keys };
}

/** CURRENT must be "MANIFEST-<number>\n". */
export function parseCurrent(buf: Uint8Array): string | null {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  const m = /^(MANIFEST-\d+)\n$/.exec(text);
  return m ? m[1]! : null;
}
