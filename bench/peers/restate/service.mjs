/**
 * The Restate peer's service deployment (a child process of the bench): the workloads of
 * bench/peers/types.ts as Restate virtual objects, served over HTTP/2 (h2c, bidirectional
 * streaming, the SDK's default for Node) on 127.0.0.1.
 *
 *   Counter          add(): reads state `n`, writes n + 1, returns n + 1 (exclusive handler).
 *   Hop0 .. Hop9     step({ k, n }): increments its own state `n`, then (hops 0..8) calls
 *                    Hop<i+1> at key hash(k, i+1) mod n request-response and returns its answer;
 *                    Hop9 returns 10. The client calls Hop0 at key hash(k, 0) mod n, so its HTTP
 *                    request completes once all 10 hops are done. Hop i only ever waits on Hop
 *                    i+1, so the exclusive per-key locks held along a chain can never form a cycle.
 *   fraud            statefn's fraud-detection example (examples/fraud_detection), ported:
 *     TransactionManager (key: transaction id) transaction(tx): stores the transaction, calls
 *                    FraudCount(account).query and MerchantScorer(merchant).score concurrently,
 *                    then Model.score(features), clears its state, answers { score, alert }
 *                    (alert: score > the example's threshold 0.8);
 *     FraudCount     (key: account) confirm(): count + 1 and a delayed send of expire() to itself
 *                    after the example's 30 days; expire(): count - 1; query(): the count;
 *     MerchantScorer (key: merchant) score(): the example's merchantRisk(id), cached in state;
 *     Model          (a stateless service) score(features): the example's scoreFeatures.
 *                    The scoring functions are the example's own modules (this process runs
 *                    with tsx). All object handlers are exclusive, as a StateFun instance handles
 *                    one message at a time.
 *
 * The SDK is not a dependency of the project: it is installed into the bench's cache directory
 * (bench/peers/restate/install.ts) and imported from STATEFN_RESTATE_SDK_URL (a file: URL).
 * Prints `READY <port>` on stdout once listening; exits when its parent process goes away, and
 * then also stops restate-server (STATEFN_RESTATE_SERVER_PID) and removes its temp base dir.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';

const sdkUrl = process.env.STATEFN_RESTATE_SDK_URL;
if (!sdkUrl) {
  console.error('STATEFN_RESTATE_SDK_URL is not set');
  process.exit(2);
}
// SDK 1.17.2 calls Promise.withResolvers (Node >= 22); this project runs on Node 20. The
// standard's behaviour, for Node 20 only:
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
const restate = await import(sdkUrl);
const example = (m) => import(new URL(`../../../examples/fraud_detection/${m}`, import.meta.url).href);
const { scoreFeatures } = await example('model.ts');
const { merchantRisk } = await example('merchant_scorer.ts');
const { THRESHOLD_DEFAULT } = await example('transaction_manager.ts');
const { FRAUD_WINDOW_MS_DEFAULT } = await example('fraud_count.ts');
const HOPS = Number(process.env.STATEFN_RESTATE_HOPS ?? '10');

/** FNV-1a (32 bit); bench/peers/restate/load.ts has the same function. */
function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
const hopKey = (key, i, keys) => String(fnv1a(`${key}:${i}`) % keys);

const counter = restate.object({
  name: 'Counter',
  handlers: {
    add: async (ctx) => {
      const n = ((await ctx.get('n')) ?? 0) + 1;
      ctx.set('n', n);
      return n;
    },
  },
});

const hops = [];
for (let i = 0; i < HOPS; i++) {
  hops.push(
    restate.object({
      name: `Hop${i}`,
      handlers: {
        step: async (ctx, req) => {
          const n = ((await ctx.get('n')) ?? 0) + 1;
          ctx.set('n', n);
          if (i === HOPS - 1) return HOPS;
          return await ctx.objectClient(hops[i + 1], hopKey(req.k, i + 1, req.n)).step(req);
        },
      },
    }),
  );
}

const model = restate.service({
  name: 'Model',
  handlers: {
    score: async (_ctx, features) => scoreFeatures(features),
  },
});

const merchantScorer = restate.object({
  name: 'MerchantScorer',
  handlers: {
    score: async (ctx) => {
      let score = await ctx.get('score');
      if (score === null || score === undefined) {
        score = merchantRisk(ctx.key);
        ctx.set('score', score);
      }
      return score;
    },
  },
});

const fraudCount = restate.object({
  name: 'FraudCount',
  handlers: {
    confirm: async (ctx) => {
      ctx.set('count', ((await ctx.get('count')) ?? 0) + 1);
      ctx.objectSendClient(fraudCount, ctx.key).expire(restate.rpc.sendOpts({ delay: FRAUD_WINDOW_MS_DEFAULT }));
    },
    expire: async (ctx) => {
      const next = ((await ctx.get('count')) ?? 0) - 1;
      if (next > 0) ctx.set('count', next);
      else ctx.clear('count');
    },
    query: async (ctx) => (await ctx.get('count')) ?? 0,
  },
});

const transactionManager = restate.object({
  name: 'TransactionManager',
  handlers: {
    transaction: async (ctx, tx) => {
      // Transaction ids are fresh; a second one with the same id is dropped, as in the example.
      if ((await ctx.get('transaction')) != null) return { duplicate: true };
      ctx.set('transaction', tx);
      const [count, merchantScore] = await restate.RestatePromise.all([
        ctx.objectClient(fraudCount, tx.account).query(),
        ctx.objectClient(merchantScorer, tx.merchant).score(),
      ]);
      const score = await ctx.serviceClient(model).score({ fraudCount: count, merchantScore, amount: tx.amount });
      ctx.clearAll();
      return { score, alert: score > THRESHOLD_DEFAULT };
    },
  },
});

const server = http2.createServer(
  restate.createEndpointHandler({ services: [counter, ...hops, model, merchantScorer, fraudCount, transactionManager] }),
);
server.on('error', (e) => {
  console.error(`service: ${e.message}`);
  process.exit(1);
});
server.listen(Number(process.env.STATEFN_RESTATE_SERVICE_PORT ?? '0'), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

// Watchdog: if the bench process dies without stopping us (SIGKILL), stop restate-server too and
// remove its temp base dir (only a `statefn-restate-*` dir, once the server is gone).
const parent = process.ppid;
const serverPid = Number(process.env.STATEFN_RESTATE_SERVER_PID ?? '0');
const baseDir = process.env.STATEFN_RESTATE_BASE_DIR ?? '';
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const watchdog = setInterval(async () => {
  if (process.ppid === parent) return;
  clearInterval(watchdog);
  server.close();
  if (serverPid > 0 && alive(serverPid)) {
    process.kill(serverPid, 'SIGTERM');
    for (let i = 0; i < 150 && alive(serverPid); i++) await new Promise((r) => setTimeout(r, 100));
    if (alive(serverPid)) process.kill(serverPid, 'SIGKILL');
  }
  if (path.basename(baseDir).startsWith('statefn-restate-')) fs.rmSync(baseDir, { recursive: true, force: true });
  process.exit(0);
}, 1000);
watchdog.unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
