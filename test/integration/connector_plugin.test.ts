// Proves a third-party connector plugs in through EngineOptions.connectorKinds: its module.yaml
// kinds are parsed with the shared reader (positions, did-you-mean), built into the app beside the
// built-in kinds, and carry messages end to end; an unregistered kind gets the clear error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, ErrorCode, Message, MemoryEgress, Types } from '../../index.js';
import type { ConnectorDescriptor, ConnectorKind, IngressConnector, IngressContext, RoutedMessage } from '../../index.js';
import { MemoryLogger } from '../fixtures/engine_harness.js';

const appUrl = new URL('../fixtures/apps/plugin_echo_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'statefn-plugin-'));
  dirs.push(d);
  return d;
}

/** An ingress that submits `count` messages to `target` (ids `k0`..) when it starts. */
class TickIngress implements IngressConnector<RoutedMessage> {
  constructor(
    readonly id: string,
    private readonly target: string,
    private readonly count: number,
  ) {}
  start(ctx: IngressContext<RoutedMessage>): void {
    const records: RoutedMessage[] = [];
    for (let i = 0; i < this.count; i++)
      records.push({ to: { typename: this.target, id: `k${i}` }, message: Message.of(Types.string, `tick${i}`) });
    ctx.submit(records);
  }
  stop(): void {}
}

interface TickDocument extends ConnectorDescriptor {
  readonly kind: 'tick-ingress';
  readonly target: string;
  readonly count: number;
}

const tickKind: ConnectorKind<TickDocument> = {
  kinds: ['com.example.tick.v1/ingress'],
  role: 'ingress',
  parse(doc, r) {
    r.onlyKeys(doc.spec, 'spec', ['id', 'target', 'count']);
    const id = r.typeName(r.required(doc.spec, 'id', 'spec', 'the ingress id').value, 'spec.id', 'the ingress id');
    const target = r.typeName(r.required(doc.spec, 'target', 'spec', 'a function type').value, 'spec.target', 'the function type');
    const count = r.int(r.required(doc.spec, 'count', 'spec', 'messages to send').value, 'spec.count', 'messages to send', {
      min: 1,
      max: 1000,
    });
    return { kind: 'tick-ingress', source: r.source, id, target, count };
  },
  build(d, { app }) {
    app.ingress(new TickIngress(d.id, d.target, d.count));
  },
};

/** Egresses the collect kind built, by id, for the test to read. */
const collected = new Map<string, MemoryEgress>();
const collectKind: ConnectorKind = {
  kinds: ['com.example.collect.v1/egress'],
  role: 'egress',
  parse(doc, r) {
    r.onlyKeys(doc.spec, 'spec', ['id']);
    const id = r.typeName(r.required(doc.spec, 'id', 'spec', 'the egress id').value, 'spec.id', 'the egress id');
    return { kind: 'collect-egress', source: r.source, id };
  },
  build(d, { app }) {
    const egress = new MemoryEgress({ id: d.id });
    collected.set(d.id, egress);
    app.egress(egress);
  },
};

const MODULE = `kind: com.example.tick.v1/ingress
spec:
  id: plug/ticks
  target: plug/echo
  count: 5
---
kind: com.example.collect.v1/egress
spec:
  id: plug/out
---
kind: io.statefn.engine.v1/config
spec:
  checkpointIntervalMs: 100ms
`;

describe('a third-party connector kind', () => {
  it('is read from module.yaml and carries messages end to end', async () => {
    const dir = tempDir();
    const yaml = join(dir, 'module.yaml');
    writeFileSync(yaml, MODULE);
    const engine = await Engine.start(
      { module: appUrl, moduleYaml: yaml },
      { stateDir: join(dir, 'state'), workers: 2, logger: new MemoryLogger(), connectorKinds: [tickKind, collectKind] },
    );
    try {
      const out = collected.get('plug/out');
      expect(out).toBeDefined();
      await out!.waitFor(5, 20_000);
      expect(out!.records.map((r) => r.message.asString()).sort()).toEqual(['k0:tick0', 'k1:tick1', 'k2:tick2', 'k3:tick3', 'k4:tick4']);
    } finally {
      await engine.stop();
    }
  });

  it('reports its own schema errors with the file position and a did-you-mean hint', async () => {
    const dir = tempDir();
    const yaml = join(dir, 'module.yaml');
    writeFileSync(yaml, 'kind: com.example.tick.v1/ingress\nspec:\n  id: plug/ticks\n  target: plug/echo\n  cout: 5\n');
    const err = await Engine.start(
      { module: appUrl, moduleYaml: yaml },
      { stateDir: join(dir, 'state'), workers: 1, logger: new MemoryLogger(), connectorKinds: [tickKind as ConnectorKind] },
    ).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe(ErrorCode.CONFIG_INVALID);
    expect((err as Error).message).toContain(`${yaml}:5:3`);
    expect((err as Error).message).toContain("unknown key 'cout'");
    expect((err as Error).message).toContain("did you mean 'count'?");
  });

  it('is an unknown kind when not registered, and the error lists the registered kinds', async () => {
    const dir = tempDir();
    const yaml = join(dir, 'module.yaml');
    writeFileSync(yaml, 'kind: com.example.collect.v1/egress\nspec:\n  id: plug/out\n');
    const err = await Engine.start(
      { module: appUrl, moduleYaml: yaml },
      { stateDir: join(dir, 'state'), workers: 1, logger: new MemoryLogger(), connectorKinds: [tickKind as ConnectorKind] },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toContain("unknown kind 'com.example.collect.v1/egress'");
    expect((err as Error).message).toContain('com.example.tick.v1/ingress');
    expect((err as Error).message).toContain('io.statefun.kafka.v1/ingress');
  });
});
