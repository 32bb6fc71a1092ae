import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Agent, type ModelParams } from '../agents/agent.entity.js';
import type { EventLog } from '../events/event-log.js';
import { LlmError, type ChatMessage, type LlmClients } from '../llm/llm-client.js';
import { presentMessage } from '../sessions/session.service.js';
import type { ITask, TaskError } from './task.entity.js';
import type { TaskDispatcher } from './task-dispatcher.js';
import { completeTask, failTask, presentTask, startAttempt } from './task.service.js';

export type RunOutcome = 'completed' | 'failed' | 'cancelled' | 'skipped' | 'handed_back';

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
  dispatcher: TaskDispatcher;
  logger: Logger;
}

/** Rough token estimate (4 characters a token) for the history budget; no tokenizer needed. */
const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4;

/**
 * Coalesces token chunks into `message.delta` events: at most one Redis write per
 * `flushMs` per task, in order, however fast the model streams.
 */
class DeltaBuffer {
  private text = '';
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly flushMs: number,
    private readonly publish: (text: string) => Promise<unknown>,
  ) {}

  push(chunk: string): void {
    this.text += chunk;
    if (this.flushMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  flush(): Promise<unknown> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.text) {
      const text = this.text;
      this.text = '';
      this.chain = this.chain.then(() => this.publish(text)).catch(() => {});
    }
    return this.chain;
  }
}

/** Runs one direct-mode task: prompt, streamed model call, stored answer, events. */
export class TaskRunner {
  private readonly inflight = new Map<string, AbortController>();

  constructor(private readonly deps: TaskRunnerDeps) {}

  get running(): number {
    return this.inflight.size;
  }

  /** Aborts the model call of a task running in this process (cancel). */
  abort(taskId: string, reason: 'cancelled' | 'shutdown'): boolean {
    const controller = this.inflight.get(taskId);
    controller?.abort(reason);
    return Boolean(controller);
  }

  abortAll(reason: 'shutdown'): void {
    for (const controller of this.inflight.values()) controller.abort(reason);
  }

  /**
   * System prompt, then the session's earlier turns in task order (a message posted while the
   * session was busy must still see the answers that came before it), newest first within
   * the message and token budgets, then the new message.
   */
  async buildPrompt(em: EntityManager, task: ITask, systemPrompt: string): Promise<ChatMessage[]> {
    const { historyMaxMessages, historyMaxTokens } = this.deps.config;
    const history: ChatMessage[] = [];
    if (historyMaxMessages > 0) {
      const previous = await em.execute<{ role: 'user' | 'assistant'; content: string }[]>(
        `select m.role, m.content from messages m join tasks t on t.id = m.task_id
         where m.session_id = ? and m.role in ('user', 'assistant') and (t.created_at, t.id) < (?, ?)
         order by t.created_at desc, t.id desc, m.created_at desc, m.id desc
         limit ?`,
        [task.sessionId, task.createdAt, task.id, historyMaxMessages],
      );
      let budget = historyMaxTokens - estimateTokens(systemPrompt) - estimateTokens(task.input.content);
      for (const m of previous) {
        budget -= estimateTokens(m.content);
        if (budget < 0) break;
        history.unshift({ role: m.role, content: m.content });
      }
    }
    return [{ role: 'system', content: systemPrompt }, ...history, { role: 'user', content: task.input.content }];
  }

  async run(taskId: string, shutdown?: AbortSignal): Promise<RunOutcome> {
    const { orm, llm, events, config, logger } = this.deps;
    const em = orm.em.fork();
    const task = await startAttempt(em, taskId);
    if (!task) return 'skipped';
    const log = logger.child({ task_id: task.id, session_id: task.sessionId, agent_id: task.agentId });
    const base = { session_id: task.sessionId, task_id: task.id, agent_id: task.agentId };

    const agent = task.agentId ? await em.findOne(Agent, { id: task.agentId }) : null;
    if (!agent) return this.fail(em, task, { code: 'agent_not_found', message: 'the agent was deleted before the task ran' });

    const target = llm.describe(agent.model);
    await events.append({ ...base, type: 'task.started', data: { attempt: task.attempts, model: target.model, provider: target.provider } });

    const params: ModelParams = { ...agent.params, ...(task.input.params ?? {}) };
    const messages = await this.buildPrompt(em, task, agent.systemPrompt);
    const controller = new AbortController();
    this.inflight.set(task.id, controller);
    const signals = [controller.signal, AbortSignal.timeout(config.taskTimeoutMs)];
    if (shutdown) signals.push(shutdown);
    const signal = AbortSignal.any(signals);
    const deltas = new DeltaBuffer(config.deltaFlushMs, (text) => events.append({ ...base, type: 'message.delta', data: { text } }));

    try {
      const answer = await llm.streamChat({ model: agent.model, messages, params, signal, onDelta: (t) => deltas.push(t) });
      await deltas.flush();
      const done = await completeTask(em, task.id, { text: answer.text, usage: answer.usage });
      if (!done) return 'cancelled'; // cancelled (or deleted) while the model was answering
      await events.appendMany([
        { ...base, type: 'message.created', data: { message: presentMessage(done.message) } },
        { ...base, type: 'task.completed', data: { task: presentTask(done.task), message_id: done.message.id } },
      ]);
      await this.deps.dispatcher.advance(em, task.sessionId);
      log.info({ usage: answer.usage, attempts: task.attempts }, 'task completed');
      return 'completed';
    } catch (err) {
      await deltas.flush();
      const reason = signal.reason;
      if (shutdown?.aborted && reason === shutdown.reason) throw new HandBack();
      if (controller.signal.aborted && controller.signal.reason === 'cancelled') return 'cancelled';
      if (controller.signal.aborted && controller.signal.reason === 'shutdown') throw new HandBack();
      if (reason instanceof DOMException && reason.name === 'TimeoutError') {
        return this.fail(em, task, { code: 'task_timeout', message: `the task did not finish within ${config.taskTimeoutMs} ms` });
      }
      if (err instanceof LlmError) {
        log.warn({ code: err.code, status: err.status }, 'model call failed');
        return this.fail(em, task, { code: err.code, message: err.message });
      }
      throw err; // infrastructure trouble: let the queue retry the job
    } finally {
      this.inflight.delete(task.id);
    }
  }

  /** Ends a task as failed, publishes `task.failed` and lets the session move on. */
  async fail(em: EntityManager, task: Pick<ITask, 'id' | 'sessionId' | 'agentId'>, error: TaskError): Promise<RunOutcome> {
    const failed = await failTask(em, task.id, error);
    if (!failed) return 'skipped';
    await this.deps.events.append({
      session_id: failed.sessionId,
      task_id: failed.id,
      agent_id: failed.agentId,
      type: 'task.failed',
      data: { task: presentTask(failed), error },
    });
    await this.deps.dispatcher.advance(em, failed.sessionId);
    return 'failed';
  }
}
