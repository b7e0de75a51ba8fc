package statefn.bench.flink;

import com.google.protobuf.Int64Value;
import java.util.Map;
import org.apache.flink.statefun.sdk.Context;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.StatefulFunction;
import org.apache.flink.statefun.sdk.annotations.Persisted;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;
import org.apache.flink.statefun.sdk.state.PersistedValue;

/**
 * The embedded functions (found through META-INF/services): `statefn/counter` (PersistedValue<Long>,
 * +1 per message, then one egress record) and `statefn/chain-0` .. `chain-(n-1)` (stateless: hop i
 * forwards to chain-(i+1) at key hash(key, i+1); the last hop writes the egress record). The router
 * sends each generated message to counter/key or to chain-0/hash(key, 0). Workload fraud binds
 * FraudModule's functions instead.
 */
public final class BenchModule implements StatefulFunctionModule {

  @Override
  public void configure(Map<String, String> conf, Binder binder) {
    String workload = conf.getOrDefault(Ids.CONF_WORKLOAD, "counter-uniform");
    int keys = Integer.parseInt(conf.getOrDefault(Ids.CONF_KEYS, "100000"));
    int chainLength = Integer.parseInt(conf.getOrDefault(Ids.CONF_CHAIN_LENGTH, "10"));
    if (workload.equals("fraud")) {
      FraudModule.bind(binder);
      return;
    }
    boolean chain = workload.equals("chain");
    binder.bindIngressRouter(Ids.INGRESS, new GeneratorRouter(keys, chain));
    binder.bindFunctionProvider(Ids.COUNTER, unused -> new Counter());
    for (int i = 0; i < chainLength; i++) {
      final int hop = i;
      binder.bindFunctionProvider(Ids.chain(i), unused -> new ChainHop(hop, chainLength, keys));
    }
  }

  static Int64Value payload(long packed) {
    return Int64Value.newBuilder().setValue(packed).build();
  }

  static final class GeneratorRouter implements Router<Object> {
    private final String[] names;
    private final long keyMask;
    private final int keys;
    private final boolean chain;
    private final FunctionType first = Ids.chain(0);

    GeneratorRouter(int keys, boolean chain) {
      this.keys = keys;
      this.names = Keys.names(keys);
      this.keyMask = (1L << Keys.bitsFor(keys)) - 1;
      this.chain = chain;
    }

    @Override
    public void route(Object message, Downstream<Object> downstream) {
      int key = (int) (((Int64Value) message).getValue() & keyMask);
      if (chain) downstream.forward(first, names[Keys.hop(key, 0, keys)], message);
      else downstream.forward(Ids.COUNTER, names[key], message);
    }
  }

  static final class Counter implements StatefulFunction {
    @Persisted
    private final PersistedValue<Long> count = PersistedValue.of("count", Long.class);

    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      long packed = ((Int64Value) input).getValue();
      count.set(count.getOrDefault(0L) + 1);
      context.send(Ids.EGRESS, packed);
    }
  }

  static final class ChainHop implements StatefulFunction {
    private final int hop;
    private final boolean last;
    private final int keys;
    private final long keyMask;
    private final String[] names;
    private final FunctionType next;

    ChainHop(int hop, int length, int keys) {
      this.hop = hop;
      this.last = hop == length - 1;
      this.keys = keys;
      this.keyMask = (1L << Keys.bitsFor(keys)) - 1;
      this.names = Keys.names(keys);
      this.next = last ? null : Ids.chain(hop + 1);
    }

    @Override
    public void invoke(Context context, Object input) {
      Stats.invocations.increment();
      long packed = ((Int64Value) input).getValue();
      if (last) {
        context.send(Ids.EGRESS, packed);
      } else {
        int key = (int) (packed & keyMask);
        context.send(next, names[Keys.hop(key, hop + 1, keys)], input);
      }
    }
  }
}
