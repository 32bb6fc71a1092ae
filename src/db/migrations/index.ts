import { Migration20261122171429_initial } from './Migration20261122171429_initial.js';

/** Applied in this order. `npm run migration:create` writes new files; list them here. */
export const migrationsList = [{ name: 'Migration20261122171429_initial', class: Migration20261122171429_initial }];
