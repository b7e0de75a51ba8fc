#!/usr/bin/env node
// statefn command line. Runs the compiled engine from dist/ (built by `npm install` through the
// `prepare` script); in a checkout without dist/ it runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let cli;
if (existsSync(dist)) {
  cli = await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(new URL('../cli/main.ts', import.meta.url).href);
}
process.exitCode = await cli.main(process.argv.slice(2));
// Exit explicitly: connectors or timers of a stopped engine must not keep the process alive.
process.exit(process.exitCode);
