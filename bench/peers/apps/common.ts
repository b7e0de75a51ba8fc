/**
 * Shared pieces of the peer-benchmark apps (`bench/peers/apps/*`): key naming and the chain's key
 * hash (the same FNV-1a as the Restate peer's `bench/peers/restate/service.mjs`, so both systems
 * put hop i of the chain started at key k on key `hopKey(k, i)`), the HTTP ingress options of the
 * benchmark, and an egress that records two latencies per sampled record.
 *
 * Latency records. A sampled handler invocation egresses a `Types.string` payload
 * `"<created>|<processed>"`: the wall-clock time (ms, `performance.timeOrigin + performance.now()`,
 * comparable across threads) at which the main thread generated the ingress record, and the time
 * the worker processed the last hop. {@link PeerLatencyEgress} records
 *   - `processed - created`: creation to processing of the last hop (the figure the peer tables
 *     report for the generator path, as bench/macro.ts does), and
 *   - `now - created` at the egress: creation to the record becoming visible at an exactly-once
 *     egress (it is held until the checkpoint of its epoch completes, ~1 flush interval later).
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { EgressConnector, EgressRecord } from '../../../api/connector_api.js';
import { Message } from '../../../api/message.js';
import { Types } from '../../../api/types.js';
import type { HttpIngressOptions } from '../../../connectors/http/http_ingress.js';

// `performance.timeOrigin` is a getter that does work on every read: read it once per thread.
const ORIGIN_MS = performance.timeOrigin;

/** Wall clock in ms with sub-ms precision, comparable across the threads of one process. */
export function nowMs(): number {
  return ORIGIN_MS + performance.now();
}

export const STRING = Types.string.typename;
export const DOUBLE = Types.double.typename;
/** The latency egress of every peer app. */
export const LATENCY_EGRESS_ID = 'peers/latency';

export { fnv1a, hopKey } from '../chain_keys.js';

/** The latency sample a handler egresses: `"<created>|<processed now>"`. */
export function latencySample(created: number): Message {
  return new Message(STRING, `${created}|${nowMs()}`);
}

/** How the HTTP-ingress variants of the apps configure the ingress (structured-clone safe). */
export interface PeerHttpParams {
  requestsInFlightMax?: number;
  connectionsMax?: number;
  replyWhen?: 'durable' | 'accepted';
}

export function httpIngressOptions(id: string, p: PeerHttpParams | undefined): HttpIngressOptions {
  return {
    id,
    host: '127.0.0.1',
    port: 0,
    bodyBytesMax: 4096,
    requestsInFlightMax: p?.requestsInFlightMax ?? 1 << 20,
    connectionsMax: p?.connectionsMax ?? 4096,
    replyWhen: p?.replyWhen ?? 'durable',
    // Idempotency keys are not used by the load client; keep the map small.
    idempotencyKeysMax: 0,
  };
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

function summarize(h: RecordableHistogram): LatencySummary {
  return {
    count: h.count,
    p50Ms: h.percentile(50) / 1000,
    p90Ms: h.percentile(90) / 1000,
    p99Ms: h.percentile(99) / 1000,
    p999Ms: h.percentile(99.9) / 1000,
    maxMs: h.max / 1000,
    meanMs: h.mean / 1000,
  };
}

/**
 * Records the two latencies of every `"<created>|<processed>"` sample it receives (µs, HDR
 * histograms of `perf_hooks`) whose processing time falls inside the window [fromMs, toMs)
 * (wall clock): the runner sets the window, stops the engine (whose final checkpoint releases
 * every held record) and then reads the summary, so a sample counts by when it was processed, not
 * by when its checkpoint released it. The visible latency is recorded only for records written
 * while `visibleOpen` (before the window's end). Other payloads are only counted. Main thread.
 */
export class PeerLatencyEgress implements EgressConnector {
  readonly processed: RecordableHistogram = createHistogram();
  readonly visible: RecordableHistogram = createHistogram();
  /** Records seen since construction. */
  records = 0;
  /** Records that carried no sample (e.g. the HTTP path's chain ends). */
  unsampled = 0;
  fromMs = Infinity;
  toMs = Infinity;
  visibleOpen = false;

  constructor(readonly id: string) {}

  write(records: readonly EgressRecord[]): void {
    const now = nowMs();
    this.records += records.length;
    for (const r of records) {
      const p = r.message.payload;
      if (typeof p !== 'string') {
        this.unsampled++;
        continue;
      }
      const bar = p.indexOf('|');
      const created = Number(p.slice(0, bar));
      const processed = Number(p.slice(bar + 1));
      if (!(created > 0) || !(processed > 0)) {
        this.unsampled++;
        continue;
      }
      if (processed < this.fromMs || processed >= this.toMs) continue;
      this.processed.record(Math.max(1, Math.round((processed - created) * 1000)));
      if (this.visibleOpen) this.visible.record(Math.max(1, Math.round((now - created) * 1000)));
    }
  }

  /** Count samples processed from now on (until `close`). */
  open(): void {
    this.processed.reset();
    this.visible.reset();
    this.fromMs = nowMs();
    this.toMs = Infinity;
    this.visibleOpen = true;
  }

  /** Samples processed from now on are not counted; records released later still are if processed before. */
  close(): void {
    this.toMs = nowMs();
    this.visibleOpen = false;
  }

  summary(): { processed: LatencySummary; visible: LatencySummary } {
    return { processed: summarize(this.processed), visible: summarize(this.visible) };
  }
}

/** An egress that only counts (e.g. the fraud example's alerts in the benchmark). */
export class CountingEgress implements EgressConnector {
  records = 0;
  constructor(readonly id: string) {}
  write(records: readonly EgressRecord[]): void {
    this.records += records.length;
  }
}
