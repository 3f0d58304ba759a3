#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { App, ListenError, VERSION } from './app.js';
import { ConfigError, loadConfigFile, type Config } from './config/load.js';
import { parseListenAddress } from './config/listen.js';
import { describeSharding, parseShardFlags } from './engine/shard.js';
import { createLogger } from './logger.js';
import { loadWebConfig, WebConfigError } from './server/web-config.js';
import { parseFaults } from './simulator/faults.js';
import type { Simulator } from './simulator/server.js';
import { SOURCES } from './sources/index.js';

// The only file that reads process.env or calls process.exit.

const USAGE = `Usage:
  conviva-exporter --config <file> [--web.listen-address <host:port>] [--web.config.file <file>] [--shard <n> --total-shards <m>]
  conviva-exporter --config <file> --check-config
  conviva-exporter [--config <file>] --once [--demo]
  conviva-exporter --demo            exporter against the embedded simulator
  conviva-exporter simulate --listen <host:port> [--seed <n>] [--cardinality <n>] [--faults <json>]

Options:
  --config <file>                 YAML configuration (default with --demo: config/demo.yml)
  --web.listen-address <h:p>      where to serve /metrics (default from config, :19440)
  --web.config.file <file>        TLS and basic auth for the HTTP server, in the Prometheus exporter-toolkit's
                                  web-config format; re-read when it changes (docs/configuration.md)
  --check-config                  validate the config, print every problem, exit 0 or 2
  --once                          run every collector once, print the exposition, exit 0 if all succeeded
  --demo                          start the simulator on loopback and point every source at it
  --log.level <level>             override log.level
  --shard <n>                     with --total-shards: poll only the units of upstream work (accounts, data
                                  flows, queries) that hash to shard n (0..m-1);
                                  every replica reads the same config (docs/scaling.md)
  --total-shards <m>              the number of replicas sharing the work (default 1: no sharding)
  --version, --help
`;

const DEMO_CONFIG = fileURLToPath(new URL('../config/demo.yml', import.meta.url));

