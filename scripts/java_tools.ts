/**
 * Finding Java and Maven for the parts of the project that run on the JVM: the Kafka broker of
 * the tests (scripts/kafka_broker.ts) and the Flink StateFun peer of the benchmarks
 * (bench/peers/flink_statefun.ts). Errors name what needed the tool, why the check failed, and how
 * to install it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const JAVA_MAVEN_INSTALL_HINT =
  'install a JDK and Maven, e.g. `apt-get install -y openjdk-17-jdk-headless maven` on Debian/Ubuntu, ' +
  'or see https://adoptium.net (Java) and https://maven.apache.org (Maven)';

export interface JavaInfo {
  /** The java executable (from JAVA_HOME when set, else on PATH). */
  bin: string;
  major: number;
  /** As `java -version` prints it, e.g. `17.0.12`. */
  version: string;
}
let found: JavaInfo | undefined;

function javaBin(): string {
  const home = process.env.JAVA_HOME;
  if (home !== undefined && home !== '') {
    const bin = join(home, 'bin', process.platform === 'win32' ? 'java.exe' : 'java');
    if (existsSync(bin)) return bin;
  }
  return 'java';
}

/** The Java to run `what` with, at least `minMajor`; throws a clear error otherwise. Cached. */
export function requireJava(what: string, minMajor: number): JavaInfo {
  if (found === undefined) {
    const bin = javaBin();
    const r = spawnSync(bin, ['-version'], { encoding: 'utf8', timeout: 30_000 });
    if (r.error !== undefined || r.status !== 0) {
      const why = r.error !== undefined ? r.error.message : `exit ${r.status}: ${(r.stderr ?? '').trim()}`;
      throw new Error(`${what} needs Java ${minMajor} or newer, but \`${bin} -version\` failed (${why}); ${JAVA_MAVEN_INSTALL_HINT}`);
    }
    const text = `${r.stderr ?? ''}\n${r.stdout ?? ''}`;
    const m = /version "((\d+)(?:\.(\d+))?[^"]*)"/.exec(text);
    if (m === null) throw new Error(`could not read the Java version from \`${bin} -version\`:\n${text.trim()}`);
    const first = Number(m[2]);
    found = { bin, major: first === 1 ? Number(m[3] ?? '0') : first, version: m[1]! };
  }
  if (found.major < minMajor) {
    throw new Error(
      `${what} needs Java ${minMajor} or newer, but \`${found.bin}\` is Java ${found.major}; ` +
        `${JAVA_MAVEN_INSTALL_HINT} (or point JAVA_HOME at a newer JDK)`,
    );
  }
  return found;
}

/** Throws a clear error if Maven (`mvn`) cannot run; `what` says what needed it. */
export function requireMaven(what: string): void {
  const r = spawnSync('mvn', ['-v', '-B', '-q'], { encoding: 'utf8', timeout: 60_000 });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? r.error.message : `exit ${r.status}: ${(r.stderr ?? r.stdout ?? '').trim()}`;
    throw new Error(`${what} needs Maven, but \`mvn -v\` failed (${why}); ${JAVA_MAVEN_INSTALL_HINT}`);
  }
}
