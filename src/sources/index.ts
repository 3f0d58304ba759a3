import type { AnySource } from '../engine/source.js';
import { conviva } from './conviva/index.js';
import { intelepeer } from './intelepeer/index.js';
import { invision } from './invision/index.js';

/**
 * The one list of sources. Adding a source is a folder under src/sources/ and one line here; the
 * config schema, the engine, the simulator, --demo, the docs test and the test helpers iterate it.
 */
export const SOURCES: readonly AnySource[] = [conviva, invision, intelepeer];
