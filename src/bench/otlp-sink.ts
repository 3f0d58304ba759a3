// The OTLP receiver of the bench's OTLP phase: a node:http server, its own process, that takes
// every POST /v1/metrics body whole, answers 200 with an empty ExportMetricsServiceResponse, and
// counts requests and bytes (GET /stats). It decodes nothing: the bench measures the exporter, and
// test/integration/otlp.test.ts checks what the pushes hold. Usage: otlp-sink.js; prints {"port":N}.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const stats = { requests: 0, bytes: 0 };
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
    return;
  }
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    stats.requests++;
    stats.bytes += bytes;
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' }).end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ msg: 'otlp sink listening', port: (server.address() as AddressInfo).port }) + '\n');
});
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
