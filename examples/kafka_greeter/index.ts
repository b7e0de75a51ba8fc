/**
 * The StateFun greeter on Kafka (module.yaml next to this file brings the Kafka ingress and the
 * exactly-once Kafka egress). Each record of the names topic (key = the user id, value = the name
 * as UTF-8) greets that user; the function remembers how often it has seen each one.
 *
 *     npx statefn start examples/kafka_greeter
 *
 * See the README's Kafka quick start for a local broker, producing names and reading greetings.
 */
import { createApp, kafkaProducerRecord, Types } from 'statefn';

const NAME = Types.raw('greeter.types/Name');
const GREETINGS_EGRESS = 'greeter.io/greetings';
const utf8 = new TextDecoder();

export default function greeterApp() {
  const greetingsTopic = process.env.GREETINGS_TOPIC ?? 'greetings';
  return createApp().function({
    typename: 'greeter.fns/greeter',
    specs: [{ name: 'seen', type: Types.int }],
    handler(ctx, msg) {
      const seen = (ctx.storage.seen ?? 0) + 1;
      ctx.storage.seen = seen;
      const name = utf8.decode(msg.as(NAME));
      const greeting = seen === 1 ? `Hello ${name}! Nice to meet you.` : `Hello ${name}! I have seen you ${seen} times.`;
      ctx.egress(GREETINGS_EGRESS, kafkaProducerRecord({ topic: greetingsTopic, key: ctx.self.id, value: greeting }));
    },
  });
}
