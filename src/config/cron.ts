import cron from 'node-cron';

// Cron expressions as node-cron (v4) reads them: 5 fields, or 6 with seconds first; `*`, lists,
// ranges (a reversed range wraps: 22-2), steps on `*` or a range, month and day names, the
// nicknames @hourly ... @yearly, `?` for a whole day field, L / W / L-n in day-of-month and
// d#n / dL in day-of-week. Day-of-month and day-of-week must BOTH match (node-cron ANDs them).
//
// Whether an expression is valid is node-cron's own `validate()`; what follows only explains why
// not, mirroring node-cron's conversion (node_modules/node-cron/dist/_shared.js) token by token.

const FIELD_NAMES = ['second', 'minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;
const NODE_CRON_KEYS = ['second', 'minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'];
/** Bounds node-cron checks against (day-of-week accepts 7 for Sunday). */
const BOUNDS: ReadonlyArray<readonly [number, number]> = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];
/** Bounds node-cron wraps reversed ranges with, and what `*` stands for. */
const WRAP: ReadonlyArray<readonly [number, number]> = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 6]];
const NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const SHORT_MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const SHORT_DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const ALLOWED_CHARS = /^[a-zA-Z0-9-*/,#? ]+$/;
const RANGE = /^(\d+)-(\d+)(?:\/(\d+))?$/;
const PLAIN = /^(?:\d+|\*|\*\/\d+)$/;
const DOM_W = /^(\d{1,2}|L)W$/i;
const DOM_OFFSET = /^L-(\d{1,2})$/i;
const NTH_WEEKDAY = /^([0-7])#([1-5])$/;
const LAST_WEEKDAY = /^[0-7]L$/;

/** Names to numbers the way node-cron does it: a case-insensitive replace anywhere in the text. */
function replaceNames(text: string, field: number): string {
  const replace = (t: string, names: string[], offset: number) =>
    names.reduce((acc, name, i) => acc.replace(new RegExp(name, 'gi'), String(i + offset)), t);
  if (field === 4) return replace(replace(text, MONTHS, 1), SHORT_MONTHS, 1);
  if (field === 5) return replace(replace(text, DAYS, 0), SHORT_DAYS, 0);
  return text;
}

/** One comma-separated item of a field as node-cron converts it: the values it stands for. */
function convertItem(item: string, field: number): Array<number | string> {
  let t = replaceNames(item, field);
  const [lo, hi] = WRAP[field]!;
  if (t.includes('*')) t = t.replace('*', `${lo}-${hi}`);
  const m = RANGE.exec(t.trim());
  let parts = [t];
  if (m) {
    const first = parseInt(m[1]!, 10);
    const last = parseInt(m[2]!, 10);
    const step = parseInt(m[3] ?? '1', 10);
    if (step >= 1) {
      const values: number[] = [];
      if (first <= last) for (let i = first; i <= last; i += step) values.push(i);
      else {
        const size = hi - lo + 1;
        const span = (((last - first) % size) + size) % size;
        for (let off = 0; off <= span; off += step) values.push(first + off > hi ? first + off - size : first + off);
      }
      parts = values.map(String);
    }
  }
  return parts.map((p) => {
    const s = p.trim();
    if (/^l$/i.test(s) || /^l-\d{1,2}$/i.test(s) || /^[0-7]l$/i.test(s) || /w/i.test(s)) return s.toUpperCase();
    if (s.includes('#')) return s;
    if (/^\d+$/.test(s)) return field === 5 && parseInt(s, 10) === 7 ? 0 : parseInt(s, 10);
    return field === 5 && s.startsWith('7') ? `0${s.slice(1)}` : s;
  });
}

/** node-cron's per-value check (isValidExpression and the day-field exceptions). */
function valueValid(v: number | string, field: number): boolean {
  if (field === 3 && typeof v === 'string') {
    if (v === 'L') return true;
    const w = DOM_W.exec(v);
    if (w) {
      if (w[1] === 'L') return true;
      const n = parseInt(w[1]!, 10);
      if (n >= 1 && n <= 31) return true;
    }
    const o = DOM_OFFSET.exec(v);
    if (o) {
      const n = parseInt(o[1]!, 10);
      if (n >= 1 && n <= 30) return true;
    }
  }
  if (field === 5 && typeof v === 'string' && (NTH_WEEKDAY.test(v) || LAST_WEEKDAY.test(v))) return true;
  const [min, max] = BOUNDS[field]!;
  const n = parseInt(String(v), 10);
  return !(!Number.isNaN(n) && (n < min || n > max)) && PLAIN.test(String(v));
}

function itemValid(item: string, field: number): boolean {
  if (field === 3 && /w/i.test(item.trim()) && !DOM_W.test(item.trim())) return false;
  return convertItem(item, field).every((v) => valueValid(v, field));
}

/** Why one invalid item is invalid: [the bit at fault, what is wrong with it]. */
function reasonFor(item: string, field: number): [string, string] {
  const [min, max] = BOUNDS[field]!;
  const range = `${min}-${max}`;
  const isDay = field === 3 || field === 5;
  if (item === '') return ['', 'has an empty list item'];
  if (item === '?') return [item, isDay ? 'must be the whole field, not a list item' : 'is only allowed as the whole day-of-month or day-of-week field'];
  if (/w/i.test(item) && field !== 5) {
    // (no month name has a W; day names do, so day-of-week is left to the checks below)
    if (field !== 3) return [item, 'uses W (nearest weekday), which only day-of-month allows, as in 15W'];
    const w = DOM_W.exec(item);
    if (!w) return [item, 'misuses W: it must follow a single day or L, as in 15W or LW'];
    return [item, `names day ${parseInt(w[1]!, 10)}, out of range 1-31`];
  }
  if (item.includes('#')) {
    if (field !== 5) return [item, 'uses #, which only day-of-week allows, as in 1#2 (the second Monday)'];
    return [item, 'is not a valid d#n: d is a day 0-7 (or a day name) and n a week 1-5, as in 1#2 (the second Monday)'];
  }
  const converted = replaceNames(item, field);
  if (/^l-/i.test(converted)) {
    if (field !== 3) return [item, 'uses L-n (n days before the last), which only day-of-month allows'];
    return [item, 'is not a valid L-n (n days before the last): n must be 1 to 30'];
  }
  if (/l/i.test(converted) && !/[a-km-z]/i.test(converted)) {
    if (field === 3) return [item, 'misuses L: day-of-month allows L, LW or L-n (n 1-30) alone in a list item'];
    if (field === 5) return [item, /^[0-9]+l$/i.test(converted) ? `names day ${parseInt(converted, 10)}, out of range 0-7` : 'misuses L: write a day followed by L, as in 5L (the last Friday of the month)'];
    return [item, 'uses L (last), which only day-of-month and day-of-week allow'];
  }
  const slash = item.split('/');
  if (slash.length > 2) return [item, 'has more than one "/"'];
  const [base = '', step] = slash;
  if (step !== undefined) {
    if (!/^\d+$/.test(step)) return [step, 'is not a number (the step after "/")'];
    if (parseInt(step, 10) < 1) return [item, 'has a step of 0: a step must be 1 or more'];
    if (base !== '*' && !base.includes('-')) {
      return [item, `steps from a single value: a step needs * or a range before it, as in */${step} or ${base}-${max === 7 ? 6 : max}/${step}`];
    }
  }
  if (base.includes('*') && base !== '*') return [item, 'misuses "*": write * alone, or */step'];
  if (base === '*') return [item, 'is not valid here'];
  const ends = base.split('-');
  if (ends.length > 2) return [item, 'is not a range: expected first-last, as in 1-5'];
  const what = field === 4 ? 'is not a number or a month name' : field === 5 ? 'is not a number or a day name' : 'is not a number';
  for (const end of ends) {
    if (end === '') return [item, 'is not a range: expected first-last, as in 1-5'];
    const value = replaceNames(end, field);
    if (!/^\d+$/.test(value)) return [end, what];
    const n = parseInt(value, 10);
    if (n < min || n > max) return [end, `is out of range ${range}`];
  }
  return [item, 'is not valid here'];
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Why node-cron rejects `expr`, in one sentence naming the field and the fault; undefined when
 * node-cron accepts it. Agrees with node-cron's `validate()` by construction.
 */
export function explainCron(expr: string): string | undefined {
  if (cron.validate(expr)) return undefined;
  const head = `invalid cron expression ${quote(expr)}`;
  const trimmed = expr.trim();
  if (trimmed === '') return `${head}: it is empty`;
  if (trimmed.startsWith('@') && !/\s/.test(trimmed)) return `${head}: unknown nickname: expected one of ${NICKNAMES.join(', ')}, or 5 or 6 fields`;
  const bad = [...expr].find((c) => !ALLOWED_CHARS.test(c));
  if (bad !== undefined) {
    const hint = /\s/.test(bad) ? 'separate fields with spaces' : 'fields use digits, month and day names, * , - / and L W # ?';
    return `${head}: character ${quote(bad)} is not allowed (${hint})`;
  }
  const raw = trimmed.replace(/\s{2,}/g, ' ').split(' ');
  if (raw.length !== 5 && raw.length !== 6) {
    return `${head}: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${raw.length}`;
  }
  const fields = raw.length === 5 ? ['0', ...raw] : raw;
  const { errors } = cron.validateDetailed(expr);
  // The first field node-cron rejects, and in it the first item it rejects.
  for (const error of errors) {
    const f = NODE_CRON_KEYS.indexOf(error.field);
    if (f < 0) continue;
    if (/impossible day of month/.test(error.message)) {
      return `${head}: day-of-month field ${quote(fields[3]!)} names no day that month field ${quote(fields[4]!)} has`;
    }
    const text = fields[f]!;
    if (isDayField(f) && text === '?') continue;
    const item = text.split(',').find((i) => !itemValid(i, f));
    if (item === undefined) continue;
    const [bit, why] = reasonFor(item, f);
    const name = `${FIELD_NAMES[f]} field ${quote(text)}`;
    if (bit === '') return `${head}: ${name} ${why}`;
    return bit === text ? `${head}: ${name} ${why}` : `${head}: ${name}: ${quote(bit)} ${why}`;
  }
  return `${head}: ${errors[0]?.message ?? 'rejected by node-cron'}`;
}

function isDayField(f: number): boolean {
  return f === 3 || f === 5;
}

// ---- the shortest interval -------------------------------------------------------------------

const DAY_S = 86_400;
/** The calendar repeats every 28 years from 1901 to 2099 (weekdays and leap years). */
const START_YEAR = 2001; // 2001-01-01 is a Monday
const CYCLE_YEARS = 28;

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** The special day tokens node-cron understands, parsed once. */
interface DayRules {
  domNums: boolean[];
  /** L: 0, L-n: n (the target is the last day minus n). */
  domFromLast: number[];
  /** nW: n, LW: 0 (the last day); the weekday nearest the target, within the month. */
  domNearestWeekday: number[];
  dowNums: boolean[];
  /** d#n: [weekday, n]. */
  dowNth: Array<[number, number]>;
  /** dL: the weekday. */
  dowLast: number[];
}

function dayRules(dayOfMonth: ReadonlyArray<number | string>, dayOfWeek: ReadonlyArray<number | string>): DayRules {
  const r: DayRules = { domNums: new Array<boolean>(32).fill(false), domFromLast: [], domNearestWeekday: [], dowNums: new Array<boolean>(7).fill(false), dowNth: [], dowLast: [] };
  for (const t of dayOfMonth) {
    if (typeof t === 'number') r.domNums[t] = true;
    else if (t === 'L') r.domFromLast.push(0);
    else {
      const w = /^(\d{1,2}|L)W$/.exec(t);
      if (w) r.domNearestWeekday.push(w[1] === 'L' ? 0 : parseInt(w[1]!, 10));
      const o = /^L-(\d{1,2})$/.exec(t);
      if (o) r.domFromLast.push(parseInt(o[1]!, 10));
    }
  }
  for (const t of dayOfWeek) {
    if (typeof t === 'number') r.dowNums[t % 7] = true;
    else {
      const nth = /^([0-7])#([1-5])$/.exec(t);
      if (nth) r.dowNth.push([parseInt(nth[1]!, 10) % 7, parseInt(nth[2]!, 10)]);
      const last = /^([0-7])L$/i.exec(t);
      if (last) r.dowLast.push(parseInt(last[1]!, 10) % 7);
    }
  }
  return r;
}

/**
 * Marks in `dom` and `dow` (indexed by day of month) the days the special tokens select in a
 * month of `length` days whose first day is weekday `first` (node-cron's matchesDayOfMonth and
 * matchesDayOfWeek, evaluated once per month).
 */
function markSpecials(r: DayRules, length: number, first: number, dom: Uint8Array, dow: Uint8Array): void {
  dom.fill(0);
  dow.fill(0);
  const weekdayOf = (day: number) => (first + day - 1) % 7;
  for (const n of r.domFromLast) if (length - n >= 1) dom[length - n] = 1;
  for (const n of r.domNearestWeekday) {
    const target = n === 0 ? length : n;
    if (target < 1 || target > length) continue;
    const wd = weekdayOf(target);
    dom[wd === 6 ? (target === 1 ? target + 2 : target - 1) : wd === 0 ? (target === length ? target - 2 : target + 1) : target] = 1;
  }
  for (const [w, n] of r.dowNth) {
    const day = 1 + ((w - first + 7) % 7) + 7 * (n - 1);
    if (day <= length) dow[day] = 1;
  }
  for (const w of r.dowLast) dow[length - ((weekdayOf(length) - w + 7) % 7)] = 1;
}

/**
 * The shortest gap, in milliseconds, between two consecutive firings of a valid node-cron
 * expression: `* * * * *` 60000, `0 3 * * *` 86400000, `0 9-17 * * 1-5` 3600000. Wall-clock
 * time (a daylight-saving change can shorten one gap by an hour). Infinity when the expression
 * fires at most once (never twice in 56 years). Throws on an invalid expression.
 */
export function minIntervalMs(expr: string): number {
  const why = explainCron(expr);
  if (why !== undefined) throw new Error(why);
  const f = cron.parse(expr);
  const sorted = (a: number[]) => [...new Set(a)].sort((x, y) => x - y);
  const hours = sorted(f.hour);
  const minutes = sorted(f.minute);
  const seconds = sorted(f.second);
  // Within a day: the offsets are hour x minute x second, ascending.
  let within = Infinity;
  for (let i = 1; i < seconds.length; i++) within = Math.min(within, seconds[i]! - seconds[i - 1]!);
  let prev = -1;
  for (const h of hours) {
    for (const m of minutes) {
      const base = h * 3600 + m * 60;
      if (prev >= 0) within = Math.min(within, base + seconds[0]! - prev);
      prev = base + seconds[seconds.length - 1]!;
    }
  }
  const spread = prev - (hours[0]! * 3600 + minutes[0]! * 60 + seconds[0]!);
  // Across days: from the last firing of one day to the first of the next day that fires, never
  // less than DAY_S - spread (the next day).
  const floor = DAY_S - spread;
  const months = new Array<boolean>(13).fill(false);
  for (const m of f.month) months[m] = true;
  const rules = dayRules(f.dayOfMonth, f.dayOfWeek);
  const specials = rules.domFromLast.length + rules.domNearestWeekday.length + rules.dowNth.length + rules.dowLast.length > 0;
  const dom = new Uint8Array(32);
  const dow = new Uint8Array(32);
  let across = Infinity;
  let dayIndex = 0;
  let firingDay = -1;
  let cycleDays = -1;
  let weekday = 1; // of the first day of the month scanned
  // Two cycles at most: every gap of the second repeats one of the first, so stop at the first
  // firing of the second cycle (it closes the gap that wraps around the first).
  for (let year = START_YEAR; year < START_YEAR + 2 * CYCLE_YEARS; year++) {
    if (year === START_YEAR + CYCLE_YEARS) cycleDays = dayIndex;
    for (let month = 1; month <= 12; month++) {
      const length = daysIn(year, month);
      if (months[month]) {
        if (specials) markSpecials(rules, length, weekday, dom, dow);
        for (let day = 1; day <= length; day++) {
          if (!rules.domNums[day] && dom[day] !== 1) continue;
          if (!rules.dowNums[(weekday + day - 1) % 7] && dow[day] !== 1) continue;
          const index = dayIndex + day - 1;
          if (firingDay >= 0) across = Math.min(across, (index - firingDay) * DAY_S - spread);
          firingDay = index;
          if (across <= floor || within <= floor || (cycleDays >= 0 && index >= cycleDays)) return Math.min(within, across) * 1000;
        }
      }
      dayIndex += length;
      weekday = (weekday + length) % 7;
    }
  }
  return Math.min(within, across) * 1000;
}

/** Whether a cron expression fires in the minute starting at `t` (epoch ms), in the IANA time zone given. */
export function firesAt(expression: string, timezone: string, t: number): boolean {
  const task = cron.createTask(expression, () => {}, { timezone });
  try {
    return task.match(new Date(t));
  } finally {
    void task.destroy();
  }
}
