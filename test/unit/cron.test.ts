import cron from 'node-cron';
import { describe, expect, it } from 'vitest';
import { explainCron, minIntervalMs } from '../../src/config/cron.js';

const VALID = [
  '* * * * *',
  '*/15 * * * * *',
  '0 3 * * *',
  '0,30 * * * *',
  '0 9-17 * * 1-5',
  '0 9-17/2 * * mon-fri',
  '0 0 1 jan,jul *',
  '0 0 1 January *',
  '0 0 * * SUN',
  '0 0 * * 7',
  '0 0 * * 0-7',
  '0 22-2 * * *', // a reversed range wraps
  '*/100 * * * *', // node-cron accepts a step larger than the field
  '  */5   *  * * *  ', // extra spaces
  '@hourly',
  ' @Daily ',
  '@yearly',
  '0 0 L * *',
  '0 0 LW * *',
  '0 0 15W * *',
  '0 0 L-3 * *',
  '0 0 ? * mon',
  '0 0 * * 5L',
  '0 0 * * fri#2',
  '0 0 * * 1#5',
  '0 0 29 2 *',
  '59 59 23 31 12 6',
  '0-59/7 * * * *',
  '0 0 30 1-12 *',
];

const INVALID: Array<[string, string]> = [
  ['61 * * * *', 'minute field "61" is out of range 0-59'],
  ['* * *', 'expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got 3'],
  ['* * * * * * *', 'expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got 7'],
  ['* * * * mon-xyz', 'day-of-week field "mon-xyz": "xyz" is not a number or a day name'],
  ['* 24 * * *', 'hour field "24" is out of range 0-23'],
  ['* * 0 * *', 'day-of-month field "0" is out of range 1-31'],
  ['* * 32 * *', 'day-of-month field "32" is out of range 1-31'],
  ['* * * 13 *', 'month field "13" is out of range 1-12'],
  ['* * * foo *', 'month field "foo" is not a number or a month name'],
  ['* * * * 8', 'day-of-week field "8" is out of range 0-7'],
  ['60 * * * * *', 'second field "60" is out of range 0-59'],
  ['10-70 * * * *', 'minute field "10-70": "70" is out of range 0-59'],
  ['1,2,99 * * * *', 'minute field "1,2,99": "99" is out of range 0-59'],
  ['5/15 * * * *', 'minute field "5/15" steps from a single value: a step needs * or a range before it, as in */15 or 5-59/15'],
  ['*/0 * * * *', 'minute field "*/0" has a step of 0: a step must be 1 or more'],
  ['*/x * * * *', 'minute field "*/x": "x" is not a number (the step after "/")'],
  ['1/2/3 * * * *', 'minute field "1/2/3" has more than one "/"'],
  ['1-2-3 * * * *', 'minute field "1-2-3" is not a range: expected first-last, as in 1-5'],
  ['*5 * * * *', 'minute field "*5" misuses "*": write * alone, or */step'],
  ['1,,2 * * * *', 'minute field "1,,2" has an empty list item'],
  ['mon * * * *', 'minute field "mon" is not a number'],
  ['* * * ? *', 'month field "?" is only allowed as the whole day-of-month or day-of-week field'],
  ['* * ?,1 * *', 'day-of-month field "?,1": "?" must be the whole field, not a list item'],
  ['L * * * *', 'minute field "L" uses L (last), which only day-of-month and day-of-week allow'],
  ['* * L-0 * *', 'day-of-month field "L-0" is not a valid L-n (n days before the last): n must be 1 to 30'],
  ['* * 32W * *', 'day-of-month field "32W" names day 32, out of range 1-31'],
  ['* * 1-5W * *', 'day-of-month field "1-5W" misuses W: it must follow a single day or L, as in 15W or LW'],
  ['* * * * L', 'day-of-week field "L" misuses L: write a day followed by L, as in 5L (the last Friday of the month)'],
  ['* * * * 8L', 'day-of-week field "8L" names day 8, out of range 0-7'],
  ['* * * * 1#6', 'day-of-week field "1#6" is not a valid d#n: d is a day 0-7 (or a day name) and n a week 1-5, as in 1#2 (the second Monday)'],
  ['1#2 * * * *', 'minute field "1#2" uses #, which only day-of-week allows, as in 1#2 (the second Monday)'],
  ['0 0 30 2 *', 'day-of-month field "30" names no day that month field "2" has'],
  ['0 0 31 apr,jun *', 'day-of-month field "31" names no day that month field "apr,jun" has'],
  ['@every5m', 'unknown nickname: expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or 5 or 6 fields'],
  ['*\t* * * *', 'character "\\t" is not allowed (separate fields with spaces)'],
  ['* * * * * %', 'character "%" is not allowed (fields use digits, month and day names, * , - / and L W # ?)'],
  ['', 'it is empty'],
  ['   ', 'it is empty'],
];

