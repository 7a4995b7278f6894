/**
 * A client chooses the code of a close it starts (3000-4999). Each code used to become a
 * label value of rallypoint_closes_total: one client could create thousands of series in
 * the server's (and Prometheus's) memory. Codes nobody defined are now counted as `other`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startServer } from '../helpers/server.js';

afterEach(cleanup);

describe('adversarial: client-chosen close codes', () => {
  it('counts codes nobody defined under one label, other, and keeps the known ones', async () => {
    const srv = await startServer();
    const codes = [3000, 3999, 4000, 4321, 4999, 1000];
    for (const code of codes) {
      const c = await srv.connect();
      await c.close(code);
    }
    await srv.logs.closeCount(codes.length);
    const text = await srv.scrape();
    const series = text.split('\n').filter((l) => l.startsWith('rallypoint_closes_total{'));
    expect(series.map((l) => /code="([^"]+)"/.exec(l)?.[1]).sort()).toEqual(['1000', '4000', 'other']);
    expect(metricValue(text, 'rallypoint_closes_total', { code: 'other' })).toBe(4);
    // 4000 is the project's own (repeated bad-json): a client sending it is counted there.
    expect(metricValue(text, 'rallypoint_closes_total', { code: '4000' })).toBe(1);
  });
});
