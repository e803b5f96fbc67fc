// TFRecord framing, the container of TensorBoard event files: for each record, its length (uint64
// little-endian), the masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data.
// TFRecord masks CRCs exactly as LevelDB does, so the log's own CRC-32C and mask are reused.
import { crc32c, maskCrc } from '../log/leveldb-log.js';

/** Frames one record: 8 + 4 + data.length + 4 bytes. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(data.length + 16);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskCrc(crc32c(out.subarray(0, 8))), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskCrc(crc32c(data)), 12 + data.length);
  return out;
}
