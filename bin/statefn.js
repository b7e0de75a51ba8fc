#!/usr/bin/env node
// statefn command line. Runs the compiled engine from dist/ (built by `npm install` through the
// `prepare` script); in a checkout without dist/ it runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let cli;
if (existsSync(dist)) {
  cli = await import(dist.href);
} else {
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  // From source, an application's `import ... from 'statefn'` must reach the same TypeScript
  // sources the engine runs from (package.json's "statefn-source" export condition), not dist/:
  // two copies would hold two distinct App and Message classes. Worker threads get the condition
  // from the engine, which starts them with `--conditions=statefn-source` when it runs from source.
  register(
    'data:text/javascript,' +
      encodeURIComponent(
        'export function resolve(specifier, context, next) {' +
          " return next(specifier, { ...context, conditions: [...context.conditions, 'statefn-source'] }); }",
      ),
  );
  cli = await import(new URL('../cli/main.ts', import.meta.url).href);
}
process.exitCode = await cli.main(process.argv.slice(2));
// Exit explicitly: connectors or timers of a stopped engine must not keep the process alive.
process.exit(process.exitCode);
