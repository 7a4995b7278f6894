/** The argv rewrite that keeps a bare `--trust-proxy` meaning one trusted hop. */
import { describe, expect, it } from 'vitest';
import { bareTrustProxy } from '../../signaling/cli/config.js';

describe('bareTrustProxy', () => {
  it('makes a bare --trust-proxy `true`: last, before another flag, or before a positional', () => {
    expect(bareTrustProxy(['serve', '--trust-proxy'])).toEqual(['serve', '--trust-proxy=true']);
    expect(bareTrustProxy(['serve', '--trust-proxy', '--port', '0'])).toEqual(['serve', '--trust-proxy=true', '--port', '0']);
    expect(bareTrustProxy(['--trust-proxy', '-h'])).toEqual(['--trust-proxy=true', '-h']);
    expect(bareTrustProxy(['--trust-proxy', 'serve'])).toEqual(['--trust-proxy=true', 'serve']);
  });

  it('leaves a value alone: hop counts, address/CIDR lists, true/false, and --trust-proxy=...', () => {
    for (const value of ['2', '127.0.0.1', '10.0.0.0/8,::1', '[::1]', 'fd00::/8', 'true', 'false']) {
      expect(bareTrustProxy(['serve', '--trust-proxy', value]), value).toEqual(['serve', '--trust-proxy', value]);
    }
    for (const arg of ['--trust-proxy=2', '--trust-proxy=', '--trust-proxy=10.0.0.0/8']) {
      expect(bareTrustProxy(['serve', arg, '--port', '0'])).toEqual(['serve', arg, '--port', '0']);
    }
  });

  it('touches only the --trust-proxy flag itself, not its look-alikes', () => {
    expect(bareTrustProxy(['serve', '--trust-proxy-x', '--host', '--trust-proxy'])).toEqual(['serve', '--trust-proxy-x', '--host', '--trust-proxy=true']);
  });
});
