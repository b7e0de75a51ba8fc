// Proves `statefn start` runs the embedded fraud-detection example end to end through the real
// CLI (a child process with worker threads and LMDB), stops cleanly on SIGINT, and a second start
// resumes from the saved state and generator positions.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/statefn.js', import.meta.url));
const cwd = mkdtempSync(join(tmpdir(), 'statefn-cli-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function run(args: string[], opts: { sigintAfterMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.sigintAfterMs !== undefined) {
      // Wait until the engine reports it is running, then interrupt like Ctrl-C.
      const poll = setInterval(() => {
        if (stderr.includes('running with')) {
          clearInterval(poll);
          setTimeout(() => child.kill('SIGINT'), opts.sigintAfterMs);
        }
      }, 50);
    }
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('statefn start (CLI)', () => {
  it('prints usage and rejects unknown options with the usage', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('statefn <command>');
    const bad = await run(['start', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown option '--bogus'");
  });

  it('runs the default app, stops on SIGINT, and resumes on the next start', async () => {
    const params = JSON.stringify({
      transactionsPerSec: 3000,
      confirmationsPerSec: 300,
      accounts: 200,
      merchants: 50,
      alertsPath: join(cwd, 'statefn-data', 'alerts.jsonl'),
    });
    const first = await run(['start', '--workers', '2', '--no-progress', '--params', params], { sigintAfterMs: 3000 });
    expect(first.stderr).toContain('stopped cleanly');
    expect(first.code).toBe(0);
    const alerts = readFileSync(join(cwd, 'statefn-data', 'alerts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean);
    expect(alerts.length).toBeGreaterThan(0);
    expect(JSON.parse(alerts[0]!)).toMatchObject({ egress: 'fraud/alerts', typename: 'fraud.types/Alert' });
    // Alerts also go to stdout.
    expect(first.stdout).toContain('fraud/alerts');
    const record = JSON.parse(readFileSync(join(cwd, 'statefn-data', 'checkpoint.json'), 'utf8')) as {
      clean: boolean;
      positions: Record<string, number>;
    };
    expect(record.clean).toBe(true);
    const positions = record.positions;
    expect(positions['fraud/transactions']).toBeGreaterThan(0);

    const second = await run(['start', '--workers', '3', '--no-progress', '--stop-after', '2s', '--params', params]);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('resumes from its saved position');
    expect(second.stderr).toContain('rescaling state from 2 to 3 workers');
    const positions2 = (
      JSON.parse(readFileSync(join(cwd, 'statefn-data', 'checkpoint.json'), 'utf8')) as { positions: Record<string, number> }
    ).positions;
    expect(positions2['fraud/transactions']).toBeGreaterThan(positions['fraud/transactions']!);
    // No transaction id was alerted twice across the two runs (the generator did not restart at 0).
    const all = readFileSync(join(cwd, 'statefn-data', 'alerts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { value: { transactionId: string } }).value.transactionId);
    expect(new Set(all).size).toBe(all.length);
    expect(existsSync(join(cwd, 'statefn-data', 'LOCK'))).toBe(false);
  });

  it('names the file and the kind when module.yaml has a kind not supported yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'statefn-cli-yaml-'));
    const file = join(dir, 'module.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'kind: io.statefun.kinesis.v1/ingress\nspec:\n  id: com.example/in\n');
    const r = await run(['start', file, '--state-dir', join(dir, 'data')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('io.statefun.kinesis.v1/ingress');
    expect(r.stderr).toContain(file);
    rmSync(dir, { recursive: true, force: true });
  });
});
