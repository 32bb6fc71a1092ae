import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ModelParams } from '../agents/agent.entity.js';
import type { EventLog } from '../events/event-log.js';
import { LlmError, type ChatMessage, type LlmClients } from '../llm/llm-client.js';
import type { ITask, TaskError } from './task.entity.js';
import type { TaskAnnouncer } from './task-announcer.js';
import { claimTask, completeTaskRow, type ClaimedTask } from './task-store.js';

export type RunOutcome = 'completed' | 'failed' | 'cancelled' | 'skipped';

/** Thrown inside a run when the process is shutting down: the job goes back to the queue. */
export class HandBack extends Error {
  constructor() {
    super('worker shutting down: task handed back to the queue');
  }
}

export interface TaskRunnerDeps {
  config: Config;
  orm: MikroORM;
  llm: LlmClients;
  events: EventLog;
  announcer: TaskAnnouncer;
  logger: Logger;
  /** How often running tasks are checked for a cancel whose message was missed. Default 2000 ms. */
  cancelCheckMs?: number;
}

/** Rough token estimate (4 characters a token) for the history budget; no tokenizer needed. */
const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4;

/**
 * Coalesces token chunks into `message.delta` events: at most one Redis write per
 * `flushMs` per task, however fast the model streams. Appends are not chained on each
 * other's replies: commands on one connection run in the order they are sent (the script is
 * preloaded, so no NOSCRIPT retry can reorder them), which keeps the events in order.
 */
class DeltaBuffer {
  private text = '';
  private timer: NodeJS.Timeout | undefined;
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly flushMs: number,
    private readonly publish: (text: string) => Promise<unknown>,
  ) {}

  push(chunk: string): void {
    this.text += chunk;
    if (this.flushMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** Sends what is buffered; resolves once everything sent so far is stored. */
  flush(): Promise<unknown> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.text) {
      const text = this.text;
      this.text = '';
      const previous = this.last;
      const sent = this.publish(text);
      this.last = Promise.allSettled([previous, sent]);
    }
    return this.last;
  }
}

