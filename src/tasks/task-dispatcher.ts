import type { Logger } from 'pino';
import type { AgentQueues } from '../jobs/agent-queues.js';
import type { ITask } from './task.entity.js';

/**
 * Puts a session's next task on its agent's queue, after a message is posted and after a
 * task of the session ends; enqueueing is idempotent (job id = task id).
 */
export class TaskDispatcher {
  constructor(
    private readonly queues: AgentQueues,
    private readonly logger: Logger,
  ) {}

  async enqueue(task: Pick<ITask, 'id' | 'sessionId' | 'agentId'>): Promise<void> {
    if (!task.agentId) return;
    await this.queues.enqueue(task.agentId, 'agent.run', { taskId: task.id, sessionId: task.sessionId, agentId: task.agentId }, task.id);
  }

  /** Like `enqueue`; a failure is logged and left to the sweeper. */
  async enqueueSafely(task: Pick<ITask, 'id' | 'sessionId' | 'agentId'>): Promise<void> {
    try {
      await this.enqueue(task);
    } catch (err) {
      this.logger.warn({ err, task_id: task.id }, 'could not enqueue the next task; the sweeper will retry');
    }
  }
}
