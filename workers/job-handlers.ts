import { DelayedError, type Job } from 'bullmq';
import { JOB_NAMES, type JobName, type JobPayloads } from '../src/jobs/job-types.js';
import { HandBack, type RunOutcome, type TaskRunner } from '../src/tasks/task-runner.js';

export interface HandlerContext {
  job: Job;
  token: string | undefined;
  shutdown: AbortSignal;
}

export type JobHandlers = { [N in JobName]: (payload: JobPayloads[N], ctx: HandlerContext) => Promise<unknown> };

/** Every job name the API can enqueue, mapped to what runs it. */
export function jobHandlers(runner: TaskRunner): JobHandlers {
  return {
    'agent.run': async (payload, { job, token, shutdown }): Promise<RunOutcome> => {
      try {
        return await runner.run(payload.taskId, shutdown);
      } catch (err) {
        if (err instanceof HandBack && token) {
          // Back to the queue for another worker, without spending one of the job's attempts.
          await job.moveToDelayed(Date.now() + 100, token);
          throw new DelayedError();
        }
        throw err;
      }
    },
  };
}

/** A worker must not boot with a job name it cannot run. */
export function assertHandlersComplete(handlers: Partial<Record<string, unknown>>): void {
  const missing = JOB_NAMES.filter((name) => typeof handlers[name] !== 'function');
  if (missing.length) throw new Error(`no handler for job name(s): ${missing.join(', ')}`);
}
