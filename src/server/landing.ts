import type { CollectorStatus } from '../engine/runner.js';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function when(ms: number | undefined): string {
  return ms === undefined ? 'never' : new Date(ms).toISOString();
}

/** The landing page: name, links, the shard, and each collector's last run, result and error. */
export function renderLandingPage(status: CollectorStatus[], version: string, shard?: { ordinal: number; total: number }): string {
  const rows = status
    .map(
      (s) => `<tr><td>${esc(s.name)}</td><td><code>${esc(s.schedule)}</code></td><td>${s.running ? 'running' : 'idle'}</td>` +
        `<td>${when(s.lastRunAt)}</td><td class="${s.lastResult ?? ''}">${s.lastResult ?? '-'}</td>` +
        `<td>${s.lastDurationMs === undefined ? '-' : `${(s.lastDurationMs / 1000).toFixed(3)} s`}</td>` +
        `<td>${when(s.lastSuccessAt)}</td><td>${s.published ? s.series : 'withdrawn'}</td>` +
        `<td>${s.lastError ? `${esc(s.lastErrorCode ?? '')}: ${esc(s.lastError)}` : ''}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>conviva-exporter</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.failure{color:#b00}.success{color:#070}</style>
</head><body>
<h1>conviva-exporter</h1>
<p>Version ${esc(version)}. <a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
${shard && shard.total > 1 ? `<p>Shard ${shard.ordinal} of ${shard.total} (<code>--shard ${shard.ordinal} --total-shards ${shard.total}</code>): the collectors below poll only this shard's units.</p>\n` : ''}<h2>Collectors</h2>
<table><tr><th>collector</th><th>schedule</th><th>state</th><th>last run</th><th>result</th><th>duration</th><th>last success</th><th>series</th><th>last error</th></tr>
${rows}
</table>
</body></html>
`;
}
