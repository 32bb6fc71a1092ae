import { Migration } from '@mikro-orm/migrations';

/** Records when a task's end was announced, so events lost to a Redis failure are re-sent. */
export class Migration20261122180000_task_notified_at extends Migration {
  override name = 'Migration20261122180000_task_notified_at';

  override up(): void | Promise<void> {
    this.addSql(`alter table "tasks" add column "notified_at" timestamptz null;`);
    // Tasks that ended before this migration were announced by the code of the time.
    this.addSql(`update "tasks" set "notified_at" = "finished_at" where "status" in ('completed', 'failed', 'cancelled');`);
    this.addSql(
      `create index "tasks_unnotified_index" on "tasks" ("finished_at") where notified_at is null and status in ('completed', 'failed', 'cancelled');`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index if exists "tasks_unnotified_index";`);
    this.addSql(`alter table "tasks" drop column "notified_at";`);
  }
}
