/**
 * The rallypoint demo: every tab is an avatar in a room. Arrow keys move yours; positions go
 * to every peer on the `unreliable` channel at 30 Hz in `latest` mode (a late position is
 * worth nothing), chat goes on `reliable`. The HUD shows each peer's path, RTT and loss, and
 * how signaling reaches the server (websocket, sse or poll).
 *
 * Query: `room` (default lobby); `transports`, e.g. `poll` or `sse,poll`: the signaling
 * transports to try, in order (default websocket, sse, poll), to see a fallback by hand.
 *
 * State for tests and the console: `window.rallypointDemo`; `document.body.dataset.connectedPeers`.
 */
import { joinRoom, type PeerPath, type RemotePeer, type Room, type Transport } from '../../peer/index.js';

export interface Position {
  x: number;
  y: number;
}

export interface DemoPeer {
  id: string;
  path: PeerPath | null;
  connected: boolean;
  rttMs: number | null;
  packetsLost: number;
  lastPosition: Position | null;
}

export interface ChatLine {
  from: string;
  text: string;
  self: boolean;
  at: number;
}

export interface DemoState {
  /** Our peer id once joined. */
  id: string | null;
  room: string;
  status: 'connecting' | 'joined' | 'left' | 'error';
  /** How signaling reaches the server (Room.transport), null before joining. */
  transport: Transport | null;
  /** Our avatar's position (whole pixels, what we send). */
  position: Position;
  peers: DemoPeer[];
  chat: ChatLine[];
  /** Recent errors, newest last. */
  errors: string[];
  sendChat(text: string): Promise<void>;
  leave(): Promise<void>;
}

declare global {
  interface Window {
    rallypointDemo: DemoState;
  }
}

const WORLD = { w: 640, h: 400 };
const AVATAR = 28;
const SPEED = 220; // px per second
const TICK_MS = 1000 / 30;
const HUD_MS = 1000;
const MAX_CHAT = 200;
const KEYS: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const arena = $<HTMLDivElement>('arena');
const statusEl = $<HTMLSpanElement>('status');
const transportEl = $<HTMLElement>('transport');
const peersEl = $<HTMLTableSectionElement>('peers');
const chatLog = $<HTMLOListElement>('chat-log');
const chatForm = $<HTMLFormElement>('chat-form');
const chatInput = $<HTMLInputElement>('chat-input');

