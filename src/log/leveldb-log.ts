// LevelDB's log format (leveldb-1.20 doc/log_format.md), read-only: the format of its write-ahead
// logs (NNNNNN.log) and manifests. 32 KiB blocks of fragments, each with a 7-byte header (masked
// CRC-32C of type and payload, length, type); a block tail shorter than a header is zeros.
//
// Why retrace reads it itself: when LevelDB opens a database whose write-ahead log has a damaged
// fragment, it silently drops that fragment AND the rest of its 32 KiB block (intact records
// included), then rewrites the log into a table and deletes it. The store checks the logs before
// it opens a run for writing (store.ts), and fsck (src/chaos) reports every damaged byte.

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i += 1) {
    let c = i;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of the concatenated parts. */
export function crc32c(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i += 1) c = CRC32C_TABLE[(c ^ p[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** LevelDB stores CRCs masked (so a CRC of data containing CRCs is not trivially related). */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function u32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

export const LOG_BLOCK = 32768;
const HEADER = 7;
const FULL = 1;
const FIRST = 2;
const MIDDLE = 3;
const LAST = 4;

export interface LogFileResult {
  /** Complete logical records, in order, with the offset of their first fragment. */
  records: Array<{ offset: number; data: Uint8Array }>;
  /** Every problem, with its byte offset. */
  problems: Array<{ offset: number; message: string }>;
  /** The file ends inside a record (a write cut short, or a damaged length). */
  tornTail: { offset: number } | null;
}

/** Checks every fragment's checksum and every padding byte of a LevelDB log-format file. */
export function readLogFile(buf: Uint8Array): LogFileResult {
  const records: LogFileResult['records'] = [];
  const problems: LogFileResult['problems'] = [];
  let tornTail: LogFileResult['tornTail'] = null;
  let assembling: { offset: number; parts: Uint8Array[] } | null = null;
  let pos = 0;
  while (pos < buf.length) {
    const blockLeft = LOG_BLOCK - (pos % LOG_BLOCK);
    if (blockLeft < HEADER) {
      // A block's tail too short for a header: LevelDB fills it with zeros.
      const end = Math.min(buf.length, pos + blockLeft);
      for (let i = pos; i < end; i += 1) {
        if (buf[i] !== 0) {
          problems.push({ offset: i, message: `byte ${i} of a block's zero padding is ${buf[i]}` });
          break;
        }
      }
      pos = end;
      continue;
    }
    if (pos + HEADER > buf.length) {
      tornTail = { offset: pos };
      break;
    }
    const storedCrc = u32(buf, pos);
    const length = buf[pos + 4]! | (buf[pos + 5]! << 8);
    const type = buf[pos + 6]!;
    if (storedCrc === 0 && length === 0 && type === 0) {
      // A zero header: LevelDB treats the rest of the block as empty. It must then be all zeros.
      const end = Math.min(buf.length, pos + blockLeft);
      for (let i = pos; i < end; i += 1) {
        if (buf[i] !== 0) {
          problems.push({ offset: i, message: `byte ${i} after a zero record header is ${buf[i]} (expected zero padding)` });
          break;
        }
      }
      pos = end;
      continue;
    }
    if (HEADER + length > blockLeft) {
      if (pos + HEADER + length > buf.length && pos + blockLeft >= buf.length) {
        tornTail = { offset: pos };
        break;
      }
      problems.push({ offset: pos, message: `record at byte ${pos} claims ${length} bytes, more than its block holds (damaged header)` });
      pos += blockLeft;
      assembling = null;
      continue;
    }
    if (pos + HEADER + length > buf.length) {
      tornTail = { offset: pos };
      break;
    }
    const data = buf.subarray(pos + HEADER, pos + HEADER + length);
    const actual = maskCrc(crc32c(Uint8Array.of(type), data));
    if (actual !== storedCrc) {
      problems.push({ offset: pos, message: `record at byte ${pos} (${length} bytes) fails its checksum (stored ${hex(storedCrc)}, computed ${hex(actual)})` });
      assembling = null;
      pos += HEADER + length;
      continue;
    }
    if (type === FULL) {
      if (assembling) problems.push({ offset: assembling.offset, message: `record fragment at byte ${assembling.offset} is never completed` });
      assembling = null;
      records.push({ offset: pos, data });
    } else if (type === FIRST) {
      if (assembling) problems.push({ offset: assembling.offset, message: `record fragment at byte ${assembling.offset} is never completed` });
      assembling = { offset: pos, parts: [data] };
    } else if (type === MIDDLE || type === LAST) {
      if (!assembling) {
        problems.push({ offset: pos, message: `record fragment at byte ${pos} continues a record that never started` });
      } else {
        assembling.parts.push(data);
        if (type === LAST) {
          records.push({ offset: assembling.offset, data: concat(assembling.parts) });
          assembling = null;
        }
      }
    } else {
      problems.push({ offset: pos, message: `record at byte ${pos} has unknown type ${type}` });
    }
    pos += HEADER + length;
  }
  if (assembling && !tornTail) tornTail = { offset: assembling.offset };
  return { records, problems, tornTail };
}

/**
 * The first damage in a log file that LevelDB's recovery would "repair" by dropping intact records:
 * a problem with complete records after it. Damage at the very end (a write cut short by a crash,
 * or a damaged last record) loses nothing else and is left to LevelDB, as after any crash.
 */
export function damageBeforeIntactRecords(result: LogFileResult): { offset: number; message: string; intactAfter: number } | null {
  for (const p of result.problems) {
    const intactAfter = result.records.filter((r) => r.offset > p.offset).length;
    if (intactAfter > 0) return { ...p, intactAfter };
  }
  return null;
}
