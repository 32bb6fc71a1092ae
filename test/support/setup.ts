/**
 * Mocha global fixtures (loaded through `require` in .mocharc.json): one database, one Redis
 * prefix and one API for the whole run, torn down at the end even when tests fail.
 */
import { startHarness, stopHarness } from './harness.js';

export async function mochaGlobalSetup(): Promise<void> {
  await startHarness();
}

export async function mochaGlobalTeardown(): Promise<void> {
  await stopHarness();
}