const query = new URLSearchParams(location.search);
const roomName = query.get('room') || 'lobby';
const TRANSPORTS: readonly Transport[] = ['websocket', 'sse', 'poll'];
const transports = (query.get('transports') ?? '').split(',').filter((t): t is Transport => TRANSPORTS.includes(t as Transport));
const signalingUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
$('room-name').textContent = roomName;

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const shortId = (id: string): string => id.slice(0, 6);
function colorOf(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 70% 58%)`;
}

interface View {
  peer: RemotePeer;
  data: DemoPeer;
  avatar: HTMLDivElement;
}

const views = new Map<string, View>();
let room: Room | null = null;
const pos: Position = { x: 40 + Math.random() * (WORLD.w - 80 - AVATAR), y: 40 + Math.random() * (WORLD.h - 80 - AVATAR) };

const state: DemoState = {
  id: null,
  room: roomName,
  status: 'connecting',
  transport: null,
  position: { x: Math.round(pos.x), y: Math.round(pos.y) },
  peers: [],
  chat: [],
  errors: [],
  sendChat,
  leave,
};
window.rallypointDemo = state;

function setStatus(status: DemoState['status'], text: string): void {
  state.status = status;
  statusEl.textContent = text;
  statusEl.dataset.kind = status;
}

function noteError(err: unknown): void {
  const text = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
  state.errors.push(text);
  if (state.errors.length > 20) state.errors.shift();
  console.warn('rallypoint demo:', text);
}

function makeAvatar(id: string, self: boolean): HTMLDivElement {
  const el = document.createElement('div');
  el.className = self ? 'avatar self' : 'avatar';
  el.dataset.peer = id;
  el.style.background = colorOf(id);
  const label = document.createElement('span');
  label.textContent = self ? 'you' : shortId(id);
  el.append(label);
  el.hidden = !self;
  arena.append(el);
  return el;
}

function place(el: HTMLElement, p: Position): void {
  el.style.transform = `translate(${p.x}px, ${p.y}px)`;
}

let selfAvatar: HTMLDivElement | null = null;

/** Publishes the peer list and the connected count. */
function syncPeers(): void {
  state.peers = [...views.values()].map((v) => v.data);
  const connected = state.peers.filter((p) => p.connected).length;
  document.body.dataset.connectedPeers = String(connected);
  renderHud();
}

function renderHud(): void {
  if (views.size === 0) {
    const row = document.createElement('tr');
    const cell = document.createElement('td');
    cell.colSpan = 4;
    cell.className = 'dim';
    cell.textContent = state.status === 'joined' ? 'nobody yet: open this page in another tab' : 'not in the room';
    row.append(cell);
    peersEl.replaceChildren(row);
    return;
  }
  peersEl.replaceChildren(
    ...[...views.values()].map(({ data }) => {
      const row = document.createElement('tr');
      row.dataset.peer = data.id;
      const name = document.createElement('td');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = colorOf(data.id);
      name.append(swatch, shortId(data.id));
      const cells = [data.connected ? (data.path ?? '…') : 'connecting', data.rttMs === null ? '–' : `${data.rttMs.toFixed(1)} ms`, String(data.packetsLost)].map((text) => {
        const td = document.createElement('td');
        td.textContent = text;
        return td;
      });
      row.append(name, ...cells);
      return row;
    }),
  );
}

function addChat(line: ChatLine): void {
  state.chat.push(line);
  if (state.chat.length > MAX_CHAT) state.chat.shift();
  const li = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = line.self ? 'you' : shortId(line.from);
  who.style.color = colorOf(line.from);
  li.append(who, line.text); // text nodes: chat is never parsed as HTML
  chatLog.append(li);
  while (chatLog.children.length > MAX_CHAT) chatLog.firstElementChild?.remove();
  chatLog.scrollTop = chatLog.scrollHeight;
}

function isPosition(v: unknown): v is Position {
  const p = v as Position;
  return typeof v === 'object' && v !== null && Number.isFinite(p.x) && Number.isFinite(p.y);
}

function onMessage(peer: RemotePeer, channel: string, data: unknown): void {
  const view = views.get(peer.id);
  if (!view) return;
  if (channel === 'unreliable' && isPosition(data)) {
    const p = { x: clamp(Math.round(data.x), 0, WORLD.w - AVATAR), y: clamp(Math.round(data.y), 0, WORLD.h - AVATAR) };
    view.data.lastPosition = p;
    view.avatar.hidden = false;
    place(view.avatar, p);
  } else if (channel === 'reliable') {
    const text = (data as { text?: unknown } | null)?.text;
    if (typeof text === 'string' && text.length > 0) addChat({ from: peer.id, text: text.slice(0, 200), self: false, at: Date.now() });
  }
}

function addView(peer: RemotePeer): void {
  if (views.has(peer.id)) return;
  views.set(peer.id, {
    peer,
    avatar: makeAvatar(peer.id, false),
    data: { id: peer.id, path: peer.path, connected: peer.connected, rttMs: null, packetsLost: 0, lastPosition: null },
  });
  syncPeers();
}

function removeView(id: string): void {
  const view = views.get(id);
  if (!view) return;
  view.avatar.remove();
  views.delete(id);
  syncPeers();
}

function updateView(peer: RemotePeer): void {
  const view = views.get(peer.id);
  if (!view) return;
  view.data.connected = peer.connected;
  view.data.path = peer.path;
  syncPeers();
}

async function sendChat(text: string): Promise<void> {
  const clean = text.trim().slice(0, 200);
  if (!clean || !room) return;
  addChat({ from: room.id, text: clean, self: true, at: Date.now() });
  await room.broadcast('reliable', { text: clean }).catch(noteError);
}

async function leave(): Promise<void> {
  const r = room;
  room = null;
  if (r) await r.leave();
}

// Movement: a fixed 30 Hz tick integrates the held keys and sends the position.
const held = new Set<string>();
window.addEventListener('keydown', (ev) => {
  if (!(ev.key in KEYS) || ev.target === chatInput) return;
  ev.preventDefault();
  held.add(ev.key);
});
window.addEventListener('keyup', (ev) => held.delete(ev.key));
window.addEventListener('blur', () => held.clear());

let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const dt = Math.min(0.25, (now - lastTick) / 1000);
  lastTick = now;
  let dx = 0;
  let dy = 0;
  for (const key of held) {
    const [kx, ky] = KEYS[key] ?? [0, 0];
    dx += kx;
    dy += ky;
  }
  if (dx !== 0 || dy !== 0) {
    const n = Math.hypot(dx, dy);
    pos.x = clamp(pos.x + (dx / n) * SPEED * dt, 0, WORLD.w - AVATAR);
    pos.y = clamp(pos.y + (dy / n) * SPEED * dt, 0, WORLD.h - AVATAR);
    state.position = { x: Math.round(pos.x), y: Math.round(pos.y) };
    if (selfAvatar) place(selfAvatar, state.position);
  }
  if (room && state.peers.some((p) => p.connected)) room.broadcast('unreliable', state.position).catch(noteError);
}, TICK_MS);

/** The signaling transport in the header; it changes when the client falls back or moves up. */
function showTransport(): void {
  state.transport = room?.transport ?? null;
  transportEl.textContent = state.transport ?? '…';
}

// HUD: path, RTT and loss from each peer's stats, and the signaling transport, once per second.
setInterval(() => {
  showTransport();
  for (const { peer, data } of views.values()) {
    if (!peer.connected) continue;
    peer.stats().then(
      (s) => {
        data.rttMs = s.rttMs ?? null;
        data.packetsLost = s.packetsLost;
        data.path = s.path;
        if (views.get(peer.id)?.data === data) renderHud();
      },
      () => {},
    );
  }
}, HUD_MS);

chatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = chatInput.value;
  chatInput.value = '';
  void sendChat(text);
});

// A closing tab leaves at once (peers see `peer-left` now, not after the resume grace).
window.addEventListener('pagehide', () => void leave());

async function start(): Promise<void> {
  try {
    const r = await joinRoom({
      url: signalingUrl,
      room: roomName,
      ...(transports.length > 0 && { transports }),
      channels: {
        reliable: { ordered: true, json: true },
        unreliable: { ordered: false, maxRetransmits: 0, latest: true, json: true },
      },
    });
    room = r;
    state.id = r.id;
    setStatus('joined', `joined as ${shortId(r.id)}`);
    showTransport();
    selfAvatar = makeAvatar(r.id, true);
    place(selfAvatar, state.position);
    r.on('peer-joined', addView);
    r.on('peer-connected', updateView);
    r.on('peer-disconnected', updateView);
    r.on('path-change', updateView);
    r.on('peer-left', (peer) => removeView(peer.id));
    r.on('message', ({ peer, channel, data }) => onMessage(peer, channel, data));
    r.on('error', noteError);
    r.on('close', () => {
      room = null;
      for (const id of [...views.keys()]) removeView(id);
      setStatus('left', 'left the room (reload to join again)');
    });
    // Peers already in the room were added before our listeners: pick them up.
    for (const peer of r.peers.values()) addView(peer);
    for (const peer of r.peers.values()) updateView(peer);
    syncPeers();
    arena.focus();
  } catch (err) {
    noteError(err);
    setStatus('error', `could not join: ${(err as Error).message}`);
  }
}

void start();
