package statefn.bench.flink;

import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.io.IngressIdentifier;

/**
 * Identifiers, and the packing of a message: one long, (createdMicros << keyBits) | keyIndex. It
 * travels as a protobuf Int64Value from the source through the functions (StateFun's default
 * protobuf payload serializer), and as a Long to the egress. Fraud: see FraudModule.
 */
final class Ids {
  private Ids() {}

  static final String NAMESPACE = "statefn";
  /** Records are Int64Value (counter, chain) or FraudTypes (fraud). */
  static final IngressIdentifier<Object> INGRESS = new IngressIdentifier<>(Object.class, NAMESPACE, "generator");
  static final EgressIdentifier<Long> EGRESS = new EgressIdentifier<>(NAMESPACE, "completions", Long.class);
  static final FunctionType COUNTER = new FunctionType(NAMESPACE, "counter");
  static final int MAX_CHAIN = 64;

  static FunctionType chain(int i) {
    return new FunctionType(NAMESPACE, "chain-" + i);
  }

  // Global configuration keys (Harness.withGlobalConfiguration -> StatefulFunctionModule.configure).
  static final String CONF_WORKLOAD = "statefn.workload";
  static final String CONF_KEYS = "statefn.keys";
  static final String CONF_CHAIN_LENGTH = "statefn.chain-length";
}
