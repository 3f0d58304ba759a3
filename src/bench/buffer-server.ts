// The floor of the comparison: a bare node:http server, run as its own process, answering every
// request with one pre-rendered gzip Buffer read from a file at start-up (the exporter's whole
// gzip /metrics answer). Usage: buffer-server.js <gzip file> [port]; prints {"port":N} on stdout.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const [file, portArg] = process.argv.slice(2);
if (!file) throw new Error('usage: buffer-server.js <gzip file> [port]');
const buf = readFileSync(file);
const headers = {
  'content-type': 'text/plain; version=0.0.4; charset=utf-8',
  'content-encoding': 'gzip',
  'content-length': String(buf.length),
};

const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(buf);
});
server.listen(Number(portArg ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ msg: 'buffer server listening', port: (server.address() as AddressInfo).port, bytes: buf.length }) + '\n');
});
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
