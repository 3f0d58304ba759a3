import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);

interface Chunk {
  text: Buffer;
  gzip: Buffer;
}

/**
 * Holds the rendered exposition of every collector. A publish renders and gzips once; a scrape
 * only concatenates buffers. Gzip members are concatenated as-is: a multi-member gzip stream
 * decompresses to the concatenation of its members (RFC 1952 section 2.2).
 */
export class SnapshotStore {
  private readonly chunks = new Map<string, Chunk>();
  private combined: Chunk = { text: Buffer.alloc(0), gzip: Buffer.alloc(0) };

  /**
   * Replaces a collector's exposition text. Gzip runs on libuv's thread pool, off the event loop;
   * text and gzip are swapped in together once both exist, so scrapes meanwhile get the old pair.
   */
  async publish(collector: string, text: string): Promise<void> {
    const buf = Buffer.from(text, 'utf8');
    const zipped = buf.length > 0 ? await gzipAsync(buf, { level: 6 }) : Buffer.alloc(0);
    this.chunks.set(collector, { text: buf, gzip: zipped });
    this.recombine();
  }

  /** Removes a collector's data series (staleness); returns whether anything was there. */
  withdraw(collector: string): boolean {
    const had = this.chunks.delete(collector);
    if (had) this.recombine();
    return had;
  }

  /** The current exposition of all collectors, plain and gzip. */
  current(): Readonly<Chunk> {
    return this.combined;
  }

  private recombine(): void {
    const names = [...this.chunks.keys()].sort();
    const list = names.map((n) => this.chunks.get(n)!);
    this.combined = {
      text: Buffer.concat(list.map((c) => c.text)),
      gzip: Buffer.concat(list.map((c) => c.gzip)),
    };
  }
}
