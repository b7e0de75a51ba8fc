/**
 * The egress records of each complete checkpoint, kept until every exactly-once sink committed
 * them: `<stateDir>/egress/<epoch>.bin` (msgpack of [egressId, typename, payload] triples),
 * written durably before the checkpoint record. After a crash between "checkpoint recorded" and
 * "sink committed", recovery hands a sink the epochs after its committed one again; the sink discarded
 * any partly written epoch at start, so each record lands exactly once.
 */
import { Packr } from 'msgpackr';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { EgressRecord } from '../api/connector_api.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { Message } from '../api/message.js';
import type { Payload } from '../api/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

function dir(stateDir: string): string {
  return join(stateDir, 'egress');
}

function file(stateDir: string, epoch: number): string {
  return join(dir(stateDir), `${String(epoch).padStart(12, '0')}.bin`);
}

export async function writeEgressEpoch(stateDir: string, epoch: number, records: readonly EgressRecord[]): Promise<void> {
  mkdirSync(dir(stateDir), { recursive: true });
  const f = file(stateDir, epoch);
  const fh = await open(`${f}.tmp`, 'w');
  try {
    await fh.writeFile(packr.pack(records.map((r) => [r.egressId, r.message.typename, r.message.payload])));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(`${f}.tmp`, f);
}

export function egressEpochs(stateDir: string): number[] {
  if (!existsSync(dir(stateDir))) return [];
  return readdirSync(dir(stateDir))
    .filter((n) => /^\d{12}\.bin$/.test(n))
    .map((n) => Number(n.slice(0, 12)))
    .sort((a, b) => a - b);
}

export function readEgressEpoch(stateDir: string, epoch: number): EgressRecord[] {
  const f = file(stateDir, epoch);
  let rows: [string, string, Payload][];
  try {
    rows = packr.unpack(readFileSync(f)) as [string, string, Payload][];
    if (!Array.isArray(rows)) throw new Error('not a list');
  } catch (e) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${f} (egress of checkpoint ${epoch}) is unreadable (${(e as Error).message}); delete it to skip re-writing that epoch's egress`,
    );
  }
  return rows.map(([egressId, typename, payload]) => ({ egressId, message: new Message(typename, payload) }));
}

export function deleteEgressEpoch(stateDir: string, epoch: number): void {
  rmSync(file(stateDir, epoch), { force: true });
}
