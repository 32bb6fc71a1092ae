import { expect } from 'chai';
import { migrate } from '../src/db/migrate.js';
import { migrationsList } from '../src/db/migrations/index.js';
import { createOrm } from '../src/db/orm.js';
import { runCli } from './support/cli.js';
import {
  createDatabase,
  databaseExists,
  databaseUrlFor,
  dropDatabase,
  redisUrl,
  uniqueDatabaseName,
  withDb,
} from './support/harness.js';

const TABLES = ['agents', 'chat_sessions', 'messages', 'tasks', 'users'];
const allMigrations = migrationsList.map((m) => m.name);

async function schemaOf(databaseUrl: string) {
  return withDb(async (db) => {
    const tables = await db.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    );
    const applied = await db.query('SELECT name FROM mikro_orm_migrations ORDER BY id');
    return { tables: tables.rows.map((r) => r.table_name as string), applied: applied.rows.map((r) => r.name as string) };
  }, databaseUrl);
}

describe('Migrations', () => {
  const created: string[] = [];
  afterEach(async () => {
    await Promise.all(created.splice(0).map((name) => dropDatabase(name)));
  });

  it('applies the initial migration to an empty database, and nothing on a second run', async () => {
    const name = uniqueDatabaseName('cadre_migrate');
    created.push(name);
    const url = await createDatabase(name);

    const first = await migrate(url);
    expect(first).to.deep.equal(allMigrations);
    expect(first[0]).to.match(/_initial$/);
    const schema = await schemaOf(url);
    expect(schema.tables).to.include.members(TABLES);
    expect(schema.applied).to.deep.equal(allMigrations);

    expect(await migrate(url)).to.deep.equal([]);
    expect((await schemaOf(url)).applied).to.deep.equal(allMigrations);
  });

  it('leaves no difference between the entities and the migrated schema (every change has a migration)', async () => {
    const name = uniqueDatabaseName('cadre_migrate');
    created.push(name);
    const url = await createDatabase(name);
    await migrate(url);
    const orm = await createOrm({ databaseUrl: url, poolMax: 1 });
    try {
      expect(await orm.schema.getUpdateSchemaSQL()).to.equal('');
    } finally {
      await orm.close(true);
    }
  });

  it('creates the database first when it does not exist', async () => {
    const name = uniqueDatabaseName('cadre_migrate');
    created.push(name);
    expect(await databaseExists(name)).to.equal(false);
    expect(await migrate(databaseUrlFor(name))).to.deep.equal(allMigrations);
    expect(await databaseExists(name)).to.equal(true);
  });

  it('lets two processes migrate the same brand-new database at once: both succeed, the schema is applied once', async function () {
    this.timeout(60_000);
    const name = uniqueDatabaseName('cadre_migrate');
    created.push(name);
    const url = await createDatabase(name);
    const env = { DATABASE_URL: url, REDIS_URL: redisUrl, JWT_SECRET: 'migration-test-secret', LOG_LEVEL: 'warn' };
    const [a, b] = await Promise.all([runCli(['migrate'], env), runCli(['migrate'], env)]);
    expect(a.code, `first process: ${a.stderr}`).to.equal(0);
    expect(b.code, `second process: ${b.stderr}`).to.equal(0);
    // The advisory lock serializes them: one applied the migration, the other found nothing to do.
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).to.equal(`applied: ${allMigrations.join(', ')}\n`);
    expect(outputs[1]).to.equal('database schema is up to date\n');
    const schema = await schemaOf(url);
    expect(schema.applied).to.deep.equal(allMigrations);
    expect(schema.tables).to.include.members(TABLES);
  });

  it('lets several callers race to create a database that does not exist yet, all succeeding', async () => {
    // Concurrent CREATE DATABASE of one name fails with 42P04 or, when truly simultaneous, 23505.
    const name = uniqueDatabaseName('cadre_migrate');
    created.push(name);
    const url = databaseUrlFor(name);
    const results = await Promise.allSettled([migrate(url), migrate(url), migrate(url), migrate(url)]);
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [`${r.reason?.code}: ${r.reason?.message}`] : []));
    expect(failures, 'rejected migrate() calls').to.deep.equal([]);
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    expect(applied).to.deep.equal(allMigrations);
    expect((await schemaOf(url)).applied).to.deep.equal(allMigrations);
  });
});
