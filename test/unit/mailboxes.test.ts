// Proves the per-address mailboxes without threads: a free address is invoked at once, a busy one
// queues in arrival order, draining runs waiting messages until one goes async (the rest stay
// behind it), remote batches respect their bound, and unhandled messages are listed oldest first
// per address.
import { describe, expect, it } from 'vitest';
import { InvariantError } from '../../shared/errors.js';
import { Mailboxes, addressKey, type Envelope } from '../../workers/mailboxes.js';

const env = (id: string, payload: string, attempt = 1): Envelope => ({
  targetType: 'ns/fn',
  targetId: id,
  callerType: null,
  callerId: null,
  typename: 't',
  payload,
  attempt,
});

describe('Mailboxes', () => {
  it('queues messages for a busy address in arrival order and drains them when it is free', () => {
    const m = new Mailboxes();
    const k = addressKey('ns/fn', 'a');
    expect(m.enqueueIfBusy(k, env('a', 'first'), undefined)).toBe(false);
    const first = env('a', 'first');
    m.beginAsync(k, first);
    expect(m.active).toBe(1);
    expect(m.enqueueIfBusy(k, env('a', 'second'), undefined)).toBe(true);
    expect(m.enqueueIfBusy(k, env('a', 'third'), undefined)).toBe(true);
    expect(m.enqueueIfBusy(addressKey('ns/fn', 'b'), env('b', 'other'), undefined)).toBe(false);
    expect(m.waiting).toBe(2);
    m.endAsync(k, first);
    expect(m.active).toBe(0);
    expect(m.isBusy(k)).toBe(true); // until drained
    const ran: string[] = [];
    m.drain(k, (e) => ran.push(e.payload as string));
    expect(ran).toEqual(['second', 'third']);
    expect(m.waiting).toBe(0);
    expect(m.isBusy(k)).toBe(false);
  });

  it('stops draining at an invocation that goes async; the rest waits behind it', () => {
    const m = new Mailboxes();
    const k = addressKey('ns/fn', 'a');
    const first = env('a', '1');
    m.beginAsync(k, first);
    for (const p of ['2', '3', '4']) m.enqueueIfBusy(k, env('a', p), undefined);
    m.endAsync(k, first);
    const ran: string[] = [];
    m.drain(k, (e) => {
      ran.push(e.payload as string);
      if (e.payload === '3') m.beginAsync(k, e);
    });
    expect(ran).toEqual(['2', '3']);
    expect(m.isBusy(k)).toBe(true);
    expect(m.waiting).toBe(1);
    const out: unknown[] = [];
    m.appendUnhandled(out);
    // The running input first, then its mailbox.
    expect(out.filter((_, i) => i % 6 === 5)).toEqual(['3', '4']);
  });

  it('takes remote batches up to the endpoint bound and tracks full mailboxes', () => {
    const m = new Mailboxes();
    const k = addressKey('ns/fn', 'r');
    m.beginRemote(k, [env('r', '0')]);
    for (let i = 1; i <= 5; i++) m.enqueueIfBusy(k, env('r', String(i)), 3);
    expect(m.remoteFullCount).toBe(1);
    m.endRemote(k);
    expect(m.takeRemoteBatch(k, 3)!.map((e) => e.payload)).toEqual(['1', '2', '3']);
    expect(m.remoteFullCount).toBe(0);
    expect(m.takeRemoteBatch(k, 3)!.map((e) => e.payload)).toEqual(['4', '5']);
    expect(m.waiting).toBe(0);
    expect(m.takeRemoteBatch(k, 3)).toBeNull();
    expect(m.isBusy(k)).toBe(false);
  });

  it('puts messages of a call cut short back at the head of the mailbox', () => {
    const m = new Mailboxes();
    const k = addressKey('ns/fn', 'r');
    const batch = [env('r', '1'), env('r', '2')];
    m.beginRemote(k, batch);
    m.enqueueIfBusy(k, env('r', '3'), 10);
    m.endRemote(k);
    m.requeueFront(k, batch);
    expect(m.waiting).toBe(3);
    const out: unknown[] = [];
    m.appendUnhandled(out);
    expect(out.filter((_, i) => i % 6 === 5)).toEqual(['1', '2', '3']);
  });

  it('asserts that an async invocation ends only after it began', () => {
    const m = new Mailboxes();
    expect(() => m.endAsync('x', env('x', '1'))).toThrow(InvariantError);
    expect(() => m.endRemote('x')).toThrow(InvariantError);
  });
});
