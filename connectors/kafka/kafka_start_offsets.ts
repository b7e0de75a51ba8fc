/**
 * Where each partition of the Kafka ingress starts reading: the checkpoint's position when there
 * is one, else the configured startup position (StateFun's `startupPosition`), with
 * `autoOffsetResetPosition` for partitions that have no usable offset.
 */
import type { Admin } from 'kafkajs';
import type { Logger } from '../../api/connector_api.js';
import { tpKey } from './kafka_partition_key.js';

export type KafkaStartupPosition =
  | { readonly type: 'earliest' }
  | { readonly type: 'latest' }
  | { readonly type: 'group-offsets' }
  /** Offsets keyed by `topic/partition`; partitions not listed start at autoOffsetResetPosition. */
  | { readonly type: 'specific-offsets'; readonly offsets: Readonly<Record<string, number>> }
  /** Epoch milliseconds: the first record with a timestamp at or after it. */
  | { readonly type: 'date'; readonly date: number };

/** What resolveStartOffsets needs to know about the ingress. */
export interface StartOffsetsRequest {
  /** The ingress, for log lines. */
  readonly where: string;
  readonly topics: Iterable<string>;
  readonly startupPosition: KafkaStartupPosition | undefined;
  readonly autoOffsetResetPosition: 'earliest' | 'latest' | undefined;
  /** The group whose committed offsets `group-offsets` starts from. */
  readonly consumerGroupId: string;
  /** True when `next` holds a checkpoint's position: partitions missing from it start at earliest. */
  readonly restored: boolean;
  readonly logger: Logger | undefined;
}

/**
 * Fill in `next` (next offset per `topic/partition`) for partitions that have no position yet,
 * and move positions that retention has deleted to the log start. Returns how many partitions
 * the topics have.
 */
export async function resolveStartOffsets(admin: Admin, req: StartOffsetsRequest, next: Map<string, number>): Promise<number> {
  const start = req.startupPosition ?? { type: 'latest' };
  const reset = req.autoOffsetResetPosition ?? 'latest';
  let partitionsTotal = 0;
  for (const topic of req.topics) {
    const watermarks = await admin.fetchTopicOffsets(topic);
    partitionsTotal += watermarks.length;
    const byDate = start.type === 'date' && !req.restored ? await admin.fetchTopicOffsetsByTimestamp(topic, start.date) : [];
    const committed =
      start.type === 'group-offsets' && !req.restored
        ? ((await admin.fetchOffsets({ groupId: req.consumerGroupId, topics: [topic] }))[0]?.partitions ?? [])
        : [];
    for (const w of watermarks) {
      const key = tpKey(topic, w.partition);
      const low = Number(w.low);
      const high = Number(w.high);
      const saved = next.get(key);
      if (saved !== undefined) {
        if (saved < low) {
          req.logger?.error(
            `${req.where}: ${topic}/${w.partition}: offsets ${saved}..${low - 1} were deleted (retention) before they were ` +
              `read; reading from ${low}`,
          );
          next.set(key, low);
        }
        continue;
      }
      let offset: number;
      // A partition the checkpoint does not know (added since) is read from its start: nothing skipped.
      if (req.restored) offset = low;
      else if (start.type === 'earliest') offset = low;
      else if (start.type === 'latest') offset = high;
      else if (start.type === 'specific-offsets') offset = start.offsets[key] ?? (reset === 'earliest' ? low : high);
      else if (start.type === 'date') {
        const o = Number(byDate.find((b) => b.partition === w.partition)?.offset ?? -1);
        offset = o >= 0 ? o : high;
      } else {
        const o = Number(committed.find((c) => c.partition === w.partition)?.offset ?? -1);
        offset = o >= 0 ? o : reset === 'earliest' ? low : high;
      }
      // An offset below the log start (deleted by retention) reads from the log start.
      next.set(key, Math.min(high, Math.max(low, offset)));
    }
  }
  return partitionsTotal;
}
