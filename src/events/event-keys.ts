/** `{sessionId}` is a hash tag: a session's keys share a Redis Cluster slot, so one script can touch both. */
export const eventKeys = (redisPrefix: string, sessionId: string) => ({
  seq: `${redisPrefix}:ev:{${sessionId}}:seq`,
  log: `${redisPrefix}:ev:{${sessionId}}:log`,
  channel: `${redisPrefix}:ev:${sessionId}`,
});

export const eventChannelPrefix = (redisPrefix: string) => `${redisPrefix}:ev:`;
