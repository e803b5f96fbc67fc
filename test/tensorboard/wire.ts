// A minimal, hand-written reader of TensorBoard event files for the tests: TFRecord framing with
// its CRCs, and the few protobuf messages retrace writes, decoded from the wire format by field
// number (event.proto, summary.proto, hparams plugin_data.proto). It shares no code with the
// writer: not protobufjs, not the log's CRC.

/** CRC-32C (Castagnoli), bit by bit: slow and obviously right. */
export function crc32cSlow(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's mask: rotate right by 15, add a constant. */
export function masked(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Splits a file into its records, checking both CRCs of each; throws on any mismatch or tail. */
export function readTfRecords(file: Uint8Array): Uint8Array[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < file.length) {
    if (file.length - at < 12) throw new Error(`truncated record header at byte ${at}`);
    const length = Number(view.getBigUint64(at, true));
    const lengthCrc = view.getUint32(at + 8, true);
    if (lengthCrc !== masked(crc32cSlow(file.subarray(at, at + 8)))) throw new Error(`bad length CRC at byte ${at}`);
    if (file.length - at < 16 + length) throw new Error(`truncated record at byte ${at}`);
    const data = file.subarray(at + 12, at + 12 + length);
    if (view.getUint32(at + 12 + length, true) !== masked(crc32cSlow(data))) throw new Error(`bad data CRC at byte ${at}`);
    out.push(data);
    at += 16 + length;
  }
  return out;
}

type Field = { no: number; wire: number; varint?: bigint; bytes?: Uint8Array; fixed64?: DataView; fixed32?: DataView };

/** The fields of one protobuf message, in order. */
export function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (at >= buf.length) throw new Error('truncated varint');
      const b = buf[at++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, varint: varint() });
    else if (wire === 1) {
      out.push({ no, wire, fixed64: new DataView(buf.buffer, buf.byteOffset + at, 8) });
      at += 8;
    } else if (wire === 2) {
      const n = Number(varint());
      out.push({ no, wire, bytes: buf.subarray(at, at + n) });
      at += n;
    } else if (wire === 5) {
      out.push({ no, wire, fixed32: new DataView(buf.buffer, buf.byteOffset + at, 4) });
      at += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
    if (at > buf.length) throw new Error('field runs past the message');
  }
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

export interface DecodedValue {
  tag: string;
  simpleValue?: number;
  pluginName?: string;
  content?: Uint8Array;
  hasTensor: boolean;
}

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  writer?: string;
  values?: DecodedValue[];
  /** SessionLog.status: 1 = START. */
  sessionStatus?: number;
}

/** tensorboard.Event: wall_time 1 (double), step 2 (int64), file_version 3, summary 5, session_log 7, source_metadata 10. */
export function decodeEvent(buf: Uint8Array): DecodedEvent {
  const e: DecodedEvent = { wallTime: 0, step: 0 };
  for (const f of fields(buf)) {
    if (f.no === 1) e.wallTime = f.fixed64!.getFloat64(0, true);
    else if (f.no === 2) e.step = Number(BigInt.asIntN(64, f.varint!));
    else if (f.no === 3) e.fileVersion = text(f.bytes!);
    else if (f.no === 5) e.values = fields(f.bytes!).filter((v) => v.no === 1).map((v) => decodeValue(v.bytes!));
    else if (f.no === 7) e.sessionStatus = Number(fields(f.bytes!).find((s) => s.no === 1)?.varint ?? 0n);
    else if (f.no === 10) e.writer = text(fields(f.bytes!).find((s) => s.no === 1)!.bytes!);
    else throw new Error(`unexpected Event field ${f.no}`);
  }
  return e;
}

/** Summary.Value: tag 1, simple_value 2 (float), metadata 9 (plugin_data 1: plugin_name 1, content 2), tensor 8. */
function decodeValue(buf: Uint8Array): DecodedValue {
  const v: DecodedValue = { tag: '', hasTensor: false };
  for (const f of fields(buf)) {
    if (f.no === 1) v.tag = text(f.bytes!);
    else if (f.no === 2) v.simpleValue = f.fixed32!.getFloat32(0, true);
    else if (f.no === 8) v.hasTensor = true;
    else if (f.no === 9) {
      const pd = fields(f.bytes!).find((m) => m.no === 1);
      for (const p of pd ? fields(pd.bytes!) : []) {
        if (p.no === 1) v.pluginName = text(p.bytes!);
        if (p.no === 2) v.content = p.bytes!;
      }
    } else throw new Error(`unexpected Summary.Value field ${f.no}`);
  }
  return v;
}

/** HParamsPluginData: version 1, session_start_info 3 → hparams 1 (map<string, google.protobuf.Value>), start_time_secs 5. */
export function decodeSessionStartInfo(content: Uint8Array): { version: number; hparams: Record<string, unknown>; startTimeSecs: number } {
  let version = 0;
  const hparams: Record<string, unknown> = {};
  let startTimeSecs = 0;
  for (const f of fields(content)) {
    if (f.no === 1) version = Number(f.varint);
    if (f.no !== 3) continue;
    for (const s of fields(f.bytes!)) {
      if (s.no === 5) startTimeSecs = s.fixed64!.getFloat64(0, true);
      if (s.no !== 1) continue;
      let key = '';
      let value: unknown;
      for (const kv of fields(s.bytes!)) {
        if (kv.no === 1) key = text(kv.bytes!);
        // google.protobuf.Value: number_value 2 (double), string_value 3, bool_value 4.
        if (kv.no === 2) {
          const [inner] = fields(kv.bytes!);
          if (inner?.no === 2) value = inner.fixed64!.getFloat64(0, true);
          else if (inner?.no === 3) value = text(inner.bytes!);
          else if (inner?.no === 4) value = inner.varint === 1n;
        }
      }
      hparams[key] = value;
    }
  }
  return { version, hparams, startTimeSecs };
}

/** Reads event files (in name order, as TensorBoard does) into events. */
export function decodeFiles(files: Uint8Array[]): DecodedEvent[] {
  return files.flatMap((f) => readTfRecords(f).map(decodeEvent));
}

/**
 * What TensorBoard shows per scalar tag: points in file order, where a SessionLog START at step S
 * drops every point read before it with a step >= S (event_accumulator's orphaned-data rule).
 */
export function tensorboardView(events: DecodedEvent[]): Map<string, Array<{ step: number; value: number }>> {
  const view = new Map<string, Array<{ step: number; value: number }>>();
  for (const e of events) {
    if (e.sessionStatus === 1) {
      for (const [tag, points] of view) view.set(tag, points.filter((p) => p.step < e.step));
      continue;
    }
    for (const v of e.values ?? []) {
      if (v.simpleValue === undefined) continue;
      let points = view.get(v.tag);
      if (!points) view.set(v.tag, (points = []));
      points.push({ step: e.step, value: v.simpleValue });
    }
  }
  return view;
}
