/**
 * The network lab helper itself (test/helpers/netns.ts): namespaces, a switch, addresses,
 * nftables loss, and that teardown (and the reaper of dead labs) leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { describeNetns, listNamespaces, NetLab, type Netns, run } from '../helpers/netns.js';

// A UDP echo server (prints its first line when bound) and a client that sends `count`
// datagrams and prints how many came back once the last one did, or "sent" if asked not to wait.
const ECHO = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7,process.argv[1],()=>console.log('ready'));`;
const CLIENT = `const s=require('dgram').createSocket('udp4');const [ip,n,wait]=process.argv.slice(1);let got=0,done=0;s.on('error',()=>{});s.on('message',()=>{if(++got===+n){console.log(got);process.exit(0)}});for(let i=0;i<+n;i++)s.send('x',7,ip,()=>{if(++done===+n&&wait==='0')s.close(()=>console.log('sent'))});`;

function firstLine(ns: Netns, script: string, args: string[]): Promise<string> {
  const child = ns.spawn(process.execPath, ['-e', script, ...args]);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before a line`)));
  });
}

const labs: NetLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) await lab.destroy();
});

describeNetns('network lab helper', () => {
  it('builds namespaces on a switch with private addresses; UDP flows; nftables loss drops it; destroy removes everything', async () => {
    const lab = NetLab.create();
    labs.push(lab);
    expect(lab.id).toMatch(/^rp-[0-9a-f]{6}$/);
    const [hub, a, b] = await Promise.all([lab.namespace('hub'), lab.namespace('a'), lab.namespace('b')]);
    expect((await listNamespaces()).filter((n) => n.startsWith(lab.id)).sort()).toEqual([`${lab.id}-a`, `${lab.id}-b`, `${lab.id}-hub`]);
    const sw = await lab.switch(hub);
    expect(sw.subnet.cidr).toMatch(/^10\.213\.\d{1,3}\.0\/24$/);
    // The subnet is routed nowhere in the root namespace.
    const rootRoutes = (await run('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout;
    expect(rootRoutes).not.toContain(`10.213.${sw.subnet.third}.`);
    const addrA = await sw.attach(a);
    const addrB = await sw.attach(b);
    expect([addrA, addrB]).toEqual([sw.subnet.host(2), sw.subnet.host(3)]);
    expect((await a.ip('route', 'show', 'default')).stdout).toContain(`via ${sw.gateway}`);

    await firstLine(b, ECHO, [addrB]);
    expect(await firstLine(a, CLIENT, [addrB, '5'])).toBe('5');

    // 100 % loss of UDP leaving `a`: every datagram counted and dropped.
    const loss = await a.addLoss({ percent: 100, hooks: ['output'] });
    expect(await firstLine(a, CLIENT, [addrB, '20', '0'])).toBe('sent');
    const counters = await loss.counters();
    expect(counters.dropped.output).toBeGreaterThanOrEqual(20);
    expect(counters.dropped.output).toBe(counters.seen.output);
    // TCP is not touched by a UDP rule.
    await a.exec(process.execPath, ['-e', `require('net').connect(9,'${addrB}').on('error',(e)=>{if(e.code!=='ECONNREFUSED')process.exit(1)})`]);
    await loss.remove();
    expect(await firstLine(a, CLIENT, [addrB, '5'])).toBe('5');

    const id = lab.id;
    await lab.destroy();
    expect((await listNamespaces()).filter((n) => n.startsWith(`${id}-`))).toEqual([]);
    expect(existsSync(`/run/rallypoint-netlab/${id}.json`)).toBe(false);
  });

  it('a new lab removes the namespaces of a lab whose process died without teardown', async () => {
    // A process that has exited: its pid is free.
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.once('exit', resolve));
    const stale = `rp-${randomBytes(3).toString('hex')}`;
    await run('ip', ['netns', 'add', `${stale}-x`]);
    mkdirSync('/run/rallypoint-netlab', { recursive: true });
    writeFileSync(`/run/rallypoint-netlab/${stale}.json`, JSON.stringify({ pid: dead.pid, namespaces: [`${stale}-x`] }));

    labs.push(NetLab.create());
    expect(await listNamespaces()).not.toContain(`${stale}-x`);
    expect(existsSync(`/run/rallypoint-netlab/${stale}.json`)).toBe(false);
  });
});
