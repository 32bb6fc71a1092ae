import type { Logger } from 'pino';
import type { Config } from '../src/config.js';

export async function runWorker(_config: Config, logger: Logger): Promise<void> {
  logger.info('worker started');
  await new Promise(() => {});
}
