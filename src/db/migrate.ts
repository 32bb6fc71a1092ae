import pg from 'pg';
import type { Logger } from 'pino';
import { createOrm } from './orm.js';

/** Arbitrary constant: every Cadre process that migrates takes this advisory lock first. */
const MIGRATION_LOCK_KEY = 727_266_001;

/** Creates the target database when it does not exist yet (first start on a fresh machine). */
export async function ensureDatabase(databaseUrl: string, logger?: Logger): Promise<void> {
  const url = new URL(databaseUrl);
  const dbName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!dbName) return;
  const probe = new pg.Client({ connectionString: databaseUrl });
  try {
    await probe.connect();
    return;
  } catch (err: any) {
    if (err?.code !== '3D000') throw err; // only "database does not exist" is ours to fix
  } finally {
    await probe.end().catch(() => {});
  }
  const adminUrl = new URL(databaseUrl);
  adminUrl.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${dbName.replace(/"/g, '""')}"`);
    logger?.info({ database: dbName }, 'created database');
  } catch (err: any) {
    // 42P04: another process created it first; 23505: it is creating it right now.
    if (err?.code !== '42P04' && err?.code !== '23505') throw err;
  } finally {
    await admin.end();
  }
}

/**
 * Applies pending migrations. Concurrent callers (several dynos releasing at once) serialize
 * on a PostgreSQL advisory lock, so the second one finds nothing left to do.
 */
export async function migrate(databaseUrl: string, logger?: Logger): Promise<string[]> {
  await ensureDatabase(databaseUrl, logger);
  const lock = new pg.Client({ connectionString: databaseUrl });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const orm = await createOrm({ databaseUrl, poolMax: 2 });
    try {
      const applied = await orm.migrator.up();
      const names = applied.map((m) => m.name);
      if (names.length) logger?.info({ migrations: names }, 'applied migrations');
      else logger?.debug('database schema is up to date');
      return names;
    } finally {
      await orm.close(true);
    }
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    await lock.end();
  }
}

/** Writes a new migration file with the difference between the entities and the database. */
export async function createMigration(databaseUrl: string, name?: string): Promise<string | undefined> {
  await migrate(databaseUrl);
  const orm = await createOrm({ databaseUrl, poolMax: 2 });
  try {
    const result = await orm.migrator.create(undefined, false, false, name);
    return result.diff.up.length ? result.fileName : undefined;
  } finally {
    await orm.close(true);
  }
}
