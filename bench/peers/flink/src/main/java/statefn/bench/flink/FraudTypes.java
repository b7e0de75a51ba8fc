package statefn.bench.flink;

/**
 * The messages of statefn's fraud-detection example (examples/fraud_detection/types.ts), as
 * plain Java classes. The fraud run uses StateFun's Kryo payload serializer
 * (Harness.withKryoMessageSerializer) for them; Transaction is also a Flink POJO state type.
 */
public final class FraudTypes {
  private FraudTypes() {}

  /** A card transaction. `timestamp`: creation (or intended) time, Stats micros. */
  public static final class Transaction {
    public String id;
    public String account;
    public String merchant;
    public double amount;
    public long timestamp;

    public Transaction() {}

    Transaction(String id, String account, String merchant, double amount, long timestamp) {
      this.id = id;
      this.account = account;
      this.merchant = merchant;
      this.amount = amount;
      this.timestamp = timestamp;
    }
  }

  public static final class ConfirmFraud {
    public String account;
    public long timestamp;

    public ConfirmFraud() {}

    ConfirmFraud(String account, long timestamp) {
      this.account = account;
      this.timestamp = timestamp;
    }
  }

  public static final class ExpireFraud {
    public ExpireFraud() {}
  }

  public static final class QueryFraud {
    public QueryFraud() {}
  }

  public static final class ReportedFraud {
    public int count;

    public ReportedFraud() {}

    ReportedFraud(int count) {
      this.count = count;
    }
  }

  public static final class QueryMerchantScore {
    public QueryMerchantScore() {}
  }

  public static final class MerchantScore {
    public double score;

    public MerchantScore() {}

    MerchantScore(double score) {
      this.score = score;
    }
  }

  public static final class FeatureVector {
    public int fraudCount;
    public double merchantScore;
    public double amount;

    public FeatureVector() {}

    FeatureVector(int fraudCount, double merchantScore, double amount) {
      this.fraudCount = fraudCount;
      this.merchantScore = merchantScore;
      this.amount = amount;
    }
  }

  public static final class FraudScore {
    public double score;

    public FraudScore() {}

    FraudScore(double score) {
      this.score = score;
    }
  }
}
