/**
 * The `topic/partition` key under which the Kafka ingress keeps a partition's next offset: in
 * its position (what a checkpoint stores), in `specific-offsets` startup positions, and in the
 * offsets it commits to the consumer group.
 */

/** The key of a partition, `topic/partition`. */
export function tpKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/** The topic and partition of a key (Kafka topic names cannot contain `/`, so the last one separates them). */
export function splitTp(key: string): { topic: string; partition: number } {
  const i = key.lastIndexOf('/');
  return { topic: key.slice(0, i), partition: Number(key.slice(i + 1)) };
}
