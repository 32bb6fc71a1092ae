import { Migration20261122171429_initial } from './Migration20261122171429_initial.js';
import { Migration20261122180000_task_notified_at } from './Migration20261122180000_task_notified_at.js';

/** Applied in this order. `npm run migration:create` writes new files; list them here. */
export const migrationsList = [
  { name: 'Migration20261122171429_initial', class: Migration20261122171429_initial },
  { name: 'Migration20261122180000_task_notified_at', class: Migration20261122180000_task_notified_at },
];
