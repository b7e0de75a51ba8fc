/** The connectors that ship with statefn. */
export { createRng, Xoshiro128, type Rng } from './generator/rng.js';
export { GeneratorIngress, type GeneratorIngressOptions } from './generator/generator_ingress.js';
export { HttpIngress, type HttpIngressOptions, type HttpIngressStats } from './http/http_ingress.js';
export {
  FileEgress,
  StdoutEgress,
  formatJsonLine,
  formatTextLine,
  type FileEgressOptions,
  type StdoutEgressOptions,
} from './file/file_egress.js';
export { MemoryIngress, type MemoryIngressOptions } from './memory/memory_ingress.js';
export { MemoryEgress, type MemoryEgressCondition, type MemoryEgressOptions } from './memory/memory_egress.js';
