import { spawnSync } from 'node:child_process';

// Every promtool check in `npm test` starts with requirePromtool(ctx): it runs where promtool is
// installed, FAILS in CI when it is not, and is reported as SKIPPED elsewhere. Never a silent pass.

export const PROMTOOL_MISSING_IN_CI = "promtool is required in CI but was not found: install Debian's prometheus (apt-get install prometheus)";
export const PROMTOOL_MISSING_SKIP = "promtool not found: install Debian's prometheus to run this check";

let cached: boolean | undefined;
/** Whether `promtool --version` runs (probed once per test file). */
export function promtoolRuns(): boolean {
  cached ??= spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
  return cached;
}

/** CI is set to anything but '' or 'false' (any case). */
export function isCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci.toLowerCase() !== 'false';
}

/** The part of vitest's test context this needs (the context passed to it('...', (ctx) => ...)). */
export interface SkipContext {
  skip(note?: string): never;
}

export interface PromtoolDeps {
  /** Defaults to running `promtool --version`. */
  promtoolRuns?: () => boolean;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Returns when promtool runs; otherwise throws in CI and skips the test elsewhere. */
export function requirePromtool(ctx: SkipContext, deps: PromtoolDeps = {}): void {
  if ((deps.promtoolRuns ?? promtoolRuns)()) return;
  if (isCI(deps.env ?? process.env)) throw new Error(PROMTOOL_MISSING_IN_CI);
  ctx.skip(PROMTOOL_MISSING_SKIP);
}
