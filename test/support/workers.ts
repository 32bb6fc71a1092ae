/**
 * Real worker processes (`src/cli.ts worker`) on the run's database and Redis prefix, for
 * tests where behaviour across processes matters (limits, crashes, draining).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { harnessEnv, repoRoot } from './harness.js';

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process printed, for diagnosing a failure. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process ended. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<WorkerProcess>();

/** Settings that make crash recovery and idling fast enough to test. */
export const fastWorkerEnv = {
  WORKER_LOCK_MS: '2000',
  WORKER_STALLED_INTERVAL_MS: '1000',
  WORKER_IDLE_CLOSE_MS: '3000',
  SWEEP_INTERVAL_MS: '1000',
  SHUTDOWN_GRACE_MS: '3000',
  DELTA_FLUSH_MS: '10',
  LLM_MAX_RETRIES: '3',
  LOG_LEVEL: 'info',
  // Two per process: an agent limit of 3 can only be reached with both processes working.
  WORKER_AGENT_CONCURRENCY: '2',
};

export async function startWorkerProcess(env: Record<string, string> = {}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli.ts'), 'worker'], {
    cwd: repoRoot,
    env: { ...process.env, ...harnessEnv({ ...fastWorkerEnv, ...env }), CADRE_SERVICE: 'worker' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const worker: WorkerProcess = {
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
  running.add(worker);
  void exited.then(() => running.delete(worker));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not become ready in 30 s:\n${output}`)), 30_000);
    child.on('message', (m: any) => {
      if (m?.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before it was ready:\n${output}`));
    });
  });
  return worker;
}

export async function stopAllWorkers(): Promise<void> {
  const all = [...running];
  for (const w of all) w.kill('SIGKILL');
  await Promise.all(all.map((w) => w.exited));
}
