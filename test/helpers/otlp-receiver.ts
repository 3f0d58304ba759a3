import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

// An OTLP metrics receiver for tests, over http/protobuf (node:http) or gRPC (@grpc/grpc-js). It
// decodes with the official OTLP .proto files (test/fixtures/otlp-proto, opentelemetry-proto
// v1.11.0) through protobufjs and gRPC's proto-loader: no decoder of ours between wire and test.

const PROTO_DIR = fileURLToPath(new URL('../fixtures/otlp-proto/', import.meta.url));
const SERVICE_PROTO = 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto';

/** The decoded request, as plain objects (64-bit integers as decimal strings, enums by name). */
export interface ExportRequest {
  resourceMetrics: {
    resource: { attributes: KeyValue[] };
    scopeMetrics: { scope: { name: string; version: string }; metrics: OtlpMetric[] }[];
  }[];
}
export interface KeyValue {
  key: string;
  value: { stringValue?: string; intValue?: string; doubleValue?: number; boolValue?: boolean };
}
export interface NumberPoint {
  attributes: KeyValue[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  asDouble?: number;
  asInt?: string;
}
export interface HistogramPoint {
  attributes: KeyValue[];
  startTimeUnixNano: string;
  timeUnixNano: string;
  count: string;
  sum?: number;
  bucketCounts: string[];
  explicitBounds: number[];
}
export interface OtlpMetric {
  name: string;
  description: string;
  unit: string;
  gauge?: { dataPoints: NumberPoint[] };
  sum?: { dataPoints: NumberPoint[]; aggregationTemporality: string; isMonotonic: boolean };
  histogram?: { dataPoints: HistogramPoint[]; aggregationTemporality: string };
}

export interface Received {
  request: ExportRequest;
  /** Request headers (http) or metadata (gRPC), lower-cased names. */
  headers: Record<string, string>;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true, oneofs: false };

let requestType: protobuf.Type | undefined;
function exportRequestType(): protobuf.Type {
  if (!requestType) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
    root.loadSync(SERVICE_PROTO, { keepCase: false });
    requestType = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
  }
  return requestType;
}

/** Decodes an ExportMetricsServiceRequest with the official definitions. */
export function decodeExportRequest(bytes: Uint8Array): ExportRequest {
  const t = exportRequestType();
  return t.toObject(t.decode(bytes), TO_OBJECT) as ExportRequest;
}

export interface OtlpReceiver {
  /** http/protobuf: the full URL to push to; gRPC: the host URL. */
  readonly url: string;
  readonly received: Received[];
  /** Answers the next `n` requests with a failure (http status, or gRPC UNAVAILABLE). */
  failNext(n: number, httpStatus?: number): void;
  /** Resolves once `count` requests have arrived in all. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

abstract class Base {
  readonly received: Received[] = [];
  protected failures = 0;
  protected failStatus = 503;
  private waiters: { count: number; resolve: () => void }[] = [];
  failNext(n: number, httpStatus = 503): void {
    this.failures = n;
    this.failStatus = httpStatus;
  }
  protected record(r: Received): void {
    this.received.push(r);
    this.waiters = this.waiters.filter((w) => (this.received.length >= w.count ? (w.resolve(), false) : true));
  }
  waitFor(count: number, timeoutMs = 20_000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`OTLP receiver: ${this.received.length} requests after ${timeoutMs} ms, waiting for ${count}`)), timeoutMs);
      this.waiters.push({ count, resolve: () => (clearTimeout(t), resolve()) });
    });
  }
}

class HttpReceiver extends Base implements OtlpReceiver {
  url = '';
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/metrics' || req.headers['content-type'] !== 'application/x-protobuf') {
        res.writeHead(400).end();
        return;
      }
      if (this.failures > 0) {
        this.failures--;
        res.writeHead(this.failStatus).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      this.record({ request: decodeExportRequest(body), headers });
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end(); // an empty ExportMetricsServiceResponse
    });
  });
  static async start(): Promise<HttpReceiver> {
    const self = new HttpReceiver();
    await new Promise<void>((resolve) => self.server.listen(0, '127.0.0.1', resolve));
    self.url = `http://127.0.0.1:${(self.server.address() as AddressInfo).port}/v1/metrics`;
    return self;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

class GrpcReceiver extends Base implements OtlpReceiver {
  url = '';
  constructor(private readonly server: grpc.Server) {
    super();
  }
  static async start(): Promise<GrpcReceiver> {
    const def = protoLoader.loadSync(SERVICE_PROTO, { includeDirs: [PROTO_DIR], keepCase: false, longs: String, enums: String, defaults: true, arrays: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      opentelemetry: { proto: { collector: { metrics: { v1: { MetricsService: grpc.ServiceClientConstructor } } } } };
    };
    const server = new grpc.Server();
    const self = new GrpcReceiver(server);
    server.addService(pkg.opentelemetry.proto.collector.metrics.v1.MetricsService.service, {
      Export: (call: grpc.ServerUnaryCall<ExportRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (self.failures > 0) {
          self.failures--;
          callback({ code: grpc.status.UNAVAILABLE, details: 'test: unavailable' });
          return;
        }
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(call.metadata.getMap())) headers[k] = String(v);
        self.record({ request: call.request, headers });
        callback(null, {});
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    self.url = `http://127.0.0.1:${port}`;
    return self;
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

export function startOtlpReceiver(protocol: 'http/protobuf' | 'grpc'): Promise<OtlpReceiver> {
  return protocol === 'grpc' ? GrpcReceiver.start() : HttpReceiver.start();
}

/** Attributes as a plain record of strings (every attribute we send is a string). */
export function attrs(kvs: KeyValue[]): Record<string, string> {
  return Object.fromEntries(kvs.map((kv) => [kv.key, kv.value.stringValue ?? String(kv.value.intValue ?? kv.value.doubleValue ?? kv.value.boolValue)]));
}
