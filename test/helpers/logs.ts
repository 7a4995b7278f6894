import { type Logger, pino } from 'pino';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/**
 * A pino logger that writes JSON lines into memory. pino writes synchronously, so a line
 * is visible (and a waiter resolved) from inside the code that logged it.
 */
export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(level: pino.Level = 'debug') {
    this.logger = pino({ level }, { write: (s: string) => this.push(s) });
  }

  /** The first line (already logged or still to come) that matches. */
  waitFor(pred: (l: LogLine) => boolean): Promise<LogLine> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** Close lines ("connection closed") logged so far. */
  closes(): LogLine[] {
    return this.lines.filter((l) => l.msg === 'connection closed');
  }

  /** Resolves once the server has logged the close of the connection whose peer id is `id`. */
  closed(id: string): Promise<LogLine> {
    return this.waitFor((l) => l.msg === 'connection closed' && l.id === id);
  }

  /** Resolves once the server has logged `n` connection closes in total. */
  closeCount(n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): boolean => this.closes().length >= n;
      if (check()) return resolve();
      this.waiters.push({ pred: () => check(), resolve: () => resolve() });
    });
  }

  private push(text: string): void {
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      const line = JSON.parse(raw) as LogLine;
      this.lines.push(line);
      const waiting = this.waiters;
      this.waiters = [];
      for (const w of waiting) {
        if (w.pred(line)) w.resolve(line);
        else this.waiters.push(w);
      }
    }
  }
}
