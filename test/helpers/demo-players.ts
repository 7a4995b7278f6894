/**
 * Players of the demo game (web/demo/) in Chromium pages, and what the tests check of them:
 * joined, connected, seeing each other's avatar where it is, chat both ways.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { Position } from '../../web/demo/demo.js';
import { type PageLog, watchPage } from './browser.js';

/** Movement keys a test holds down; the avatar moves 220 px/s at 30 Hz. */
export const MOVE_PX = 60;

export interface Player {
  page: Page;
  log: PageLog;
  id: string;
}

/**
 * Opens the demo at `origin` in a new tab of `context` and waits until it joined `room`.
 * `query`: further parameters of the page, e.g. `{ transports: 'poll' }`.
 */
export async function play(context: BrowserContext, origin: string, room: string, query: Record<string, string> = {}): Promise<Player> {
  const page = await context.newPage();
  const log = watchPage(page);
  await page.goto(`${origin}/?${new URLSearchParams({ room, ...query }).toString()}`);
  await page.waitForFunction(() => window.rallypointDemo?.status === 'joined');
  const id = await page.evaluate(() => window.rallypointDemo.id as string);
  return { page, log, id };
}

export const connectedPeers = (p: Player, n: number) => p.page.waitForFunction((want) => document.body.dataset.connectedPeers === String(want), n);

export const positionOf = (p: Player): Promise<Position> => p.page.evaluate(() => window.rallypointDemo.position);

/** Resolves once `viewer` shows `mover`'s avatar at `pos` (state and DOM). */
export const seesAt = (viewer: Player, mover: Player, pos: Position) =>
  viewer.page.waitForFunction(
    ({ id, x, y }) => {
      const peer = window.rallypointDemo.peers.find((p) => p.id === id);
      const avatar = document.querySelector<HTMLElement>(`#arena [data-peer="${id}"]`);
      return peer?.lastPosition?.x === x && peer.lastPosition.y === y && avatar?.style.transform === `translate(${x}px, ${y}px)` && !avatar.hidden;
    },
    { id: mover.id, ...pos },
  );

/** Holds an arrow key until the avatar moved MOVE_PX, away from the nearer wall; returns the new position. */
export async function move(p: Player, axis: 'x' | 'y'): Promise<Position> {
  const start = await positionOf(p);
  const size = axis === 'x' ? 640 : 400;
  const forward = start[axis] < size / 2;
  const key = axis === 'x' ? (forward ? 'ArrowRight' : 'ArrowLeft') : forward ? 'ArrowDown' : 'ArrowUp';
  await p.page.keyboard.down(key);
  await p.page.waitForFunction(
    ({ axis, from, forward, d }) => {
      const v = window.rallypointDemo.position[axis];
      return forward ? v >= from + d : v <= from - d;
    },
    { axis, from: start[axis], forward, d: MOVE_PX },
  );
  await p.page.keyboard.up(key);
  const end = await positionOf(p);
  const other = axis === 'x' ? 'y' : 'x';
  expect(end[other]).toBe(start[other]);
  return end;
}

/** Types `text` into `from`'s chat box and waits until `to` shows it as a line from `from`. */
export async function chat(from: Player, to: Player, text: string): Promise<void> {
  await from.page.fill('#chat-input', text);
  await from.page.press('#chat-input', 'Enter');
  await to.page.waitForFunction(({ id, text }) => window.rallypointDemo.chat.some((l) => l.from === id && l.text === text && !l.self), { id: from.id, text });
}

/**
 * Two connected players play: each sees the other where it stands and follows its moves,
 * and chat goes both ways.
 */
export async function playTogether(alice: Player, bob: Player): Promise<void> {
  await seesAt(bob, alice, await positionOf(alice));
  await seesAt(bob, alice, await move(alice, 'x'));
  await seesAt(bob, alice, await move(alice, 'y'));
  await seesAt(alice, bob, await move(bob, 'x'));
  await chat(alice, bob, 'hello from alice');
  await chat(bob, alice, 'hello from bob');
}

/** No uncaught page error and no error noted by the demo. */
export function expectClean(...players: Player[]): Promise<undefined[]> {
  return Promise.all(
    players.map(async (p): Promise<undefined> => {
      expect(p.log.errors).toEqual([]);
      expect(await p.page.evaluate(() => window.rallypointDemo.errors)).toEqual([]);
    }),
  );
}
