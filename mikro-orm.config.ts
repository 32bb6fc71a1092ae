import { loadConfig } from './src/config.js';
import { ormConfig } from './src/db/orm.js';

// For MikroORM's own CLI; the product itself builds this config in src/db/orm.ts.
export default ormConfig({ databaseUrl: loadConfig().databaseUrl });
