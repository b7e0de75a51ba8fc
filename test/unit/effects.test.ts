// Proves an invocation's effects are validated before any is applied: an unknown egress or a
// delayed-message token in use fails the whole invocation with nothing half-applied, a token the
// same invocation cancels is free again, and valid effects are applied (state marked dirty, sends
// routed, egress queued).
import { describe, expect, it } from 'vitest';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { StatsBlock } from '../../shared/stats_block.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { AddressState } from '../../workers/address_state.js';
import { Effects } from '../../workers/effects.js';
import type { FnRuntime } from '../../workers/function_table.js';
import type { Invocation } from '../../workers/invocation.js';
import type { Router } from '../../workers/router.js';
import type { StateCache } from '../../workers/state_cache.js';
import type { TimerService } from '../../workers/timer_service.js';

function setup(tokensInUse: string[] = []) {
  const dirty: AddressState[] = [];
  const routed: string[] = [];
  const egress: string[] = [];
  const timerCalls: string[] = [];
  const cache = { markDirty: (st: AddressState) => dirty.push(st) } as unknown as StateCache;
  const router = {
    route: (_t: string, id: string) => routed.push(id),
    toMain: { egressRecord: (id: string) => egress.push(id) },
  } as unknown as Router;
  const timers = {
    tokenInUse: (_kg: number, _t: string, _id: string, token: string) => tokensInUse.includes(token),
    cancel: (_kg: number, _t: string, _id: string, token: string) => timerCalls.push(`cancel ${token}`),
    add: (t: { token: string | null }) => timerCalls.push(`add ${t.token}`),
  } as unknown as TimerService;
  const stats = new StatsBlock(StatsBlock.allocate(2), 2);
  const effects = new Effects(0, new Set(['ns/out']), timers, cache, router, stats);
  return { effects, dirty, routed, egress, timerCalls };
}

const fn = { specs: [{ name: 'v', type: Types.long }], hasCallTtl: false } as unknown as FnRuntime;

function invocation(parts: Partial<Record<'staged' | 'written' | 'delayed' | 'cancels' | 'sends' | 'egresses', unknown>>): Invocation {
  const state: AddressState = {
    fnType: 'ns/fn',
    id: 'a',
    kg: 1,
    bytes: [undefined],
    values: [undefined],
    expires: [0],
    orphans: undefined,
    dirty: false,
    persisted: undefined,
    capture: false,
    snap: null,
  };
  return {
    self: { typename: 'ns/fn', id: 'a' },
    state,
    staged: null,
    written: null,
    delayed: null,
    cancels: null,
    sends: null,
    egresses: null,
    ...parts,
  } as unknown as Invocation;
}

const m = new Message('t', 'x');
const delayed = (token: string | null) => ({ delayMs: 10, to: { typename: 'ns/fn', id: 'b' }, message: m, token });

function code(f: () => void): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as StatefnError).code;
  }
  return undefined;
}

describe('Effects', () => {
  it('applies valid effects', () => {
    const t = setup();
    const inv = invocation({
      staged: [5],
      written: [true],
      sends: [{ typename: 'ns/fn', id: 'b' }, m],
      egresses: ['ns/out', m],
      delayed: [delayed('tok')],
    });
    t.effects.apply(fn, inv, 1000);
    expect(inv.state.values).toEqual([5]);
    expect(t.dirty).toHaveLength(1);
    expect(t.routed).toEqual(['b']);
    expect(t.egress).toEqual(['ns/out']);
    expect(t.timerCalls).toEqual(['add tok']);
  });

  it('an unknown egress fails the invocation before anything is applied', () => {
    const t = setup();
    const inv = invocation({ staged: [5], written: [true], sends: [{ typename: 'ns/fn', id: 'b' }, m], egresses: ['ns/nope', m] });
    expect(code(() => t.effects.apply(fn, inv, 1000))).toBe(ErrorCode.UNKNOWN_EGRESS);
    expect(inv.state.values).toEqual([undefined]);
    expect(t.dirty).toHaveLength(0);
    expect(t.routed).toHaveLength(0);
  });

  it('a token in use, or used twice, fails the invocation; one it cancels is free again', () => {
    const t = setup(['busy']);
    const sends = [{ typename: 'ns/fn', id: 'b' }, m];
    expect(code(() => t.effects.apply(fn, invocation({ sends, delayed: [delayed('busy')] }), 0))).toBe(ErrorCode.TOKEN_IN_USE);
    expect(code(() => t.effects.apply(fn, invocation({ sends, delayed: [delayed('x'), delayed('x')] }), 0))).toBe(ErrorCode.TOKEN_IN_USE);
    expect(t.routed).toHaveLength(0);
    expect(t.timerCalls).toHaveLength(0);
    t.effects.apply(fn, invocation({ cancels: ['busy'], delayed: [delayed('busy'), delayed(null)] }), 0);
    expect(t.timerCalls).toEqual(['cancel busy', 'add busy', 'add null']);
  });
});
