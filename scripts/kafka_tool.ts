// Kafka's own command-line tools (kafka-topics, kafka-console-producer, kafka-console-consumer,
// kafka-consumer-groups), run from the same Maven Central jars as scripts/kafka_broker.ts, so a
// quick start needs no Kafka download.
/**
 * `npm run kafka -- <tool> [arguments as for Kafka's own script]`, e.g.
 *
 *     npm run kafka -- topics --bootstrap-server 127.0.0.1:9092 --create --topic names
 *     npm run kafka -- console-producer --bootstrap-server 127.0.0.1:9092 --topic names \
 *         --property parse.key=true --property key.separator=:
 *     npm run kafka -- console-consumer --bootstrap-server 127.0.0.1:9092 --topic greetings \
 *         --from-beginning --isolation-level read_committed --property print.key=true
 *     npm run kafka -- consumer-groups --bootstrap-server 127.0.0.1:9092 --describe --group my-group
 *
 * The tool's class moved between Kafka versions (kafka.tools -> org.apache.kafka.tools); the
 * first candidate present in the jars is run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKafkaJars } from './kafka_broker.js';

export const KAFKA_TOOLS: Readonly<Record<string, readonly string[]>> = {
  topics: ['org.apache.kafka.tools.TopicCommand', 'kafka.admin.TopicCommand'],
  'console-producer': ['org.apache.kafka.tools.ConsoleProducer', 'kafka.tools.ConsoleProducer'],
  'console-consumer': ['org.apache.kafka.tools.consumer.ConsoleConsumer', 'kafka.tools.ConsoleConsumer'],
  'consumer-groups': ['org.apache.kafka.tools.consumer.group.ConsumerGroupCommand', 'kafka.admin.ConsumerGroupCommand'],
  'get-offsets': ['org.apache.kafka.tools.GetOffsetShell', 'kafka.tools.GetOffsetShell'],
  transactions: ['org.apache.kafka.tools.TransactionsCommand'],
};

/** The class of `tool` present on `classpath` (searched with the JDK's `jar tf`). */
export function toolClass(tool: string, classpath: string): string {
  const candidates = KAFKA_TOOLS[tool];
  if (candidates === undefined) throw new Error(`unknown Kafka tool '${tool}'; one of: ${Object.keys(KAFKA_TOOLS).join(', ')}`);
  const jars = classpath.split(delimiter).filter((j) => /kafka(_2\.13|-tools)-\d/.test(j));
  const entries = new Set<string>();
  for (const jar of jars) {
    const r = spawnSync('jar', ['tf', jar], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`\`jar tf ${jar}\` failed (is a JDK, not only a JRE, installed?): ${r.stderr || r.error?.message}`);
    for (const line of r.stdout.split('\n')) entries.add(line.trim());
  }
  const found = candidates.find((c) => entries.has(`${c.replace(/\./g, '/')}.class`));
  if (found === undefined) throw new Error(`none of ${candidates.join(', ')} is in this Kafka version's jars`);
  return found;
}

async function main(argv: string[]): Promise<void> {
  const [tool, ...args] = argv;
  if (tool === undefined || tool === '--help' || tool === '-h') {
    console.log(
      `usage: npm run kafka -- <tool> [args]\ntools: ${Object.keys(KAFKA_TOOLS).join(', ')}\n` +
        "the arguments are those of Kafka's own kafka-<tool>.sh",
    );
    return;
  }
  const classpath = await ensureKafkaJars();
  const cls = toolClass(tool, classpath);
  const java = process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : 'java';
  // Client logs at WARN to stderr, as Kafka's tools-log4j.properties does (log4j 1 for 3.x, log4j2 for 4.x).
  const dir = mkdtempSync(join(tmpdir(), 'statefn-kafka-tool-'));
  writeFileSync(
    join(dir, 'log4j.properties'),
    [
      'log4j.rootLogger=WARN, stderr',
      'log4j.appender.stderr=org.apache.log4j.ConsoleAppender',
      'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n',
      'log4j.appender.stderr.Target=System.err',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'log4j2.properties'),
    [
      'rootLogger.level=WARN',
      'rootLogger.appenderRef.stderr.ref=STDERR',
      'appender.stderr.type=Console',
      'appender.stderr.name=STDERR',
      'appender.stderr.target=SYSTEM_ERR',
      'appender.stderr.layout.type=PatternLayout',
      'appender.stderr.layout.pattern=[%d] %p %m (%c)%n',
      '',
    ].join('\n'),
  );
  const logging = [
    `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
    `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
  ];
  const child = spawn(java, ['-Xmx256m', ...logging, '-cp', classpath, cls, ...args], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 1 : 0);
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`kafka tool: ${(e as Error).message}`);
    process.exitCode = 1;
  });
}
