/**
 * The network lab for tests: bench/lib/netns.mjs (one implementation, shared with the
 * benchmarks: namespaces `rp-<6 hex>-<role>`, nothing created in the root namespace,
 * teardown on every exit path and a reaper for labs whose process died), re-exported with
 * its types, plus what only tests need: `useNetLab` (a lab per test file, destroyed and
 * checked in afterAll) and `describeNetns`/`requireNetns`, which skip with a printed reason
 * outside CI and FAIL under CI.
 *
 * Needs root, iproute2 and nftables. `canUseNetns()` says whether they are usable.
 */
import { afterAll, describe, it } from 'vitest';
import { canUseNetns, listNamespaces, NetLab } from '../../bench/lib/netns.mjs';

export type { DropOptions, ExecResult, LossCounters, LossOptions, LossRule, NetnsCapability, NsSpawnOptions } from '../../bench/lib/netns.mjs';
export {
  canUseNetns,
  listNamespaces,
  NETNS_PREFIX,
  NetLab,
  Netns,
  realtimePrefix,
  run,
  Subnet,
  Switch,
} from '../../bench/lib/netns.mjs';

/** CI=true (or any value but false/0): a missing capability must fail, not skip. */
export function isCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * Use inside a test: skips it (with the reason printed) when the lab cannot be built,
 * except under CI where it throws, so a CI machine without root fails loudly.
 */
export function requireNetns(ctx: { skip(note?: string): void }): void {
  const cap = canUseNetns();
  if (cap.ok) return;
  if (isCI()) throw new Error(`CI=true but the network lab is unavailable: ${cap.reason}`);
  console.warn(`[netns] skipping: ${cap.reason}`);
  ctx.skip(cap.reason);
}

/** Alias of requireNetns, under the name the lab issues use. */
export const requireRoot = requireNetns;

/**
 * `describe` for suites that need the lab: outside CI it is skipped with the reason
 * printed; under CI a missing capability turns it into one failing test.
 */
export function describeNetns(name: string, fn: () => void): void {
  const cap = canUseNetns();
  if (cap.ok) {
    describe(name, fn);
  } else if (isCI()) {
    describe(name, () => {
      it('needs root, ip netns and nftables (CI=true: a missing capability fails)', () => {
        throw new Error(`CI=true but the network lab is unavailable: ${cap.reason}`);
      });
    });
  } else {
    console.warn(`[netns] skipping "${name}": ${cap.reason}`);
    describe.skip(name, fn);
  }
}

/**
 * A lab for the current test file: created lazily by the returned getter, destroyed in
 * afterAll, which then checks that none of its namespaces is left.
 */
export function useNetLab(): () => NetLab {
  let lab: NetLab | undefined;
  afterAll(async () => {
    if (!lab) return;
    const id = lab.id;
    await lab.destroy();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${id}-`));
    if (left.length > 0) throw new Error(`namespaces left after teardown: ${left.join(', ')}`);
  });
  return () => (lab ??= NetLab.create());
}
