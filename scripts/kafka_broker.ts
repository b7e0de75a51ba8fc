// A real Apache Kafka broker in KRaft mode (one JVM that is both broker and controller), run from
// the jars on Maven Central, for tests and for trying statefn with Kafka locally.
/**
 * `ensureKafkaJars()` resolves `org.apache.kafka:kafka_2.13:<version>` with its runtime
 * dependencies and an SLF4J logging binding into a cache directory with Maven (once; a marker file
 * makes later calls free) and returns the Java classpath. `startKafkaBroker()` formats a storage
 * directory and runs `java … kafka.Kafka server.properties` on 127.0.0.1, waiting until a client
 * can describe the cluster. Needs `java` (11+ for Kafka 3.x, 17+ for 4.x) and, the first time for a
 * version, `mvn`.
 *
 * As a program: `node --import tsx scripts/kafka_broker.ts [--port 9092] [--log-dir DIR]
 * [--version V] [--host 127.0.0.1]` runs a broker until Ctrl-C.
 *
 * Environment: STATEFN_KAFKA_VERSION (default version), JAVA_HOME (which java to run, as Kafka's
 * own scripts do), STATEFN_KAFKA_JVM_OPTS (extra JVM options, space separated).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { requireJava, requireMaven, type JavaInfo } from './java_tools.js';

export const DEFAULT_KAFKA_VERSION = '3.9.1';
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAVEN_DEPENDENCY_PLUGIN = '3.8.1';
const MAVEN_TIMEOUT_MS = 600_000;
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

export interface KafkaJarsOptions {
  /** Kafka version on Maven Central; default STATEFN_KAFKA_VERSION or 3.9.1. */
  version?: string;
  /** Where the jars go; default `<repo>/node_modules/.cache/statefn-kafka/<version>`. */
  cacheDir?: string;
}

export interface KafkaBrokerOptions {
  /** Kafka version on Maven Central; default STATEFN_KAFKA_VERSION or 3.9.1. */
  version?: string;
  /** Client (PLAINTEXT) port; default a free port. */
  port?: number;
  /** Holds server.properties, server.log and the data (`data/`); default a fresh temp dir. */
  logDir?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** How long to wait for the broker to answer; default 60 s. */
  startTimeoutMs?: number;
  /** Extra JVM options, after the defaults (so `-Xmx1g` here wins). */
  jvmOpts?: string[];
  /**
   * Also wait until the group and transaction coordinators are ready (creating
   * __consumer_offsets and __transaction_state), so the first consumer group or transactional
   * producer does not wait for them; default true.
   */
  warmUpCoordinators?: boolean;
}

