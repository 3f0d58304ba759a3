import type { ServerResponse } from 'node:http';
import type { Part, PartSink } from '../engine/part.js';

interface Ordered {
  text: Buffer[];
  gzip: Buffer[];
  textLength: number;
  gzipLength: number;
}

/** Data parts first (by collector), then the self-metrics parts: the order /metrics serves them in. */
function rank(name: string): string {
  return `${name.startsWith('self/') ? 1 : 0}${name}`;
}

/**
 * What /metrics serves, held on the serving thread: pre-rendered parts (each collector's data,
 * the engine's metrics, the process's metrics), each as text and as one gzip member. A scrape
 * writes the existing buffers, uncopied; a multi-member gzip stream decompresses to the
 * concatenation of its members (RFC 1952 section 2.2), so the members are simply sent one after
 * another.
 */
export class Exposition implements PartSink {
  private readonly parts = new Map<string, Part>();
  private ordered: Ordered = { text: [], gzip: [], textLength: 0, gzipLength: 0 };

  update(parts: Part[], remove: string[]): void {
    for (const name of remove) this.parts.delete(name);
    for (const p of parts) this.parts.set(p.name, p);
    const list = [...this.parts.values()].sort((a, b) => (rank(a.name) < rank(b.name) ? -1 : 1));
    this.ordered = {
      text: list.map((p) => p.text).filter((b) => b.length > 0),
      gzip: list.map((p) => p.gzip).filter((b) => b.length > 0),
      textLength: list.reduce((n, p) => n + p.text.length, 0),
      gzipLength: list.reduce((n, p) => n + p.gzip.length, 0),
    };
  }

  /** Writes the whole exposition to `res` (status 200), plain or gzip, without copying a buffer. */
  write(res: ServerResponse, gzip: boolean, headers: Record<string, string>, head: boolean): void {
    const o = this.ordered;
    const bufs = gzip ? o.gzip : o.text;
    res.writeHead(200, { ...headers, ...(gzip ? { 'Content-Encoding': 'gzip' } : {}), 'Content-Length': String(gzip ? o.gzipLength : o.textLength) });
    if (head || bufs.length === 0) {
      res.end();
      return;
    }
    // One writev for all parts.
    res.cork();
    for (let i = 0; i < bufs.length - 1; i++) res.write(bufs[i]);
    res.end(bufs[bufs.length - 1]);
  }

  /** The current exposition as text. */
  text(): string {
    return Buffer.concat(this.ordered.text).toString('utf8');
  }

  /** The current exposition as one gzip stream. */
  gzip(): Buffer {
    return Buffer.concat(this.ordered.gzip);
  }
}
