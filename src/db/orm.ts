import { fileURLToPath } from 'node:url';
import { MikroORM, defineConfig, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { Logger } from 'pino';
import { entities } from './entities.js';
import { migrationsList } from './migrations/index.js';

export const migrationsPath = fileURLToPath(new URL('./migrations', import.meta.url));

export interface OrmOptions {
  databaseUrl: string;
  logger?: Logger;
  poolMax?: number;
}

export function ormConfig({ databaseUrl, logger, poolMax = 10 }: OrmOptions): Options {
  return defineConfig({
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    // Entities are defined with defineEntity, so nothing needs reflection or discovery from disk.
    discovery: { warnWhenNoEntities: true },
    pool: { min: 0, max: poolMax },
    migrations: {
      path: migrationsPath,
      pathTs: migrationsPath,
      migrationsList,
      snapshot: false,
      transactional: true,
      allOrNothing: true,
      emit: 'ts',
      silent: true,
    },
    debug: false,
    logger: logger ? (msg: string) => logger.debug({ orm: true }, msg) : undefined,
  });
}

export async function createOrm(options: OrmOptions): Promise<MikroORM> {
  return MikroORM.init(ormConfig(options));
}

export type { MikroORM };
