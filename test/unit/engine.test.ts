import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { defineFamily } from '../../src/engine/family.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { escapeLabelValue, renderSampleSet } from '../../src/engine/render.js';
import { SampleSet } from '../../src/engine/samples.js';
import { makePart } from '../../src/engine/part.js';
import { Exposition } from '../../src/server/exposition.js';
import { acceptsGzip } from '../../src/server/server.js';

const fam = defineFamily({ name: 'x_things', help: 'Things.\nWith a \\ backslash.', type: 'gauge', unit: 'count', source: 'test', labelNames: ['a', 'b'] });

describe('rendering', () => {
  it('escapes label values and help text as the exposition format requires', () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const set = new SampleSet();
    set.add(fam, ['q"uote', 'ü\n'], 1.5);
    set.add(fam, ['', 'x'], NaN);
    expect(renderSampleSet(set)).toBe(
      '# HELP x_things Things.\\nWith a \\\\ backslash.\n# TYPE x_things gauge\n' +
        'x_things{a="q\\"uote",b="ü\\n"} 1.5\n' +
        'x_things{a="",b="x"} NaN\n',
    );
  });

  it('refuses bad family definitions', () => {
    expect(() => defineFamily({ ...fam, name: 'bad-name' })).toThrow('invalid metric name');
    expect(() => defineFamily({ ...fam, name: 'x_total' })).toThrow('_total is for counters');
    expect(() => defineFamily({ ...fam, type: 'counter' })).toThrow('must end in _total');
    expect(() => defineFamily({ ...fam, labelNames: ['le'] })).toThrow('invalid label name');
  });

  it('refuses a sample with the wrong number of label values', () => {
    expect(() => new SampleSet().add(fam, ['only-one'], 1)).toThrow('expected 2 label values');
  });
});

describe('exposition', () => {
  it('serves data parts by name, then self-metrics parts, plain and as multi-member gzip', async () => {
    const ex = new Exposition();
    ex.update([await makePart('self/engine', 'e_metric 9\n')], []);
    ex.update([await makePart('data/b', 'b_metric 2\n')], []);
    ex.update([await makePart('data/a', 'a_metric 1\n')], []);
    expect(ex.text()).toBe('a_metric 1\nb_metric 2\ne_metric 9\n');
    expect(gunzipSync(ex.gzip()).toString()).toBe('a_metric 1\nb_metric 2\ne_metric 9\n');
    ex.update([await makePart('data/a', 'a_metric 3\n')], ['data/b']);
    expect(ex.text()).toBe('a_metric 3\ne_metric 9\n');
    expect(gunzipSync(ex.gzip()).toString()).toBe('a_metric 3\ne_metric 9\n');
  });
});

describe('cardinality guard', () => {
  it('keeps admitted label sets, refuses new ones past the limit, and frees idle places', () => {
    const drops: string[] = [];
    const g = new CardinalityGuard(() => 2, 1000, (f) => drops.push(f));
    expect(g.admit('f', 'a', 0)).toBe(true);
    expect(g.admit('f', 'b', 0)).toBe(true);
    expect(g.admit('f', 'c', 500)).toBe(false);
    expect(g.admit('f', 'a', 900)).toBe(true); // admitted ones stay
    expect(drops).toEqual(['f']);
    expect(g.admit('f', 'c', 1600)).toBe(true); // b idle for 1600 ms > 1000: its place is free
    expect(g.has('f', 'b')).toBe(false);
    expect(g.admit('other', 'z', 0)).toBe(true); // limits are per family
  });
});

describe('Accept-Encoding', () => {
  it('detects gzip, honouring q=0', () => {
    expect(acceptsGzip('gzip')).toBe(true);
    expect(acceptsGzip('deflate, gzip;q=0.5')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('identity')).toBe(false);
    expect(acceptsGzip(undefined)).toBe(false);
  });
});
