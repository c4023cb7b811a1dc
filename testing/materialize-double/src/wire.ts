/** Backend messages: PostgreSQL wire encoding of what the double answers. */
import type { Socket } from 'node:net';
import type { DoubleColumnType } from './api.js';
import type { Cell } from './values.js';

/** Small messages are built in slabs this big; finished parts go to the socket without copying. */
const SLAB_BYTES = 64 * 1024;

export const TYPE_INFO: Readonly<
  Record<DoubleColumnType, { readonly oid: number; readonly size: number }>
> = {
  text: { oid: 25, size: -1 },
  int4: { oid: 23, size: 4 },
  int8: { oid: 20, size: 8 },
  float8: { oid: 701, size: 8 },
  numeric: { oid: 1700, size: -1 },
  bool: { oid: 16, size: 1 },
  uuid: { oid: 2950, size: 16 },
  timestamptz: { oid: 1184, size: 8 },
  jsonb: { oid: 3802, size: -1 },
};

/** Writes a length-prefixed text cell at `offset` (the caller made room for 4 + 3 × length bytes). */
export function writeCell(target: Buffer, offset: number, value: Cell): number {
  if (value === null) {
    target.writeInt32BE(-1, offset);
    return offset + 4;
  }
  const at = offset + 4;
  const length = value.length;
  // Short ASCII (numbers, ids, labels) is copied by hand: cheaper than a write() call.
  if (length <= 48) {
    let index = 0;
    for (; index < length; index += 1) {
      const code = value.charCodeAt(index);
      if (code > 127) break;
      target[at + index] = code;
    }
    if (index === length) {
      target.writeInt32BE(length, offset);
      return at + length;
    }
  }
  const written = target.write(value, at, 'utf8');
  target.writeInt32BE(written, offset);
  return at + written;
}

interface FieldDescription {
  readonly name: string;
  readonly type: DoubleColumnType;
}

/** RowDescription for text-format columns of the given types. */
export function encodeRowDescription(fields: readonly FieldDescription[]): Buffer {
  let length = 4 + 2;
  for (const field of fields) length += Buffer.byteLength(field.name) + 1 + 18;
  const message = Buffer.allocUnsafe(1 + length);
  message[0] = 0x54; // 'T'
  message.writeInt32BE(length, 1);
  message.writeInt16BE(fields.length, 5);
  let offset = 7;
  for (const field of fields) {
    offset += message.write(field.name, offset, 'utf8');
    message[offset] = 0;
    const info = TYPE_INFO[field.type];
    message.writeInt32BE(0, offset + 1); // table OID
    message.writeInt16BE(0, offset + 5); // column attribute number
    message.writeInt32BE(info.oid, offset + 7);
    message.writeInt16BE(info.size, offset + 11);
    message.writeInt32BE(-1, offset + 13); // type modifier
    message.writeInt16BE(0, offset + 17); // text format
    offset += 19;
  }
  return message;
}

/**
 * Builds backend messages straight into a large slab and hands finished parts to
 * the socket without copying (the slab is never rewritten after a hand-over).
 */
export class WireWriter {
  readonly #socket: Socket;
  #slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  /** First byte not yet handed to the socket. */
  #start = 0;
  #offset = 0;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes built but not handed to the socket yet. */
  get buffered(): number {
    return this.#offset - this.#start;
  }

  /** Hands everything built to the socket; false when the socket asks the writer to wait for 'drain'. */
  flush(): boolean {
    if (this.#offset > this.#start && !this.#socket.destroyed) {
      this.#socket.write(this.#slab.subarray(this.#start, this.#offset));
    }
    this.#start = this.#offset;
    return !this.#socket.writableNeedDrain;
  }

