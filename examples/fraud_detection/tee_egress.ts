/**
 * `TeeEgress`: one egress id that forwards every record to several connectors (here: the alerts
 * file and stdout). Functions see a single egress; `ctx.egress('fraud/alerts', ...)` reaches all.
 *
 * Writes go to the targets in order. If a target fails, the batch is rejected and the engine
 * retries it; the targets that already took the batch are not written again, so a flaky file
 * does not print every alert twice on stdout. A retry is recognised as the same records (by
 * identity, or by egress id, type name and bytes when the engine rebuilt the array).
 */
import type { EgressConnector, EgressContext, EgressRecord } from 'statefn';

function sameRecord(a: EgressRecord, b: EgressRecord): boolean {
  if (a === b) return true;
  if (a.egressId !== b.egressId || a.message.typename !== b.message.typename) return false;
  const x = a.message.bytes();
  const y = b.message.bytes();
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function sameBatch(a: readonly EgressRecord[], b: readonly EgressRecord[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameRecord(a[i]!, b[i]!)) return false;
  return true;
}

export class TeeEgress implements EgressConnector {
  readonly id: string;
  private readonly targets: readonly EgressConnector[];
  /** The batch whose last write failed, and which targets had already taken it. */
  private pending: { records: readonly EgressRecord[]; done: boolean[] } | undefined;

  constructor(options: { id: string; targets: readonly EgressConnector[] }) {
    if (options.targets.length === 0) throw new RangeError(`tee egress '${options.id}': needs at least one target`);
    this.id = options.id;
    this.targets = [...options.targets];
  }

  async start(ctx: EgressContext): Promise<void> {
    for (const t of this.targets) await t.start?.(ctx);
  }

  async write(records: readonly EgressRecord[]): Promise<void> {
    const retry = this.pending !== undefined && sameBatch(this.pending.records, records);
    const done = retry ? this.pending!.done : this.targets.map(() => false);
    this.pending = { records, done };
    for (const [i, t] of this.targets.entries()) {
      if (done[i]) continue;
      await t.write(records);
      done[i] = true;
    }
    this.pending = undefined;
  }

  async flush(): Promise<void> {
    for (const t of this.targets) await t.flush?.();
  }

  async stop(): Promise<void> {
    // Stop every target even if one fails, then report the first failure.
    let failure: unknown;
    for (const t of this.targets) {
      try {
        await t.stop?.();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure === undefined) return;
    throw failure instanceof Error ? failure : new Error('tee egress: a target failed to stop', { cause: failure });
  }
}
