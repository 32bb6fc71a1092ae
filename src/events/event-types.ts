/**
 * The one map of client event types to their `data` payloads, shared by the API (which
 * streams them) and the workers (which publish most of them).
 */
export interface EventPayloads {
  'message.created': { message: Record<string, unknown> };
  'task.queued': { task: Record<string, unknown>; position: number };
  /** `attempt` > 1 means an earlier attempt was interrupted: discard its partial deltas. */
  'task.started': { attempt: number; model: string; provider: string };
  /** `attempt` matches the task.started it belongs to. */
  'message.delta': { text: string; attempt: number };
  'tool.call': Record<string, unknown>;
  'tool.result': Record<string, unknown>;
  'approval.required': Record<string, unknown>;
  'approval.resolved': Record<string, unknown>;
  'task.completed': { task: Record<string, unknown>; message_id: string };
  'task.failed': { task: Record<string, unknown>; error: { code: string; message: string } };
  'task.cancelled': { task: Record<string, unknown> };
  'plan.created': Record<string, unknown>;
  'plan.completed': Record<string, unknown>;
  'plan.failed': Record<string, unknown>;
  'context.retrieved': Record<string, unknown>;
  error: { code: string; message: string };
}

export type EventType = keyof EventPayloads;

export interface EventInput<T extends EventType = EventType> {
  type: T;
  session_id: string;
  task_id?: string | null;
  plan_id?: string | null;
  agent_id?: string | null;
  data: EventPayloads[T];
}

/** As delivered to clients: `id` increases strictly within a session. */
export interface CadreEvent<T extends EventType = EventType> extends EventInput<T> {
  id: number;
  ts: string;
}