  /** Resolves when the socket has drained or closed. */
  drained(): Promise<void> {
    const socket = this.#socket;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** The socket holds more than its high-water mark: wait for 'drain' before sending more. */
  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Hands `bytes` to the socket as they are (zero-copy), after what was built before them. */
  bytes(bytes: Buffer): void {
    this.flush();
    if (!this.#socket.destroyed) this.#socket.write(bytes);
  }

  /** Copies `bytes` into the message being built (small, reused messages such as RowDescription). */
  raw(bytes: Buffer): void {
    this.#reserve(bytes.length);
    this.#offset += bytes.copy(this.#slab, this.#offset);
  }

  authentication(code: number): void {
    this.#header(0x52, 8);
    this.#int32(code);
  }

  parameterStatus(name: string, value: string): void {
    this.#header(0x53, 4 + Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1);
    this.#cstring(name);
    this.#cstring(value);
  }

  backendKeyData(pid: number, secret: number): void {
    this.#header(0x4b, 12);
    this.#int32(pid);
    this.#int32(secret);
  }

  readyForQuery(status: 'I' | 'T' | 'E'): void {
    this.#header(0x5a, 5);
    this.#slab[this.#offset++] = status.charCodeAt(0);
  }

  commandComplete(tag: string): void {
    this.#header(0x43, 4 + Buffer.byteLength(tag) + 1);
    this.#cstring(tag);
  }

  emptyQuery(): void {
    this.#header(0x49, 4);
  }

  error(severity: 'ERROR' | 'FATAL', code: string, message: string): void {
    const fields: [number, string][] = [
      [0x53, severity], // S
      [0x56, severity], // V
      [0x43, code], // C
      [0x4d, message], // M
    ];
    let length = 4 + 1;
    for (const [, value] of fields) length += 1 + Buffer.byteLength(value) + 1;
    this.#header(0x45, length);
    for (const [field, value] of fields) {
      this.#slab[this.#offset++] = field;
      this.#cstring(value);
    }
    this.#slab[this.#offset++] = 0;
  }

  /** A DataRow of text cells (small results: SELECT 1 and friends). */
  dataRow(cells: readonly Cell[]): void {
    let bound = 4 + 2;
    for (const cell of cells) bound += 4 + (cell === null ? 0 : cell.length * 3);
    this.#reserve(1 + bound);
    const start = this.#offset;
    this.#slab[start] = 0x44;
    this.#offset = start + 5;
    this.#int16(cells.length);
    for (const cell of cells) this.#cell(cell);
    this.#slab.writeInt32BE(this.#offset - start - 1, start + 1);
  }

  /** A PROGRESS row: mz_timestamp, mz_progressed = t, then NULL for mz_diff and every view column. */
  progressRow(timestamp: string, columnCount: number): void {
    this.#reserve(1 + 4 + 2 + 4 + timestamp.length * 3 + 5 + (columnCount - 2) * 4);
    const start = this.#offset;
    this.#slab[start] = 0x44;
    this.#offset = start + 5;
    this.#int16(columnCount);
    this.#cell(timestamp);
    this.#cell('t');
    for (let index = 2; index < columnCount; index += 1) this.#int32(-1);
    this.#slab.writeInt32BE(this.#offset - start - 1, start + 1);
  }

  /** Starts a message whose total length (type byte excluded) is `length`. */
  #header(type: number, length: number): void {
    this.#reserve(1 + length);
    this.#slab[this.#offset] = type;
    this.#slab.writeInt32BE(length, this.#offset + 1);
    this.#offset += 5;
  }

  #reserve(bytes: number): void {
    if (this.#offset + bytes <= this.#slab.length) return;
    this.flush();
    this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, bytes));
    this.#start = 0;
    this.#offset = 0;
  }

  #int16(value: number): void {
    this.#slab.writeInt16BE(value, this.#offset);
    this.#offset += 2;
  }

  #int32(value: number): void {
    this.#slab.writeInt32BE(value, this.#offset);
    this.#offset += 4;
  }

  #cstring(value: string): void {
    this.#offset += this.#slab.write(value, this.#offset, 'utf8');
    this.#slab[this.#offset++] = 0;
  }

  #cell(value: Cell): void {
    this.#offset = writeCell(this.#slab, this.#offset, value);
  }
}
