/**
 * The one map of job names to payloads, shared by the API (which enqueues) and the
 * workers (which must have a handler for every name, or refuse to boot).
 * Jobs carry ids only: the rows in PostgreSQL are the truth.
 */
export interface JobPayloads {
  /** Run one task of an agent in direct mode. */
  'agent.run': { taskId: string; sessionId: string; agentId: string };
}

export type JobName = keyof JobPayloads;

export const JOB_NAMES: readonly JobName[] = ['agent.run'];
