import type { Config } from '../config/load.js';
import type { Part } from './part.js';
import type { CollectorStatus } from './runner.js';

// Messages between the serving thread and the engine's worker thread.

export interface EngineWorkerData {
  config: Config;
  logLevel: string;
  version: string;
}

/** A part as it crosses the thread boundary: its bytes are transferred, not copied. */
export interface WirePart {
  name: string;
  text: Uint8Array;
  gzip: Uint8Array;
}

export type ToEngine =
  | { type: 'start' }
  | { type: 'reload'; id: number; config: Config }
  | { type: 'stop' }
  /** The serving thread's process metrics (a few KB a second, sent only while an OTLP push is configured). */
  | { type: 'process'; text: string };

export type FromEngine =
  | { type: 'update'; parts: WirePart[]; remove: string[]; status: CollectorStatus[]; ready: boolean }
  | { type: 'status'; status: CollectorStatus[]; ready: boolean }
  | { type: 'reloaded'; id: number; error?: string }
  | { type: 'stopped' };

/** Bytes that own their ArrayBuffer whole (a pooled Buffer's slice is copied), and the buffers to transfer. */
export function toWire(parts: Part[]): { parts: WirePart[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const own = (b: Buffer): Uint8Array => {
    const whole = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer;
    const u = whole ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b);
    if (u.byteLength > 0 && !transfer.includes(u.buffer as ArrayBuffer)) transfer.push(u.buffer as ArrayBuffer);
    return u;
  };
  return { parts: parts.map((p) => ({ name: p.name, text: own(p.text), gzip: own(p.gzip) })), transfer };
}

export function fromWire(parts: WirePart[]): Part[] {
  const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return parts.map((p) => ({ name: p.name, text: buf(p.text), gzip: buf(p.gzip) }));
}
