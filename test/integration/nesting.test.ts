import { afterEach, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../signaling/protocol/index.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

/** `[[[...1...]]]` nested `depth` levels deep. */
const nested = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}1${']'.repeat(depth)}`);

describe('deeply nested JSON', () => {
  it(`relays data nested ${MAX_JSON_DEPTH} levels and refuses deeper with bad-message`, async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    b.client.send({ type: 'signal', to: a.id, data: nested(MAX_JSON_DEPTH) });
    expect(await a.client.next('signal')).toMatchObject({ from: b.id });
    b.client.send({ type: 'signal', to: a.id, data: nested(MAX_JSON_DEPTH + 1), ref: 'deep' });
    expect(await b.client.next('error')).toMatchObject({ code: 'bad-message', ref: 'deep' });
  });

  it('a few KB of [[[[ (thousands of levels) is bad-message, not an internal error, and the server keeps relaying', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    b.client.sendRaw(`{"type":"signal","to":${JSON.stringify(a.id)},"data":${'['.repeat(6000)}${']'.repeat(6000)}}`);
    expect(await b.client.next('error')).toMatchObject({ code: 'bad-message' });
    const c = await srv.connect();
    c.sendRaw(`{"type":"join","room":"x","meta":{"m":${'['.repeat(300)}${']'.repeat(300)}}}`);
    expect(await c.next('error')).toMatchObject({ code: 'bad-message' });
    b.client.send({ type: 'signal', to: a.id, data: { ok: true } });
    expect(await a.client.next('signal')).toMatchObject({ data: { ok: true } });
  });
});
