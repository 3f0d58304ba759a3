import { convivaStorm } from './conviva.js';
import { intelepeerStorm } from './intelepeer.js';
import { invisionStorm } from './invision.js';
import type { StormPlugin } from './plugin.js';

/** Every source's part in the fault suite; a source in SOURCES without one fails the suite. */
export const STORM_PLUGINS: readonly StormPlugin[] = [convivaStorm, invisionStorm, intelepeerStorm];
