import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';

const gzipAsync = promisify(gzip);

/** A named piece of the exposition, as text and as one gzip member. */
export interface Part {
  name: string;
  text: Buffer;
  gzip: Buffer;
}

/** Where rendered parts go: the serving thread's exposition, directly or across a worker boundary. */
export interface PartSink {
  /** Swaps in `parts` and removes `remove`, as one change. */
  update(parts: Part[], remove: string[]): void;
}

/** Names of the parts: each collector's data, and the engine's own metrics. */
export const dataPart = (collector: string) => `data/${collector}`;
export const ENGINE_SELF_PART = 'self/engine';

/**
 * Renders a part. Gzip runs on libuv's thread pool, or with `onThisThread` on the calling thread:
 * the engine thread compresses its own output, at its own (lowered) priority, rather than hand
 * the work to pool threads that compete with the serving thread as equals.
 */
export async function makePart(name: string, text: string, onThisThread = false): Promise<Part> {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length === 0) return { name, text: buf, gzip: Buffer.alloc(0) };
  return { name, text: buf, gzip: onThisThread ? gzipSync(buf, { level: 6 }) : await gzipAsync(buf, { level: 6 }) };
}