async function simulate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', default: '127.0.0.1:19441' },
      seed: { type: 'string', default: '42' },
      cardinality: { type: 'string', default: '50' },
      faults: { type: 'string' },
    },
  });
  const addr = parseListenAddress(values.listen);
  if (!addr) {
    console.error(`--listen: expected host:port, got "${values.listen}"`);
    return 2;
  }
  const { Simulator } = await import('./simulator/server.js');
  const sim = new Simulator({
    seed: Number(values.seed),
    dimensionCardinality: Number(values.cardinality),
    faults: values.faults ? parseFaults(JSON.parse(values.faults)) : undefined,
    sftp: 'embedded',
  });
  const url = await sim.listen(addr.host || '127.0.0.1', addr.port);
  console.error(JSON.stringify({ level: 'info', msg: 'simulator listening', url, sftp: sim.endpoints.sftp, sources: [...sim.fakes.keys()], admin: `${url}/_admin/faults` }));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await sim.close();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'simulate') return simulate(argv.slice(1));
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'web.listen-address': { type: 'string' },
        'web.config.file': { type: 'string' },
        'check-config': { type: 'boolean', default: false },
        once: { type: 'boolean', default: false },
        demo: { type: 'boolean', default: false },
        'log.level': { type: 'string' },
        shard: { type: 'string' },
        'total-shards': { type: 'string' },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.version) {
    console.log(`conviva-exporter ${VERSION} (node ${process.version})`);
    return 0;
  }
  const shard = parseShardFlags(values.shard, values['total-shards']);
  if (typeof shard === 'string') {
    console.error(`${shard}\n\n${USAGE}`);
    return 2;
  }
  const configPath = values.config ?? (values.demo ? DEMO_CONFIG : undefined);
  if (!configPath) {
    console.error(`--config is required (or --demo)\n\n${USAGE}`);
    return 2;
  }

  let sim: Simulator | undefined;
  const env: Record<string, string | undefined> = { ...process.env };
  if (values.demo) {
    const { Simulator } = await import('./simulator/server.js');
    // Its own SFTP server too: some sources read their results over SFTP.
    sim = new Simulator({ sftp: 'embedded' });
    env.SIMULATOR_URL = await sim.listen('127.0.0.1', 0);
  }
  const load = (): Config => {
    const cfg = loadConfigFile(configPath, env);
    // Not a YAML key: the flags, set again on every load so a SIGHUP reload keeps them.
    cfg.shard = shard;
    // In demo mode every source points at the simulator, whatever the file says.
    if (sim) {
      for (const source of SOURCES) {
        const block = cfg.sources[source.name];
        if (block !== undefined) cfg.sources[source.name] = source.useSimulator(block, sim.endpoints);
      }
    }
    return cfg;
  };

  let config: Config;
  try {
    config = load();
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems) console.error(`${configPath}: ${p}`);
      await sim?.close();
      return 2;
    }
    throw e;
  }
  if (values['check-config']) {
    if (shard.total > 1) {
      // What each replica would poll, so names and --total-shards can be checked before a rollout.
      const sharding = describeSharding(SOURCES, config.sources, shard.total);
      for (const line of sharding.lines) console.log(`${configPath}: ${line}`);
      config.warnings.push(...sharding.warnings);
    }
    for (const w of config.warnings) console.error(`${configPath}: warning: ${w}`);
    console.log(`${configPath}: configuration is valid${config.warnings.length > 0 ? ` (${config.warnings.length} warning${config.warnings.length > 1 ? 's' : ''})` : ''}`);
    await sim?.close();
    return 0;
  }
  const listenText = values['web.listen-address'] ?? config.server.listen_address;
  const listen = parseListenAddress(listenText);
  if (!listen) {
    console.error(`--web.listen-address: expected host:port, got "${listenText}"`);
    await sim?.close();
    return 2;
  }

  const logLevel = values['log.level'] ?? config.log.level;
  const log = createLogger(logLevel);
  for (const w of config.warnings) log.warn({ warning: w, file: configPath }, 'configuration warning');

  if (values.once) {
    const app = await App.create({ config, log });
    const ok = await app.runOnce();
    const text = await app.text();
    // A reader that stops early (`| head`) closes the pipe: that is not an error of ours.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') log.error({ err: e }, 'cannot write to stdout');
    });
    await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
    await app.stop();
    await sim?.close();
    log.flush();
    return ok ? 0 : 1;
  }

  const webConfigFile = values['web.config.file'];
  const printWebConfigProblems = (e: WebConfigError) => {
    for (const p of e.problems) console.error(`${webConfigFile}: ${p}`);
  };
  if (webConfigFile !== undefined) {
    // Checked before the engine starts: a bad file stops start-up as a bad --config does.
    try {
      await loadWebConfig(webConfigFile);
    } catch (e) {
      if (!(e instanceof WebConfigError)) throw e;
      printWebConfigProblems(e);
      await sim?.close();
      return 2;
    }
  }

  let fatal: (code: number) => void = (code) => process.exit(code);
  const app = await App.create({ config, log, engine: 'worker', logLevel, onFatal: (code) => fatal(code), webConfigFile });
  try {
    await app.start(listen);
  } catch (e) {
    if (e instanceof WebConfigError) {
      // It changed for the worse since the check above.
      printWebConfigProblems(e);
      await app.stop();
      await sim?.close();
      log.flush();
      return 2;
    }
    if (!(e instanceof ListenError)) throw e;
    log.fatal({ address: e.address, code: e.code }, e.message);
    await app.stop();
    await sim?.close();
    log.flush();
    return 1;
  }
  if (sim) log.info({ simulator: sim.url }, 'demo mode: all sources point at the embedded simulator');

  return new Promise<number>((resolve) => {
    fatal = (code) => {
      log.flush();
      resolve(code);
    };
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      void app
        .stop()
        .then(() => sim?.close())
        .then(() => {
          log.info('stopped');
          log.flush();
          resolve(0);
        });
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        const next = load();
        for (const w of next.warnings) log.warn({ warning: w, file: configPath }, 'configuration warning');
        app.reload(next).catch((err: unknown) => log.error({ err }, 'configuration reload failed'));
      } catch (e) {
        const problems = e instanceof ConfigError ? e.problems : [(e as Error).message];
        log.error({ problems, file: configPath }, 'configuration reload failed: keeping the running configuration');
      }
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
