import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

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

/** Renders a part; gzip runs on libuv's thread pool. */
export async function makePart(name: string, text: string): Promise<Part> {
  const buf = Buffer.from(text, 'utf8');
  return { name, text: buf, gzip: buf.length > 0 ? await gzipAsync(buf, { level: 6 }) : Buffer.alloc(0) };
}