describe('explainCron', () => {
  it('accepts what node-cron accepts', () => {
    for (const e of VALID) {
      expect(cron.validate(e), e).toBe(true);
      expect(explainCron(e), e).toBeUndefined();
    }
  });

  it('names the field and the fault of what node-cron rejects', () => {
    for (const [e, why] of INVALID) {
      expect(cron.validate(e), e).toBe(false);
      expect(explainCron(e), e).toBe(`invalid cron expression ${JSON.stringify(e)}: ${why}`);
    }
  });

  it('never disagrees with node-cron on random expressions, and always names the field at fault', () => {
    // A seeded generator of plausible and implausible fields.
    let seed = 42;
    const rand = (n: number) => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const atoms = ['*', '0', '1', '5', '7', '12', '13', '23', '24', '29', '30', '31', '32', '59', '60', '99', 'L', 'W', 'x', 'jan', 'dec', 'mon', 'sun', 'fri', '?', '', '-1', 'L-2', '15W', 'LW', '3#2', '5L', '8L'];
    const item = (): string => {
      const a = atoms[rand(atoms.length)]!;
      switch (rand(5)) {
        case 0:
          return `${a}-${atoms[rand(atoms.length)]}`;
        case 1:
          return `${a}/${['0', '1', '2', '5', '15', '100', 'x'][rand(7)]}`;
        default:
          return a;
      }
    };
    const field = () => Array.from({ length: 1 + (rand(4) === 0 ? 1 + rand(2) : 0) }, item).join(',');
    let invalid = 0;
    for (let i = 0; i < 3000; i++) {
      const count = rand(10) === 0 ? 4 + rand(4) : 5 + rand(2);
      // mostly one unusual field among plain ones, so that both outcomes are common
      const odd = rand(count);
      const fields = Array.from({ length: count }, (_, k) => (k === odd ? field() : '*'));
      const e = fields.join(' ');
      const why = explainCron(e);
      expect(why === undefined, e).toBe(cron.validate(e));
      if (why !== undefined) {
        invalid++;
        // our own diagnosis, never node-cron's bare fallback message
        expect(why, e).toMatch(/: ((second|minute|hour|day-of-month|month|day-of-week) field "|expected 5 fields|it is empty|character )/);
        expect(why, e).not.toContain('is a invalid expression');
      }
    }
    expect(invalid).toBeGreaterThan(1000);
    expect(invalid).toBeLessThan(2700);
  });
});

describe('minIntervalMs', () => {
  it('gives the shortest gap between two consecutive firings', () => {
    const cases: Array<[string, number]> = [
      ['* * * * *', 60_000],
      ['*/15 * * * * *', 15_000],
      ['0 3 * * *', 86_400_000],
      ['0,30 * * * *', 1_800_000],
      ['0 9-17 * * 1-5', 3_600_000],
      ['*/7 * * * *', 4 * 60_000], // :56 then :00
      ['0,59 0,23 * * *', 60_000], // 23:59 then 00:00 the next day
      ['30 23 * * *', 86_400_000],
      ['0 22 * * 1,2', 86_400_000],
      ['0 0 * * 0', 7 * 86_400_000],
      ['@hourly', 3_600_000],
      ['* * * * * *', 1_000],
      ['0 0 L * *', 28 * 86_400_000], // Jan 31 then Feb 28
      ['0 0 29 2 *', 1461 * 86_400_000], // leap years
      ['0 0 29 2 1', 10_227 * 86_400_000], // a Monday the 29th of February: every 28 years
    ];
    for (const [e, ms] of cases) expect(minIntervalMs(e), e).toBe(ms);
  });

  it("agrees with node-cron's own next runs", () => {
    const cases: Array<[string, number]> = [
      ['*/7 * * * *', 200],
      ['0 9-17 * * 1-5', 200],
      ['15 */5 * * * *', 200],
      ['0 0 L * *', 30],
      ['0 0 * * 5L', 30],
      ['0 12 * * mon#2', 30],
      ['0 0 LW * *', 30],
    ];
    for (const [e, n] of cases) {
      const task = cron.createTask(e, () => undefined, { timezone: 'UTC' });
      try {
        const runs = task.getNextRuns(n).map((d) => d.getTime());
        const gaps = runs.slice(1).map((t, i) => t - runs[i]!);
        expect(Math.min(...gaps), e).toBe(minIntervalMs(e));
      } finally {
        void task.destroy();
      }
    }
  });

  it('is Infinity for an expression node-cron accepts but that never fires, and throws on an invalid one', () => {
    expect(cron.validate('0 0 1 * 1#5')).toBe(true); // the 1st is never the fifth Monday
    expect(minIntervalMs('0 0 1 * 1#5')).toBe(Infinity);
    expect(() => minIntervalMs('61 * * * *')).toThrow('minute field "61" is out of range 0-59');
  });

  it('is fast enough to run at config load', () => {
    for (const e of ['* * * * *', '*/15 * * * * *', '0 3 * * *', '0 9-17 * * 1-5', '0 0 * * 0', '0 0 1 * *']) {
      minIntervalMs(e); // warm
      const t = performance.now();
      for (let i = 0; i < 20; i++) minIntervalMs(e);
      expect((performance.now() - t) / 20, e).toBeLessThan(5);
    }
  });
});
