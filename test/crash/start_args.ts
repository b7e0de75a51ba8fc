// The `statefn start` command line both crash harnesses run (runner.ts, bank_runner.ts).

/** Arguments after `node`: start `app` with its params on `stateDir`, no progress block, optionally a stop. */
export function startArgs(bin: string, app: string, params: unknown, stateDir: string, workers: number, stopAfter?: string): string[] {
  const args = [
    bin,
    'start',
    app,
    '--params',
    JSON.stringify(params),
    '--state-dir',
    stateDir,
    '--workers',
    String(workers),
    '--no-progress',
  ];
  if (stopAfter !== undefined) args.push('--stop-after', stopAfter);
  return args;
}
