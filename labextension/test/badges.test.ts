import { badgeViews, gateBadge, keyText, overallTone, scanBadge, signatureBadge, vulnBadge } from '../src/badges';
import type { Badges } from '../src/types';

const clean: Badges = {
  signature: { state: 'signed', signer: 'alice@example.org', signed_at: '2026-12-05T10:00:00Z' },
  scan: { state: 'safe', findings: 0 },
  fairness: { state: 'pass' },
  vulnerabilities: { state: 'none', count: 0, max_severity: null },
  gate: { state: 'pass' }
};

describe('badges', () => {
  it('names the signer of a signed artifact and says TAMPERED loudly', () => {
    expect(signatureBadge(clean.signature).text).toBe('signed by alice@example.org');
    const t = signatureBadge({ state: 'tampered', signer: 'alice', signed_at: null });
    expect(t.text).toBe('TAMPERED');
    expect(t.tone).toBe('bad');
    expect(signatureBadge({ state: 'unsigned', signer: null, signed_at: null }).text).toBe('unsigned');
  });

  it('names the person and gives the key (name, fingerprint) as secondary text', () => {
    const fp = 'b8cae4f89ebfa8a540c67904957945f4c245c8bb96a4d14c0f0afe7061fbddf8';
    const b = signatureBadge({ state: 'signed', signer: 'alice', identity: 'alice', identity_via: 'the Jupyter server',
      key_id: fp, key_name: 'release', signed_at: '2026-12-05T10:00:00Z' });
    expect(b.text).toBe('signed by alice');
    expect(b.title).toBe('Signed by alice via the Jupyter server, key release (b8cae4f89ebfa8a5…) at 2026-12-05T10:00:00Z');
    const t = signatureBadge({ state: 'tampered', signer: 'alice', key_id: fp, key_name: null, signed_at: null });
    expect(t.title).toBe('The file no longer matches its signature (signed by key b8cae4f89ebfa8a5…)');
    const person = signatureBadge({ state: 'tampered', signer: 'bob', identity: 'bob', key_id: fp, signed_at: null });
    expect(person.title).toContain('signed by bob, key b8cae4f89ebfa8a5…');
    expect(keyText({ key_id: null })).toBeNull();
  });

  it('shortens a long signer but keeps it whole in the tooltip', () => {
    const long = 'a-very-long-signer-identity@some.example.org';
    const b = signatureBadge({ state: 'signed', signer: long, signed_at: null });
    expect(b.text.length).toBeLessThan(40);
    expect(b.title).toContain(long);
  });

  it('counts unsafe findings; UNKNOWN is not SAFE', () => {
    expect(scanBadge({ state: 'unsafe', findings: 3 }).text).toBe('UNSAFE 3');
    expect(scanBadge({ state: 'unknown', findings: 0 }).text).toBe('UNKNOWN');
    expect(scanBadge({ state: 'unknown', findings: 0 }).tone).not.toBe('good');
    expect(scanBadge({ state: 'not_scanned', findings: 0 }).text).toBe('not scanned');
  });

  it('says vulnerabilities and gate verdicts', () => {
    expect(vulnBadge({ state: 'found', count: 1, max_severity: 'high' }).text).toBe('1 vuln');
    expect(vulnBadge({ state: 'found', count: 2, max_severity: 'high' }).tone).toBe('bad');
    expect(gateBadge({ state: 'fail' }).text).toBe('gate FAIL');
    expect(gateBadge({ state: 'incomplete' }).tone).toBe('warn');
  });

  it('the row tone is the worst badge', () => {
    expect(overallTone(clean)).toBe('good');
    expect(overallTone({ ...clean, signature: { state: 'tampered', signer: null, signed_at: null } })).toBe('bad');
    expect(overallTone({ ...clean, gate: { state: 'incomplete' } })).toBe('warn');
    expect(badgeViews(clean).map(b => b.key)).toEqual(['signature', 'scan', 'fairness', 'vulnerabilities', 'gate']);
  });
});
