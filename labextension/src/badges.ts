/** What each badge says, in words and a tone, from an artifact's badge states. */
import type { Badges, SignerFacts } from './types';

export type Tone = 'good' | 'bad' | 'warn' | 'neutral';

export interface BadgeView {
  key: keyof Badges;
  text: string;
  tone: Tone;
  title: string;
}

function shortSigner(signer: string | null): string {
  if (!signer) {
    return 'unknown key';
  }
  return signer.length > 24 ? signer.slice(0, 23) + '…' : signer;
}

/** The key as secondary text: its name in the workspace and its fingerprint. */
export function keyText(b: SignerFacts): string | null {
  if (!b.key_id) {
    return null;
  }
  const fingerprint = b.key_id.length > 16 ? b.key_id.slice(0, 16) + '…' : b.key_id;
  return b.key_name ? `key ${b.key_name} (${fingerprint})` : `key ${fingerprint}`;
}

export function signatureBadge(b: Badges['signature']): BadgeView {
  const key = keyText(b);
  // a person where the server knows one, then the key; without a person, the key alone
  const who = b.identity
    ? [`${b.identity}${b.identity_via ? ` via ${b.identity_via}` : ''}`, key].filter(Boolean).join(', ')
    : key ?? b.signer ?? 'unknown key';
  const at = b.signed_at ? ` at ${b.signed_at}` : '';
  switch (b.state) {
    case 'signed':
      return { key: 'signature', text: `signed by ${shortSigner(b.signer)}`, tone: 'good', title: `Signed by ${who}${at}` };
    case 'tampered':
      return {
        key: 'signature',
        text: 'TAMPERED',
        tone: 'bad',
        title: `The file no longer matches its signature${b.signer ? ` (signed by ${who}${at})` : ''}`
      };
    default:
      return { key: 'signature', text: 'unsigned', tone: 'warn', title: 'No signature' };
  }
}

export function scanBadge(b: Badges['scan']): BadgeView {
  switch (b.state) {
    case 'safe':
      return { key: 'scan', text: 'SAFE', tone: 'good', title: 'Scan found nothing unsafe' };
    case 'unsafe':
      return {
        key: 'scan',
        text: `UNSAFE ${b.findings}`,
        tone: 'bad',
        title: `Scan found ${b.findings} unsafe construct${b.findings === 1 ? '' : 's'}`
      };
    case 'unknown':
      return { key: 'scan', text: 'UNKNOWN', tone: 'warn', title: 'Scanner could not decide' };
    default:
      return { key: 'scan', text: 'not scanned', tone: 'neutral', title: 'Not scanned' };
  }
}

export function fairnessBadge(b: Badges['fairness']): BadgeView {
  switch (b.state) {
    case 'pass':
      return { key: 'fairness', text: 'fair', tone: 'good', title: 'Fairness check passed' };
    case 'fail':
      return { key: 'fairness', text: 'unfair', tone: 'bad', title: 'Fairness check failed' };
    default:
      return { key: 'fairness', text: 'fairness ?', tone: 'neutral', title: 'Fairness not checked' };
  }
}

export function vulnBadge(b: Badges['vulnerabilities']): BadgeView {
  switch (b.state) {
    case 'none':
      return { key: 'vulnerabilities', text: 'no vulns', tone: 'good', title: 'No known vulnerabilities' };
    case 'found':
      return {
        key: 'vulnerabilities',
        text: `${b.count} vuln${b.count === 1 ? '' : 's'}`,
        tone: b.max_severity === 'low' ? 'warn' : 'bad',
        title: `${b.count} known vulnerabilit${b.count === 1 ? 'y' : 'ies'}${b.max_severity ? ', worst ' + b.max_severity : ''}`
      };
    default:
      return { key: 'vulnerabilities', text: 'vulns ?', tone: 'neutral', title: 'Vulnerabilities not checked' };
  }
}

export function gateBadge(b: Badges['gate']): BadgeView {
  switch (b.state) {
    case 'pass':
      return { key: 'gate', text: 'gate pass', tone: 'good', title: 'Release gate passed' };
    case 'fail':
      return { key: 'gate', text: 'gate FAIL', tone: 'bad', title: 'Release gate failed' };
    case 'incomplete':
      return { key: 'gate', text: 'gate incomplete', tone: 'warn', title: 'Gate is missing evidence' };
    default:
      return { key: 'gate', text: 'gate ?', tone: 'neutral', title: 'Gate not run' };
  }
}

/** All five badges, in display order. */
export function badgeViews(b: Badges): BadgeView[] {
  return [
    signatureBadge(b.signature),
    scanBadge(b.scan),
    fairnessBadge(b.fairness),
    vulnBadge(b.vulnerabilities),
    gateBadge(b.gate)
  ];
}

/** The worst tone among the badges: what the row's left stripe shows. */
export function overallTone(b: Badges): Tone {
  const tones = badgeViews(b).map(v => v.tone);
  for (const t of ['bad', 'warn', 'good'] as Tone[]) {
    if (tones.includes(t)) {
      return t;
    }
  }
  return 'neutral';
}
