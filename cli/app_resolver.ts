/** Resolves the `[app]` argument of `statefn start` into an application reference. */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { AppModuleRef } from '../api/load_app.js';

const MODULE_NAMES = ['index.ts', 'index.js', 'index.mjs', 'app.ts', 'app.js', 'app.mjs'];
const YAML_NAMES = ['module.yaml', 'module.yml'];

/** The embedded default: the fraud-detection example shipped with statefn. */
export function defaultApp(): { ref: AppModuleRef; description: string } {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`../examples/fraud_detection/index.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  return { ref: { module: url.href }, description: 'the embedded fraud-detection example' };
}

export function resolveApp(arg: string | undefined, params: unknown): { ref: AppModuleRef; description: string; isDefault: boolean } {
  if (arg === undefined) {
    const d = defaultApp();
    return { ...d, ref: { ...d.ref, params }, isDefault: true };
  }
  const path = resolve(arg);
  if (!existsSync(path)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `app '${arg}' does not exist (looked for ${path}); pass a directory, a module.yaml, or a .ts/.js module`,
    );
  }
  if (statSync(path).isDirectory()) {
    const mod = MODULE_NAMES.map((n) => join(path, n)).find((p) => existsSync(p));
    const yaml = YAML_NAMES.map((n) => join(path, n)).find((p) => existsSync(p));
    if (mod === undefined && yaml === undefined) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `app directory ${path} has none of ${[...YAML_NAMES, ...MODULE_NAMES].join(', ')}`);
    }
    const ref: AppModuleRef = { params };
    if (mod !== undefined) ref.module = pathToFileURL(mod).href;
    if (yaml !== undefined) ref.moduleYaml = yaml;
    return { ref, description: [mod, yaml].filter(Boolean).join(' + '), isDefault: false };
  }
  if (/\.ya?ml$/.test(path)) return { ref: { moduleYaml: path, params }, description: path, isDefault: false };
  if (/\.(m|c)?(t|j)s$/.test(path)) return { ref: { module: pathToFileURL(path).href, params }, description: path, isDefault: false };
  throw new StatefnError(ErrorCode.CONFIG_INVALID, `app '${arg}': expected a directory, a .yaml file or a .ts/.js module`);
}

export function describeRef(ref: AppModuleRef): string {
  return ref.module !== undefined && ref.module.startsWith('file:') ? fileURLToPath(ref.module) : String(ref.module ?? ref.moduleYaml);
}
