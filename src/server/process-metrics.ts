import { collectDefaultMetrics, Registry } from 'prom-client';
import { makePart, type PartSink } from '../engine/part.js';

export const PROCESS_SELF_PART = 'self/process';
const RENDER_MS = 1000;

/**
 * prom-client's standard process_* and nodejs_* metrics of the serving thread (its event-loop
 * delay is the one that matters to scrapers), unprefixed so common Node.js dashboards find them.
 * Rendered once a second off the request path, never per scrape: reading /proc costs more than
 * serving a scrape.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  private timer: NodeJS.Timeout | undefined;
  private rendering: Promise<void> = Promise.resolve();

  /** `onText`: called with each rendering's text (the OTLP push carries these series too). */
  constructor(
    private readonly sink: PartSink,
    private readonly onText: (text: string) => void = () => {},
  ) {
    collectDefaultMetrics({ register: this.registry });
    // These three are gauges named *_total, which promtool's lint (rightly) refuses; the handle and
    // request counts are still there, split by type, as nodejs_active_handles / _requests / _resources.
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n);
  }

  /** Renders now, then once a second until stopped. */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.render(), RENDER_MS);
    this.timer.unref();
    return this.render();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Renders and publishes now (one rendering at a time). */
  render(): Promise<void> {
    this.rendering = this.rendering.then(async () => {
      const text = await this.registry.metrics();
      this.sink.update([await makePart(PROCESS_SELF_PART, text)], []);
      this.onText(text);
    });
    return this.rendering;
  }
}
