import { defineConfig } from 'vitest/config';

/**
 * Tests that measure latency tails in the network-namespace lab. They run after everything
 * else, one file at a time, so the browser and peer suites do not steal their CPU.
 */
const TIMING = ['test/integration/werift-partial-reliability.test.ts'];

export default defineConfig({
  test: {
    // Real sockets and child processes: give slow CI machines room. No test sleeps in place of
    // an event it can await; the waits left pace senders, poll a condition, or are the quiet
    // period of a negative (nothing more arrives, no fallback happens), each saying so.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts'], exclude: TIMING, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: TIMING, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
