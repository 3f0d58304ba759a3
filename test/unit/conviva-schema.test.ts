import { describe, expect, it } from 'vitest';
import { parseTimeSeries } from '../../src/sources/conviva/schema.js';

describe('Metrics V3 answers, read leniently', () => {
  it('skips a row whose dimension value is an array or object (even nested past the stack), and keeps the others', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const skipped: string[] = [];
    const buckets = parseTimeSeries(
      {
        time_series: [{
          timestamp: { epoch_ms: 60_000 },
          dimensional_data: [
            { dimension: { value: deep }, metrics: { attempts: { count: 1 } } },
            { dimension: { value: { a: 1 } }, metrics: { attempts: { count: 2 } } },
            { dimension: { value: 'iOS' }, metrics: { attempts: { count: 3 } } },
            { dimension: { value: 42 }, metrics: { attempts: { count: 4 } } },
          ],
        }],
      },
      'e', true, (what) => skipped.push(what),
    );
    expect(buckets[0]!.rows.map((r) => r.value)).toEqual(['iOS', '42']);
    expect(skipped).toEqual(['row whose dimension value is not a string', 'row whose dimension value is not a string']);
  });
});
