package statefn.bench.flink;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.SplittableRandom;
import org.apache.flink.statefun.sdk.Address;
import org.apache.flink.statefun.sdk.Context;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.StatefulFunction;
import org.apache.flink.statefun.sdk.annotations.Persisted;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule.Binder;
import org.apache.flink.statefun.sdk.state.Expiration;
import org.apache.flink.statefun.sdk.state.PersistedValue;
import statefn.bench.flink.FraudTypes.ConfirmFraud;
import statefn.bench.flink.FraudTypes.ExpireFraud;
import statefn.bench.flink.FraudTypes.FeatureVector;
import statefn.bench.flink.FraudTypes.FraudScore;
import statefn.bench.flink.FraudTypes.MerchantScore;
import statefn.bench.flink.FraudTypes.QueryFraud;
import statefn.bench.flink.FraudTypes.QueryMerchantScore;
import statefn.bench.flink.FraudTypes.ReportedFraud;
import statefn.bench.flink.FraudTypes.Transaction;

/**
 * statefn's fraud-detection example (examples/fraud_detection) as embedded StateFun functions:
 * `fraud/transaction-manager` (per transaction: stores it, asks fraud-count and merchant-scorer,
 * sends the features to the model, alerts if score > 0.8, deletes its state; values expire 1 h
 * after writing), `fraud/fraud-count` (per account: ConfirmFraud +1 and a delayed ExpireFraud to
 * itself after 30 days; QueryFraud replies the count), `fraud/merchant-scorer` (per merchant:
 * a deterministic risk from a hash of its id, cached in state) and `fraud/model` (stateless, by
 * transaction id: a fixed logistic regression). 7 messages per transaction. The benchmark's only
 * additions: the manager writes one egress record (the transaction's creation time) when a
 * transaction is fully scored, and alerts are counted instead of written.
 */
final class FraudModule {
  private FraudModule() {}

  static final String NS = "fraud";
  static final FunctionType TRANSACTION_MANAGER = new FunctionType(NS, "transaction-manager");
  static final FunctionType FRAUD_COUNT = new FunctionType(NS, "fraud-count");
  static final FunctionType MERCHANT_SCORER = new FunctionType(NS, "merchant-scorer");
  static final FunctionType MODEL = new FunctionType(NS, "model");

  static final int ACCOUNTS = 10_000;
  static final int MERCHANTS = 1_000;
  static final double MERCHANT_ZIPF = 1.1;
  static final double COMPROMISED_SHARE = 0.01;
  static final double FRAUD_ZIPF = 0.5;
  /** One ConfirmFraud per this many transactions (2.5%: the example's 50 per 2,000). */
  static final int TX_PER_CONFIRMATION = 40;
  static final double AMOUNT_MEAN = 80;
  static final double AMOUNT_MAX = 5_000;
  static final double THRESHOLD = 0.8;
  static final Duration PENDING_TTL = Duration.ofHours(1);
  static final Duration FRAUD_WINDOW = Duration.ofDays(30);

  static void bind(Binder binder) {
    binder.bindIngressRouter(Ids.INGRESS, new FraudRouter());
    binder.bindFunctionProvider(TRANSACTION_MANAGER, unused -> new TransactionManager());
    binder.bindFunctionProvider(FRAUD_COUNT, unused -> new FraudCount());
    binder.bindFunctionProvider(MERCHANT_SCORER, unused -> new MerchantScorer());
    binder.bindFunctionProvider(MODEL, unused -> new Model());
  }

  /** Makes the source's records: transactions, and a ConfirmFraud after every 40th. */
  static final class Maker implements GeneratorSource.Maker {
    private final SplittableRandom rnd;
    private final Keys.Sampler merchants;
    private final Keys.Sampler compromised;
    private final int sub;
    private final int p;
    private final String[] accountNames = new String[ACCOUNTS];
    private final String[] merchantNames = new String[MERCHANTS];
    private long seq;

    Maker(long seed, int sub, int p) {
      this.rnd = new SplittableRandom(seed);
      this.merchants = Keys.zipf(MERCHANTS, MERCHANT_ZIPF, seed ^ 0x5bd1e995L);
      this.compromised = Keys.zipf((int) Math.max(1, Math.round(ACCOUNTS * COMPROMISED_SHARE)), FRAUD_ZIPF, seed ^ 0x27d4eb2fL);
      this.sub = sub;
      this.p = p;
      for (int i = 0; i < ACCOUNTS; i++) accountNames[i] = "acct-" + i;
      for (int i = 0; i < MERCHANTS; i++) merchantNames[i] = "merch-" + i;
    }

    @Override
    public Object next(long createdMicros) {
      long index = seq++ * p + sub;
      String account = accountNames[rnd.nextInt(ACCOUNTS)];
      String merchant = merchantNames[merchants.next()];
      double exp = -Math.log(1 - rnd.nextDouble()) * AMOUNT_MEAN;
      double amount = Math.min(AMOUNT_MAX, Math.round((1 + exp) * 100) / 100.0);
      return new Transaction("t-" + index, account, merchant, amount, createdMicros);
    }

