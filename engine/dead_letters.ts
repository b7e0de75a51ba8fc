/**
 * The main thread's dead letters: records an ingress could not route, messages too large for a
 * frame, egress records for an unknown egress, and what workers send as DEAD frames. Each goes to
 * the dead-letter egress as a JSON record; the first few (then one in every thousand) are logged.
 */
import { DEAD_LETTER_EGRESS } from '../api/app.js';
import type { Logger } from '../api/connector_api.js';
import { Message } from '../api/message.js';
import { Types } from '../api/types.js';
import { ErrorCode, type StatefnError } from '../shared/errors.js';
import type { EgressDispatcher } from './egress_dispatcher.js';
import { deadLetterLogEvery, deadLetterLogFirst } from '../shared/limits.js';

const DEAD_LETTER_TYPE = Types.json<Record<string, unknown>>('statefn/dead-letter');

export class DeadLetters {
  /** Dead letters written by the main thread (workers count their own). */
  count = 0;

  constructor(
    private readonly logger: Logger,
    private readonly egress: EgressDispatcher,
  ) {}

  /** Write one dead-letter record (code, error, and what it concerns). */
  write(rec: Record<string, unknown>): void {
    this.count++;
    if (this.count <= deadLetterLogFirst || this.count % deadLetterLogEvery === 0)
      this.logger.warn(`dead letter #${this.count}: ${String(rec.code)}: ${String(rec.error)}`);
    if (!this.egress.push({ egressId: DEAD_LETTER_EGRESS, message: Message.of(DEAD_LETTER_TYPE, rec) })) return;
    this.egress.pump();
  }

  /** An ingress record that could not be routed (the router threw, or routed it nowhere valid). */
  rejectRecord(ingressId: string, record: unknown, e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    let shown: unknown;
    try {
      shown =
        record instanceof Uint8Array
          ? { base64: Buffer.from(record).toString('base64') }
          : (JSON.parse(JSON.stringify(record ?? null)) as unknown);
    } catch {
      shown = String(record);
    }
    this.write({
      code: (err as { code?: string }).code ?? ErrorCode.INGRESS_RECORD_INVALID,
      error: err.message,
      ingress: ingressId,
      record: shown,
      at: new Date().toISOString(),
    });
  }

  /** A message the main thread could not send to a worker (the fields of its MESSAGE frame entry). */
  unsendable(fields: unknown[], e: StatefnError): void {
    const [targetType, targetId, , , typename] = fields as [string, string, unknown, unknown, string];
    this.write({ code: e.code, error: e.message, target: { typename: targetType, id: targetId }, typename, at: new Date().toISOString() });
  }

  /** An egress record for an egress the application does not register. */
  unknownEgress(egressId: string, typename: string): void {
    this.write({ code: ErrorCode.UNKNOWN_EGRESS, error: `no egress '${egressId}' is registered`, typename, at: new Date().toISOString() });
  }
}
