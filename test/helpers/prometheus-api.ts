// The HTTP API of Debian's Prometheus, as the tests that start it read it.

export interface PromVector {
  metric: Record<string, string>;
  value: [number, string];
}

/** The HTTP API of the Prometheus at `base()` (read at each call: tests learn it in beforeAll). */
export function prometheusApi(base: () => string) {
  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${base()}/api/v1/${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
    return body.data;
  }
  async function query(expr: string): Promise<PromVector[]> {
    return (await api<{ resultType: string; result: PromVector[] }>(`query?query=${encodeURIComponent(expr)}`)).result;
  }
  return { api, query };
}
