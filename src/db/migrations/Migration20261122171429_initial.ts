import { Migration } from '@mikro-orm/migrations';

export class Migration20261122171429_initial extends Migration {

  override name = 'Migration20261122171429_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "users" ("id" uuid not null, "email" varchar(320) not null, "password_hash" varchar(255) null, "role" varchar(16) not null default 'user', "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);

    this.addSql(`create table "chat_sessions" ("id" uuid not null, "user_id" uuid not null, "title" varchar(200) null, "message_count" int not null default 0, "last_message_at" timestamptz null, "last_activity_at" timestamptz not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "chat_sessions_user_activity_index" on "chat_sessions" ("user_id", "last_activity_at", "id");`);

    this.addSql(`create table "tasks" ("id" uuid not null, "user_id" uuid not null, "session_id" uuid not null, "agent_id" uuid null, "plan_id" uuid null, "status" varchar(24) not null default 'queued', "input" jsonb not null, "result" text null, "error" jsonb null, "usage" jsonb not null, "attempts" int not null default 0, "created_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "tasks_session_id_created_at_index" on "tasks" ("session_id", "created_at", "id");`);
    this.addSql(`create index "tasks_agent_id_status_index" on "tasks" ("agent_id", "status");`);
    this.addSql(`create index "tasks_status_created_at_index" on "tasks" ("status", "created_at");`);

    this.addSql(`create table "messages" ("id" uuid not null, "session_id" uuid not null, "role" varchar(16) not null, "content" text not null, "agent_id" uuid null, "task_id" uuid null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "messages_session_id_created_at_id_index" on "messages" ("session_id", "created_at", "id");`);
    this.addSql(`alter table "messages" add constraint "messages_task_id_role_unique" unique ("task_id", "role");`);

    this.addSql(`create table "agents" ("id" uuid not null, "user_id" uuid not null, "name" varchar(100) not null, "description" text not null default '', "system_prompt" text not null, "model" varchar(200) not null, "tools" jsonb not null, "capabilities" jsonb not null, "concurrency_limit" int not null default 3, "params" jsonb not null, "status" varchar(16) not null default 'active', "version" int not null default 1, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "agents_user_id_created_at_id_index" on "agents" ("user_id", "created_at", "id");`);
    this.addSql(`alter table "agents" add constraint "agents_user_id_name_unique" unique ("user_id", "name");`);

    this.addSql(`alter table "chat_sessions" add constraint "chat_sessions_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;`);

    this.addSql(`alter table "tasks" add constraint "tasks_session_id_foreign" foreign key ("session_id") references "chat_sessions" ("id") on delete cascade;`);

    this.addSql(`alter table "messages" add constraint "messages_session_id_foreign" foreign key ("session_id") references "chat_sessions" ("id") on delete cascade;`);

    this.addSql(`alter table "agents" add constraint "agents_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "chat_sessions" drop constraint "chat_sessions_user_id_foreign";`);
    this.addSql(`alter table "agents" drop constraint "agents_user_id_foreign";`);
    this.addSql(`alter table "tasks" drop constraint "tasks_session_id_foreign";`);
    this.addSql(`alter table "messages" drop constraint "messages_session_id_foreign";`);

    this.addSql(`drop table if exists "users" cascade;`);
    this.addSql(`drop table if exists "chat_sessions" cascade;`);
    this.addSql(`drop table if exists "tasks" cascade;`);
    this.addSql(`drop table if exists "messages" cascade;`);
    this.addSql(`drop table if exists "agents" cascade;`);
  }

}
