/**
 * The benchmark tables in README.md and bench/README.md are rendered from the committed results
 * files (bench/render_tables.ts): they must match what those files render, and bench/results/
 * must keep only the latest file of each suite.
 */
import { describe, expect, it } from 'vitest';
import { BLOCKS, latestPerSuite, readResults, renderAll, renderMarkdown, suitesOf, supersededFiles } from '../../bench/render_tables.js';

describe('bench/render_tables', () => {
  it('README.md and bench/README.md are up to date with bench/results/ (run `npm run bench:tables`)', () => {
    const report = renderAll(undefined, false);
    expect(report.filter((r) => r.stale).map((r) => r.file)).toEqual([]);
    // Every block name used in the files is one the renderer knows (else renderAll would throw).
    expect(report.flatMap((r) => r.blocks).length).toBeGreaterThan(0);
  });

  it('bench/results/ holds no superseded file, and every block has a file of its suite', () => {
    const files = readResults();
    expect(supersededFiles(files).map((f) => f.path)).toEqual([]);
    const latest = latestPerSuite(files);
    for (const [name, view] of Object.entries(BLOCKS)) expect(latest.has(view.suite), `block ${name}: suite ${view.suite}`).toBe(true);
  });

  it('assigns suites by command, section, --only and --quick', () => {
    const run = (only: string | null, quick: boolean, sections: string[]) => ({
      startedAt: '2026-01-01T00:00:00.000Z',
      machine: {},
      settings: { quick, only, argv: [] },
      micro: sections.includes('micro') ? [] : null,
      macro: sections.includes('macro') ? [] : null,
      checkpoint: null,
      kafka: sections.includes('kafka') ? { error: 'x' } : null,
      remote: null,
    });
    expect(suitesOf(run(null, false, ['micro', 'macro']))).toEqual(['micro', 'macro']);
    expect(suitesOf(run('kafka', true, ['kafka']))).toEqual(['kafka-quick']);
    const peers = (systems: string[], quick: boolean) =>
      ({ kind: 'statefn-peers' as const, settings: { quick, systems } }) as unknown as Parameters<typeof suitesOf>[0];
    expect(suitesOf(peers(['statefn', 'restate', 'flink', 'scaling'], false))).toEqual(['peers']);
    expect(suitesOf(peers(['statefn', 'scaling'], false))).toEqual(['peers-only-statefn']);
    expect(suitesOf(peers(['scaling'], true))).toEqual(['peers-only-scaling-quick']);
  });

  it("replaces only the text between a block's markers", () => {
    const latest = latestPerSuite(readResults());
    const text = 'before\n<!-- bench:macro:start -->\nold table\n<!-- bench:macro:end -->\nafter\n';
    const out = renderMarkdown(text, latest);
    expect(out.blocks).toEqual(['macro']);
    expect(out.text.startsWith('before\n<!-- bench:macro:start -->\n')).toBe(true);
    expect(out.text.endsWith('\n<!-- bench:macro:end -->\nafter\n')).toBe(true);
    expect(out.text).not.toContain('old table');
    expect(out.text).toContain(`Source: \`${latest.get('macro')!.path}\``);
    expect(renderMarkdown(out.text, latest).text).toBe(out.text);
  });
});
