/** Number formatting shared by the reports ("n/a" for anything not finite). */
export const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
export const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)} %` : 'n/a');
/** Milliseconds with the digits that matter: 2 below 10, 1 below 100, else none. */
export const fmtMs = (n, missing = 'n/a') => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)) : missing);
/** A difference with its sign (a real minus sign). */
export const signed = (n, d) => (Number.isFinite(n) ? `${n < 0 ? '−' : '+'}${fmt(Math.abs(n), d)}` : 'n/a');