export interface KafkaBroker {
  /** `host:port` for clients. */
  readonly bootstrap: string;
  readonly port: number;
  /** Port of the KRaft controller listener (fixed for the broker's life, restarts included). */
  readonly controllerPort: number;
  readonly logDir: string;
  readonly version: string;
  /** SIGTERM (controlled shutdown), then SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Stop, then start again on the same ports and log dir, waiting until ready. */
  restart(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Java and Maven

/** The Java to run Kafka `version` with (Kafka 4 needs 17). */
function checkJava(version: string): JavaInfo {
  return requireJava(`Kafka ${version}`, kafkaMajor(version) >= 4 ? 17 : 11);
}

function checkMaven(): void {
  requireMaven('resolving the Kafka jars');
}

function kafkaMajor(version: string): number {
  return Number(/^(\d+)/.exec(version)?.[1] ?? '0');
}

function resolveVersion(version: string | undefined): string {
  const v = version ?? (process.env.STATEFN_KAFKA_VERSION || DEFAULT_KAFKA_VERSION);
  if (!/^\d+\.\d+\.\d+[0-9A-Za-z.-]*$/.test(v)) throw new Error(`not a Kafka version: ${JSON.stringify(v)}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Jars

const MARKER = '.resolved';

/**
 * Resolve Kafka's jars (and a logging binding) into the cache directory; return the classpath.
 * The first call for a version runs Maven (a few seconds with a warm ~/.m2, longer on a cold
 * one); later calls read the cache and do not need Maven.
 */
export async function ensureKafkaJars(opts: KafkaJarsOptions = {}): Promise<string> {
  const version = resolveVersion(opts.version);
  checkJava(version);
  const cacheDir = resolve(opts.cacheDir ?? join(REPO_ROOT, 'node_modules', '.cache', 'statefn-kafka', version));
  const cached = readCache(cacheDir);
  if (cached !== undefined) return cached;

  checkMaven();
  // Resolve into a private directory and rename it into place, so concurrent callers (several
  // test processes) never see a half-filled cache.
  mkdirSync(join(cacheDir, '..'), { recursive: true });
  const work = `${cacheDir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(work, { recursive: true });
  try {
    const started = Date.now();
    const lib = join(work, 'lib');
    // Pass 1: Kafka alone, to see which SLF4J and log4j it brings.
    await copyDependencies(work, version, []);
    const jars = readdirSync(lib);
    const slf4j = versionOf(jars, 'slf4j-api');
    const log4jCore = versionOf(jars, 'log4j-core');
    if (slf4j === undefined) throw new Error(`Kafka ${version} brought no slf4j-api jar; cannot pick a logging binding`);
    // Pass 2: Kafka plus the binding that fits, with slf4j-api pinned to Kafka's version.
    const binding: Dep[] =
      log4jCore !== undefined
        ? // Kafka 4.x logs through log4j2.
          [{ g: 'org.apache.logging.log4j', a: slf4j.startsWith('1.') ? 'log4j-slf4j-impl' : 'log4j-slf4j2-impl', v: log4jCore }]
        : // Kafka 3.x uses reload4j (log4j 1.2 API); its Log4jController needs the classes too.
          [{ g: 'org.slf4j', a: 'slf4j-reload4j', v: slf4j }];
    rmSync(lib, { recursive: true, force: true });
    await copyDependencies(work, version, binding, { g: 'org.slf4j', a: 'slf4j-api', v: slf4j });
    const final = readdirSync(lib).filter((f) => f.endsWith('.jar'));
    if (!final.some((f) => f.startsWith(`kafka_2.13-${version}`)))
      throw new Error(`Maven did not produce kafka_2.13-${version}.jar in ${lib}`);
    writeFileSync(
      join(work, MARKER),
      JSON.stringify({ version, resolvedMs: Date.now() - started, binding, jars: final.sort() }, null, 2) + '\n',
    );
    try {
      renameSync(work, cacheDir);
    } catch (e) {
      // Someone else finished first (use theirs), or a stale unfinished dir is in the way.
      if (readCache(cacheDir) === undefined) {
        rmSync(cacheDir, { recursive: true, force: true });
        renameSync(work, cacheDir);
      } else if (!(e instanceof Error && 'code' in e && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST'))) throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const done = readCache(cacheDir);
  if (done === undefined) throw new Error(`the Kafka jar cache at ${cacheDir} is incomplete after resolution`);
  return done;
}

function readCache(cacheDir: string): string | undefined {
  let marker: { jars?: unknown };
  try {
    marker = JSON.parse(readFileSync(join(cacheDir, MARKER), 'utf8')) as { jars?: unknown };
  } catch {
    return undefined;
  }
  if (!Array.isArray(marker.jars) || marker.jars.length === 0) return undefined;
  // Caches made before the command-line tools (kafka-tools) were added are resolved again.
  if (!(marker.jars as unknown[]).some((j) => String(j).startsWith('kafka-tools-') && !String(j).startsWith('kafka-tools-api')))
    return undefined;
  const jars = (marker.jars as unknown[]).map((j) => join(cacheDir, 'lib', String(j)));
  if (!jars.every((j) => existsSync(j))) return undefined;
  return jars.join(delimiter);
}

function versionOf(jars: string[], artifact: string): string | undefined {
  for (const j of jars) {
    const m = new RegExp(`^${artifact}-(\\d[^/]*)\\.jar$`).exec(j);
    if (m !== null) return m[1];
  }
  return undefined;
}

interface Dep {
  g: string;
  a: string;
  v: string;
}

async function copyDependencies(dir: string, version: string, extra: Dep[], pin?: Dep): Promise<void> {
  const dep = (d: Dep): string =>
    `      <dependency><groupId>${d.g}</groupId><artifactId>${d.a}</artifactId><version>${d.v}</version></dependency>`;
  const pinned =
    pin !== undefined ? `  <dependencyManagement>\n    <dependencies>\n${dep(pin)}\n    </dependencies>\n  </dependencyManagement>\n` : '';
  const deps = [{ g: 'org.apache.kafka', a: 'kafka_2.13', v: version }, { g: 'org.apache.kafka', a: 'kafka-tools', v: version }, ...extra];
  const plugin =
    '<groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>' +
    `<version>${MAVEN_DEPENDENCY_PLUGIN}</version>`;
  const pom = `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by statefn scripts/kafka_broker.ts: only used to fetch Kafka's runtime jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>statefn.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${version}</version>
  <packaging>pom</packaging>
${pinned}  <dependencies>
${deps.map(dep).join('\n')}
  </dependencies>
  <build>
    <plugins>
      <plugin>${plugin}</plugin>
    </plugins>
  </build>
</project>
`;
  writeFileSync(join(dir, 'pom.xml'), pom);
  const args = [
    '-q',
    '-B',
    '-Dstyle.color=never',
    '-f',
    join(dir, 'pom.xml'),
    'dependency:copy-dependencies',
    `-DoutputDirectory=${join(dir, 'lib')}`,
    '-DincludeScope=runtime',
  ];
  const { code, output } = await run('mvn', args, MAVEN_TIMEOUT_MS, dir);
  if (code !== 0) {
    throw new Error(
      `\`mvn ${args.join(' ')}\` failed (${code}) resolving org.apache.kafka:kafka_2.13:${version}; ` +
        `is the version on Maven Central and the network up?\n${tail(output, 30)}`,
    );
  }
}

function run(cmd: string, args: string[], timeoutMs: number, cwd?: string): Promise<{ code: string | number; output: string }> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer): void => {
      output += d.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      res({ code: e.message, output });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code: code ?? `signal ${signal}`, output });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Broker

/** JVMs still running, killed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** Start a single-node KRaft broker (broker + controller in one JVM) and wait until it answers. */
export async function startKafkaBroker(opts: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
  const version = resolveVersion(opts.version);
  const classpath = await ensureKafkaJars({ version });
  const java = checkJava(version);
  const host = opts.host ?? '127.0.0.1';
  // Clients must be told an address they can reach; a wildcard bind is advertised as loopback.
  const advertisedHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const logDir = resolve(opts.logDir ?? mkdtempSync(join(tmpdir(), 'statefn-kafka-')));
  mkdirSync(join(logDir, 'data'), { recursive: true });
  if (opts.port !== undefined && !(await portFree(host, opts.port))) {
    // Otherwise readiness would be checked against whatever already answers there.
    throw new Error(`port ${opts.port} on ${host} is in use (another Kafka broker?); stop it, or pick another port with --port`);
  }
  const port = opts.port ?? (await freePort(host));
  let controllerPort = await freePort(host);
  while (controllerPort === port) controllerPort = await freePort(host);
  const fmtHost = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  const bootstrap = `${fmtHost(advertisedHost)}:${port}`;

  const propsPath = join(logDir, 'server.properties');
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@${fmtHost(advertisedHost)}:${controllerPort}`,
    listeners: `PLAINTEXT://${fmtHost(host)}:${port},CONTROLLER://${fmtHost(host)}:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${fmtHost(advertisedHost)}:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': join(logDir, 'data'),
    // One node: every internal topic has one replica.
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 4,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 4,
    'min.insync.replicas': 1,
    'default.replication.factor': 1,
    'num.partitions': 1,
    'auto.create.topics.enable': true,
    'delete.topic.enable': true,
    // Tests want consumer groups to start at once and hung transactions to be aborted soon.
    'group.initial.rebalance.delay.ms': 0,
    'transaction.abort.timed.out.transaction.cleanup.interval.ms': 5_000,
    // A small machine (2 cores): few threads, a small log-cleaner buffer (default 128 MiB).
    'num.network.threads': 2,
    'num.io.threads': 4,
    'background.threads': 4,
    'num.recovery.threads.per.data.dir': 1,
    'log.cleaner.threads': 1,
    'log.cleaner.dedupe.buffer.size': 16 * 1024 * 1024,
    // Unfence the broker sooner after (re)start.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 9_000,
  };
  if (kafkaMajor(version) >= 4) {
    props['share.coordinator.state.topic.replication.factor'] = 1;
    props['share.coordinator.state.topic.min.isr'] = 1;
  }
  writeFileSync(
    propsPath,
    `# Written by statefn scripts/kafka_broker.ts for Kafka ${version} (KRaft, single node).\n` +
      Object.entries(props)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join('\n') +
      '\n',
  );
  const logJvmOpts = writeLogConfig(logDir);
  const extraOpts = [...(process.env.STATEFN_KAFKA_JVM_OPTS ?? '').split(/\s+/).filter((s) => s !== ''), ...(opts.jvmOpts ?? [])];
  const baseOpts = ['-Djava.awt.headless=true', `-Dkafka.logs.dir=${logDir}`, ...logJvmOpts];
  const brokerOpts = ['-Xms128m', '-Xmx512m', '-XX:+UseSerialGC', '-XX:+ExitOnOutOfMemoryError', ...baseOpts, ...extraOpts];
  const startTimeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS;
  const warmUp =
    opts.warmUpCoordinators === false
      ? undefined
      : {
          groupPartitions: Number(props['offsets.topic.num.partitions']),
          txnPartitions: Number(props['transaction.state.log.num.partitions']),
        };

  await formatStorage(java.bin, classpath, baseOpts, logDir, propsPath);

  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const outPath = join(logDir, 'jvm.out');
    const fd = openSync(outPath, 'a');
    let c: ChildProcess;
    try {
      c = spawn(java.bin, [...brokerOpts, '-cp', classpath, 'kafka.Kafka', propsPath], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    child = c;
    track(c);
    try {
      await waitReady(c, bootstrap, logDir, startTimeoutMs, warmUp);
    } catch (e) {
      await signalAndWait(c, 'SIGKILL', 0);
      throw e;
    }
  };
  await launch();

  const broker: KafkaBroker = {
    bootstrap,
    port,
    controllerPort,
    logDir,
    version,
    stop: async () => {
      if (child !== undefined) await signalAndWait(child, 'SIGTERM', STOP_GRACE_MS);
    },
    kill: async () => {
      if (child !== undefined) await signalAndWait(child, 'SIGKILL', 0);
    },
    restart: async () => {
      await broker.stop();
      await launch();
    },
  };
  return broker;
}

/** log4j 1.x (reload4j, Kafka 3.x) and log4j2 (Kafka 4.x) configs sending everything to server.log. */
function writeLogConfig(logDir: string): string[] {
  const file = join(logDir, 'server.log');
  const esc = (s: string): string => s.replace(/\\/g, '\\\\');
  const l4j = join(logDir, 'log4j.properties');
  writeFileSync(
    l4j,
    [
      'log4j.rootLogger=INFO, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${esc(file)}`,
      'log4j.appender.file.Append=true',
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      'log4j.logger.kafka.request.logger=WARN',
      'log4j.logger.state.change.logger=WARN',
      'log4j.logger.kafka.authorizer.logger=WARN',
      'log4j.logger.org.apache.zookeeper=WARN',
      '',
    ].join('\n'),
  );
  const l4j2 = join(logDir, 'log4j2.properties');
  writeFileSync(
    l4j2,
    [
      'status = warn',
      'appender.file.type = File',
      'appender.file.name = FILE',
      `appender.file.fileName = ${esc(file)}`,
      'appender.file.append = true',
      'appender.file.layout.type = PatternLayout',
      'appender.file.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = info',
      'rootLogger.appenderRef.file.ref = FILE',
      'logger.request.name = kafka.request.logger',
      'logger.request.level = warn',
      'logger.state.name = state.change.logger',
      'logger.state.level = warn',
      '',
    ].join('\n'),
  );
  return [`-Dlog4j.configuration=${pathToFileURL(l4j).href}`, `-Dlog4j2.configurationFile=${pathToFileURL(l4j2).href}`];
}

/** Format the KRaft storage once; a log dir that already has meta.properties is left as it is. */
async function formatStorage(java: string, classpath: string, jvmOpts: string[], logDir: string, propsPath: string): Promise<void> {
  if (existsSync(join(logDir, 'data', 'meta.properties'))) return;
  const args = [
    '-Xmx256m',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    ...jvmOpts,
    '-cp',
    classpath,
    'kafka.tools.StorageTool',
    'format',
    '-t',
    clusterId(),
    '-c',
    propsPath,
  ];
  const { code, output } = await run(java, args, 120_000);
  if (code !== 0) throw new Error(`formatting the Kafka storage in ${logDir} failed (${code}):\n${tail(output, 30)}`);
}

/** A random cluster id as Kafka's Uuid.randomUuid() makes them: 16 bytes, url-safe base64, no leading '-'. */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * Poll with an admin client until the broker describes a cluster with itself in it; then, unless
 * `warmUp` is undefined, make every group and transaction coordinator partition ready.
 */
async function waitReady(
  child: ChildProcess,
  bootstrap: string,
  logDir: string,
  timeoutMs: number,
  warmUp: { groupPartitions: number; txnPartitions: number } | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const kafka = new Kafka({
    clientId: 'statefn-kafka-ready',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 0 },
  });
  let lastError = '';
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the Kafka broker exited during startup (code ${child.exitCode}, signal ${child.signalCode}); ` +
          `logs in ${logDir}:\n${logTails(logDir)}`,
      );
    }
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0) {
        if (warmUp === undefined) return;
        await warmUpCoordinators(bootstrap, warmUp, Math.max(1_000, deadline - Date.now()));
        return;
      }
      lastError = 'no broker in the cluster description yet';
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    } finally {
      await admin.disconnect().catch(() => {});
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the Kafka broker at ${bootstrap} was not ready within ${timeoutMs} ms (last error: ${lastError}); ` +
          `logs in ${logDir}:\n${logTails(logDir)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The group and transaction coordinators (and their internal topics, __consumer_offsets and
 * __transaction_state) come up lazily, on a client's first FindCoordinator/InitProducerId, and
 * answer COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE until then: clients retry, but
 * slowly and with ERROR logs. Touch one group and one transactional id per partition of each
 * topic (Kafka maps an id to `abs(javaHashCode(id)) % partitions`) so they are all ready.
 */
async function warmUpCoordinators(
  bootstrap: string,
  counts: { groupPartitions: number; txnPartitions: number },
  timeoutMs: number,
): Promise<void> {
  const kafka = new Kafka({
    clientId: 'statefn-kafka-warmup',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    requestTimeout: 10_000,
    retry: { retries: 100, initialRetryTime: 50, maxRetryTime: 500, factor: 0.2, multiplier: 1.5 },
  });
  const groups = idsCovering('statefn-warmup-group', counts.groupPartitions);
  const txns = idsCovering('statefn-warmup-txn', counts.txnPartitions);
  const admin = kafka.admin();
  const producers = txns.map((transactionalId) => kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 }));
  let timer: NodeJS.Timeout | undefined;
  const work = async (): Promise<void> => {
    await admin.connect();
    await Promise.all([
      admin.describeGroups(groups),
      ...producers.map(async (p) => {
        await p.connect();
        // InitProducerId without sending anything: abort() with no partitions sends no EndTxn.
        const tx = await p.transaction();
        await tx.abort();
      }),
    ]);
  };
  try {
    await Promise.race([
      work(),
      new Promise<void>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`group/transaction coordinators not ready within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await Promise.all([admin.disconnect(), ...producers.map((p) => p.disconnect())].map((p) => p.catch(() => {})));
  }
}

/** One id per partition: ids `${prefix}-<n>` chosen so Kafka's coordinator partitioning covers 0…count-1. */
function idsCovering(prefix: string, count: number): string[] {
  const byPartition = new Map<number, string>();
  for (let n = 0; byPartition.size < count && n < 100_000; n++) {
    const id = `${prefix}-${n}`;
    let h = 0;
    for (let i = 0; i < id.length; i++) h = (Math.imul(31, h) + id.charCodeAt(i)) | 0;
    const abs = h === -2147483648 ? 0 : Math.abs(h);
    const partition = abs % count;
    if (!byPartition.has(partition)) byPartition.set(partition, id);
  }
  return [...byPartition.values()];
}

function logTails(logDir: string): string {
  const read = (name: string): string | undefined => {
    try {
      return readFileSync(join(logDir, name), 'utf8');
    } catch {
      return undefined;
    }
  };
  const log = read('server.log') ?? '';
  // The cause is usually an ERROR line followed by many INFO lines of shutdown.
  const errors = log.split('\n').filter((l) => /^\[[^\]]*\] (ERROR|FATAL) /.test(l));
  const out = read('jvm.out');
  return [
    errors.length > 0
      ? `--- server.log, last errors ---\n${errors
          .slice(-5)
          .map((l) => l.slice(0, 2_000))
          .join('\n')}`
      : '',
    `--- server.log (tail) ---\n${tail(log, 30)}`,
    out !== undefined && out.trim() !== '' ? `--- jvm.out (tail) ---\n${tail(out, 20)}` : '',
  ]
    .filter((s) => s !== '')
    .join('\n');
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Send `signal`; if the process has not exited after `graceMs`, SIGKILL it. Resolves on exit. */
function signalAndWait(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      if (timer !== undefined) clearTimeout(timer);
      res();
    });
    child.kill(signal);
  });
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, host, () => s.close(() => res(true)));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(argv: string[]): Promise<void> {
  const opts: KafkaBrokerOptions = { port: 9092 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--port') opts.port = Number(value());
    else if (arg === '--log-dir') opts.logDir = value();
    else if (arg === '--version') opts.version = value();
    else if (arg === '--host') opts.host = value();
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: node --import tsx scripts/kafka_broker.ts [--port 9092] [--log-dir DIR] [--version V] [--host 127.0.0.1]');
      return;
    } else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  if (!Number.isInteger(opts.port) || (opts.port ?? 0) <= 0 || (opts.port ?? 0) > 65535) throw new Error('--port needs a port number');
  const started = Date.now();
  const broker = await startKafkaBroker(opts);
  console.log(
    `Kafka ${broker.version} (KRaft) listening on ${broker.bootstrap}; logs in ${broker.logDir}; Ctrl-C to stop` +
      ` (started in ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) {
      void broker.kill().then(() => process.exit(130));
      return;
    }
    stopping = true;
    console.log(`${sig}: stopping Kafka (again to kill it)…`);
    void broker.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