/** Runs one direct-mode task: prompt, streamed model call, stored answer, events. */
export class TaskRunner {
  private readonly inflight = new Map<string, AbortController>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly deps: TaskRunnerDeps) {
    // Cancels travel by pub/sub, which drops messages while a connection is down: the
    // database is asked too, once for all running tasks of this process.
    this.watchdog = setInterval(() => void this.checkCancelled(), deps.cancelCheckMs ?? 2000);
    this.watchdog.unref();
  }

  private async checkCancelled(): Promise<void> {
    if (!this.inflight.size) return;
    try {
      const rows = await this.deps.orm.em
        .fork()
        .execute<{ id: string }[]>(`select id from tasks where id in (?) and status = 'cancelled'`, [[...this.inflight.keys()]]); // arrays expand to a list
      for (const { id } of rows) this.abort(id, 'cancelled');
    } catch (err) {
      this.deps.logger.warn({ err }, 'cancel check failed');
    }
  }

  stop(): void {
    clearInterval(this.watchdog);
  }

  get running(): number {
    return this.inflight.size;
  }

  /** Aborts the model call of a task running in this process: cancelled, or its job lock was lost. */
  abort(taskId: string, reason: 'cancelled' | 'lock_lost'): boolean {
    const controller = this.inflight.get(taskId);
    controller?.abort(reason);
    return Boolean(controller);
  }

  /**
   * System prompt, then the session's earlier turns in task order (a message posted while the
   * session was busy must still see the answers that came before it), newest first within
   * the token budget, then the new message.
   */
  buildPrompt(claimed: ClaimedTask, systemPrompt: string): ChatMessage[] {
    const { historyMaxTokens } = this.deps.config;
    const { task } = claimed;
    const history: ChatMessage[] = [];
    let budget = historyMaxTokens - estimateTokens(systemPrompt) - estimateTokens(task.input.content);
    for (let i = claimed.history.length - 1; i >= 0; i--) {
      const m = claimed.history[i]!;
      budget -= estimateTokens(m.content);
      if (budget < 0) break;
      history.unshift({ role: m.role, content: m.content });
    }
    return [{ role: 'system', content: systemPrompt }, ...history, { role: 'user', content: task.input.content }];
  }

  async run(taskId: string, shutdown?: AbortSignal): Promise<RunOutcome> {
    // Registered before the claim, so a cancel that lands right after it still aborts.
    const controller = new AbortController();
    this.inflight.set(taskId, controller);
    try {
      return await this.attempt(taskId, controller, shutdown);
    } finally {
      this.inflight.delete(taskId);
    }
  }

  private async attempt(taskId: string, controller: AbortController, shutdown?: AbortSignal): Promise<RunOutcome> {
    const { orm, llm, events, config, logger, announcer } = this.deps;
    const em = orm.em.fork();
    const claimed = await claimTask(em, taskId, config.historyMaxMessages);
    if (!claimed) {
      // Ended already; if its end was never announced (Redis failed after the commit), do it now.
      const ended = await announcer.pending(em, taskId);
      if (ended) await announcer.announce(em, ended);
      return 'skipped';
    }
    const { task, agent } = claimed;
    const log = logger.child({ task_id: task.id, session_id: task.sessionId, agent_id: task.agentId });
    const base = { session_id: task.sessionId, task_id: task.id, agent_id: task.agentId };
    if (!agent) return this.fail(em, task, { code: 'agent_not_found', message: 'the agent was deleted before the task ran' });

    const target = llm.describe(agent.model);
    // Not awaited: the model call starts now; later events are sent after it on the same connection.
    const started = events.append({ ...base, type: 'task.started', data: { attempt: task.attempts, model: target.model, provider: target.provider } });
    const params: ModelParams = { ...agent.params, ...(task.input.params ?? {}) };
    const messages = this.buildPrompt(claimed, agent.systemPrompt);
    const signals = [controller.signal, AbortSignal.timeout(config.taskTimeoutMs)];
    if (shutdown) signals.push(shutdown);
    const signal = AbortSignal.any(signals);
    started.catch((err) => log.warn({ err }, 'could not publish task.started'));
    const deltas = new DeltaBuffer(config.deltaFlushMs, (text) =>
      events.append({ ...base, type: 'message.delta', data: { text, attempt: task.attempts } }).catch((err) => log.warn({ err }, 'could not publish a delta')),
    );

    try {
      const answer = await llm.streamChat({ model: agent.model, messages, params, signal, onDelta: (t) => deltas.push(t) });
      const [done] = await Promise.all([completeTaskRow(em, task.id, { text: answer.text, usage: answer.usage }), deltas.flush()]);
      if (!done) return 'cancelled'; // cancelled (or deleted) while the model was answering
      await announcer.announce(em, done.task, done.message);
      log.debug({ usage: answer.usage, attempts: task.attempts }, 'task completed');
      return 'completed';
    } catch (err) {
      await deltas.flush();
      // Whichever signal fired first decides: shutdown, cancel, lost lock or the task timeout.
      const reason = signal.reason;
      if (shutdown?.aborted && reason === shutdown.reason) throw new HandBack();
      if (reason === 'cancelled') return 'cancelled';
      if (reason === 'lock_lost') return 'skipped'; // another worker runs it
      if (reason instanceof DOMException && reason.name === 'TimeoutError') {
        return this.fail(em, task, { code: 'task_timeout', message: `the task did not finish within ${config.taskTimeoutMs} ms` });
      }
      if (err instanceof LlmError) {
        log.warn({ code: err.code, status: err.status }, 'model call failed');
        return this.fail(em, task, { code: err.code, message: err.message });
      }
      throw err; // infrastructure trouble: let the queue retry the job
    }
  }

  private async fail(em: EntityManager, task: Pick<ITask, 'id'>, error: TaskError): Promise<RunOutcome> {
    return (await this.deps.announcer.fail(em, task.id, error)) ? 'failed' : 'skipped';
  }
}