    @Override
    public Object extra(long createdMicros) {
      if (seq % TX_PER_CONFIRMATION != 0) return null;
      return new ConfirmFraud(accountNames[compromised.next()], createdMicros);
    }
  }

  static final class FraudRouter implements Router<Object> {
    @Override
    public void route(Object message, Downstream<Object> downstream) {
      if (message instanceof Transaction) {
        downstream.forward(TRANSACTION_MANAGER, ((Transaction) message).id, message);
      } else if (message instanceof ConfirmFraud) {
        downstream.forward(FRAUD_COUNT, ((ConfirmFraud) message).account, message);
      } else {
        throw new IllegalArgumentException("unexpected record " + message);
      }
    }
  }

  static final class TransactionManager implements StatefulFunction {
    @Persisted
    private final PersistedValue<Transaction> transaction =
        PersistedValue.of("transaction", Transaction.class, Expiration.expireAfterWriting(PENDING_TTL));

    @Persisted
    private final PersistedValue<Integer> fraudCount =
        PersistedValue.of("fraudCount", Integer.class, Expiration.expireAfterWriting(PENDING_TTL));

    @Persisted
    private final PersistedValue<Double> merchantScore =
        PersistedValue.of("merchantScore", Double.class, Expiration.expireAfterWriting(PENDING_TTL));

    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      if (input instanceof Transaction) {
        if (transaction.get() != null) return; // a second transaction with this id: dropped
        Transaction t = (Transaction) input;
        transaction.set(t);
        context.send(FRAUD_COUNT, t.account, new QueryFraud());
        context.send(MERCHANT_SCORER, t.merchant, new QueryMerchantScore());
        return;
      }
      Transaction t = transaction.get();
      if (input instanceof ReportedFraud) {
        if (t == null || fraudCount.get() != null) return;
        fraudCount.set(((ReportedFraud) input).count);
        scoreIfReady(context, t);
        return;
      }
      if (input instanceof MerchantScore) {
        if (t == null || merchantScore.get() != null) return;
        merchantScore.set(((MerchantScore) input).score);
        scoreIfReady(context, t);
        return;
      }
      if (input instanceof FraudScore) {
        Integer count = fraudCount.get();
        Double merchant = merchantScore.get();
        if (t == null || count == null || merchant == null) return;
        if (((FraudScore) input).score > THRESHOLD) Stats.alerts.increment();
        context.send(Ids.EGRESS, t.timestamp);
        transaction.clear();
        fraudCount.clear();
        merchantScore.clear();
        return;
      }
      throw new IllegalArgumentException("transaction-manager: unexpected message " + input);
    }

    private void scoreIfReady(Context context, Transaction t) {
      Integer count = fraudCount.get();
      Double merchant = merchantScore.get();
      if (count == null || merchant == null) return;
      context.send(MODEL, context.self().id(), new FeatureVector(count, merchant, t.amount));
    }
  }

  static final class FraudCount implements StatefulFunction {
    @Persisted
    private final PersistedValue<Integer> count = PersistedValue.of("count", Integer.class);

    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      if (input instanceof ConfirmFraud) {
        count.set(count.getOrDefault(0) + 1);
        context.sendAfter(FRAUD_WINDOW, context.self(), new ExpireFraud());
      } else if (input instanceof ExpireFraud) {
        int next = count.getOrDefault(0) - 1;
        if (next > 0) count.set(next);
        else count.clear();
      } else if (input instanceof QueryFraud) {
        Address caller = context.caller();
        if (caller == null) throw new IllegalStateException("fraud-count: QueryFraud without a caller");
        context.send(caller, new ReportedFraud(count.getOrDefault(0)));
      } else {
        throw new IllegalArgumentException("fraud-count: unexpected message " + input);
      }
    }
  }

  static final class MerchantScorer implements StatefulFunction {
    @Persisted
    private final PersistedValue<Double> score = PersistedValue.of("score", Double.class);

    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      if (!(input instanceof QueryMerchantScore)) {
        throw new IllegalArgumentException("merchant-scorer: unexpected message " + input);
      }
      Double s = score.get();
      if (s == null) {
        s = merchantRisk(context.self().id());
        score.set(s);
      }
      context.send(context.caller(), new MerchantScore(s));
    }
  }

  /** The merchant's risk in [0, 1]: u^2 for u a hash of its id in [0, 1) (the example's shape). */
  static double merchantRisk(String merchantId) {
    byte[] b = ("merchant:" + merchantId).getBytes(StandardCharsets.UTF_8);
    long h = 0x9E3779B97F4A7C15L;
    for (byte x : b) h = Keys.mix64(h ^ (x & 0xff));
    double u = (h >>> 32) / 4294967296.0;
    return Math.round(u * u * 1e4) / 1e4;
  }

  static final class Model implements StatefulFunction {
    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      FeatureVector v = (FeatureVector) input;
      double z =
          -5
              + 2 * Math.log1p(Math.min(5, Math.max(0, v.fraudCount)))
              + 3 * Math.min(1, Math.max(0, v.merchantScore))
              + Math.log1p(Math.max(0, v.amount) / 100);
      double score = Math.round(1e4 / (1 + Math.exp(-z))) / 1e4;
      context.send(context.caller(), new FraudScore(score));
    }
  }
}
