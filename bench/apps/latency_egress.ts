/**
 * `LatencyEgress`: an in-process egress for benchmarks. Every record it receives carries, as a
 * `Types.double` payload, the wall-clock time (`performance.timeOrigin + performance.now()`, ms)
 * at which the main thread generated the ingress record that led to it; `write` records
 * "now - that time" in a histogram. The egress runs on the main thread, so this is the latency
 * ingress -> ring -> worker -> handler -> ring -> main -> egress, including every queue on the way.
 *
 * The histogram is Node's built-in `perf_hooks.createHistogram` (HDR, integers): we record
 * microseconds, so sub-millisecond latencies keep their precision.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { EgressConnector, EgressRecord } from '../../api/connector_api.js';

// `performance.timeOrigin` is a getter that does work on every read: read it once per thread.
const ORIGIN_MS = performance.timeOrigin;

/** The wall clock in ms as a double with sub-ms precision (comparable across threads). */
export function nowMs(): number {
  return ORIGIN_MS + performance.now();
}

export class LatencyEgress implements EgressConnector {
  /** Latencies in microseconds (at least 1: HDR histograms take integers >= 1). */
  readonly histogram: RecordableHistogram = createHistogram();
  /** Records seen since construction (also those written while `recording` was false). */
  records = 0;
  /** Records whose payload was not a number (should stay 0). */
  malformed = 0;
  /** While false, records are counted but not put in the histogram (warm-up). */
  recording = true;

  constructor(readonly id: string) {}

  write(records: readonly EgressRecord[]): void {
    const now = nowMs();
    this.records += records.length;
    if (!this.recording) return;
    const h = this.histogram;
    for (const r of records) {
      const ts = r.message.payload;
      if (typeof ts !== 'number') {
        this.malformed++;
        continue;
      }
      h.record(Math.max(1, Math.round((now - ts) * 1000)));
    }
  }

  /** Start recording afresh (the end of a warm-up). */
  reset(): void {
    this.histogram.reset();
    this.recording = true;
  }

  /** p50/p99/max and count of what was recorded, in ms. */
  summary(): { count: number; p50Ms: number; p90Ms: number; p99Ms: number; p999Ms: number; maxMs: number; meanMs: number } {
    const h = this.histogram;
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
}
