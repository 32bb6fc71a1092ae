import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';

const command = process.argv[2] ?? 'start';

/** An error whose message is the whole story: printed without a stack trace. */
class UsageError extends Error {}

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof UsageError) {
    process.stderr.write(`cadre: ${err.message}\n`);
  } else {
    process.stderr.write(`cadre: ${(err as Error)?.stack ?? err}\n`);
  }
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  fail(err);
}
const logger = createLogger(config!.logLevel);

async function main(): Promise<void> {
  switch (command) {
    case 'migrate': {
      const { migrate } = await import('./db/migrate.js');
      const applied = await migrate(config.databaseUrl, logger);
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database schema is up to date\n');
      return;
    }
    case 'migration:create': {
      const { createMigration } = await import('./db/migrate.js');
      const file = await createMigration(config.databaseUrl, process.argv[3]);
      process.stdout.write(file ? `created ${file}: add it to src/db/migrations/index.ts\n` : 'no schema changes\n');
      return;
    }
    case 'web': {
      const { runWeb } = await import('./web.js');
      await runWeb(config, logger);
      return;
    }
    case 'worker': {
      const { runWorker } = await import('../workers/main.js');
      await runWorker(config, logger);
      return;
    }
    case 'make-admin': {
      const email = process.argv[3];
      if (!email) fail(new UsageError('usage: npm run make-admin -- <email>'));
      const { createOrm } = await import('./db/orm.js');
      const { setRole } = await import('./auth/auth.service.js');
      const orm = await createOrm({ databaseUrl: config.databaseUrl, poolMax: 1 });
      const ok = await setRole(orm.em.fork(), email, 'admin');
      await orm.close();
      if (!ok) fail(new UsageError(`no user with email ${email}`));
      process.stdout.write(`${email} is now an admin\n`);
      return;
    }
    case 'start':
      return start();
    default:
      fail(new UsageError(`unknown command "${command}" (start | web | worker | migrate | migration:create | make-admin)`));
  }
}

/** `npm start`: migrate, then run one web and one worker process, as the Procfile would. */
async function start(): Promise<void> {
  const { migrate } = await import('./db/migrate.js');
  await migrate(config.databaseUrl, logger);
  const self = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  let stopping = false;
  for (const role of ['web', 'worker'] as const) {
    const child = spawn(process.execPath, [...process.execArgv, self, role], {
      stdio: 'inherit',
      env: { ...process.env, CADRE_SERVICE: role },
    });
    child.on('exit', (code, signal) => {
      if (stopping) return;
      logger.error({ role, code, signal }, `${role} process exited unexpectedly; stopping`);
      stopping = true;
      for (const c of children) c.kill('SIGTERM');
      process.exitCode = code || 1; // a child that stops on its own is a failure, whatever its code
    });
    children.push(child);
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stopping = true;
      for (const c of children) c.kill('SIGTERM');
    });
  }
}

main().catch(fail);
