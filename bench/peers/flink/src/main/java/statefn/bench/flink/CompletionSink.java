package statefn.bench.flink;

import org.apache.flink.statefun.flink.harness.io.SerializableConsumer;

/** The egress consumer: one call per completed message, in the function operator's task thread. */
final class CompletionSink implements SerializableConsumer<Long> {
  private static final long serialVersionUID = 1;
  private final int keyBits;

  CompletionSink(int keyBits) {
    this.keyBits = keyBits;
  }

  @Override
  public void accept(Long packed) {
    Stats.complete(packed >>> keyBits);
  }
}
