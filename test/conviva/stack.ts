import type { Config } from '../../src/config/load.js';
import { startStack, type Stack } from '../helpers/stack.js';

export { MINUTE, T0 } from '../helpers/stack.js';
export type { Stack } from '../helpers/stack.js';

/** The real-time collector's test config: one account, three filters, two dimensions (one a custom tag). */
export const BASE_CONFIG = `
engine: { staleness: 5m, shutdown_grace: 2s }
sources:
  conviva:
    request_timeout: 400ms
    connect_timeout: 400ms
    retries: 2
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
    realtime:
      timeout: 10s
      metrics: [attempts, plays, concurrent-plays, video-start-failures, rebuffering-ratio, bitrate, video-start-time, ended-plays]
      group_by: [device-os, dimension-tag/appVersion]
      filters:
        - { name: all }
        - { name: ios, dimensions: { device_os: [iOS] } }
        - { name: sports, filter_id: 1234 }
`;

/** A stack with the real-time collector (BASE_CONFIG unless told otherwise). */
export function startRealtimeStack(opts: { configText?: string; start?: number; seed?: number; mutate?: (c: Config) => void } = {}): Promise<Stack> {
  return startStack({ ...opts, configText: opts.configText ?? BASE_CONFIG });
}
