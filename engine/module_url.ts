/** Where an application module is: normalising a path to a file: URL, and telling TypeScript modules apart. */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';

/** True for a .ts/.mts/.cts/.tsx module (it needs tsx's loader). */
export function isTsModule(m: string): boolean {
  return /\.(m|c)?tsx?$/.test(m.split('?')[0]!);
}

/** Normalise a module path or URL to a file: URL string. */
export function moduleUrl(m: string): string {
  if (m.startsWith('file:') || m.startsWith('data:')) return m;
  return pathToFileURL(isAbsolute(m) ? m : resolvePath(m)).href;
}
