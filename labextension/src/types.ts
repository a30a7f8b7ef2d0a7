/** Shapes of the securenb REST API (see API.md / securenb/server/openapi.json). */

export type SignatureState = 'signed' | 'unsigned' | 'tampered';
export type ScanState = 'safe' | 'unsafe' | 'unknown' | 'not_scanned';
export type FairnessState = 'pass' | 'fail' | 'not_checked';
export type VulnState = 'none' | 'found' | 'not_checked';
export type GateState = 'pass' | 'fail' | 'incomplete' | 'not_run';

/** Who signed: the person where known (signer, identity), the key as secondary facts. */
export interface SignerFacts {
  identity?: string | null;
  identity_via?: string | null;
  key_id?: string | null;
  key_name?: string | null;
}

export interface Badges {
  signature: { state: SignatureState; signer: string | null; signed_at: string | null } & SignerFacts;
  scan: { state: ScanState; findings: number };
  fairness: { state: FairnessState };
  vulnerabilities: { state: VulnState; count: number; max_severity: string | null };
  gate: { state: GateState };
}

export interface ArtifactSummary {
  digest: string;
  path: string;
  name: string;
  kind: 'model' | 'dataset' | 'notebook' | 'output' | 'other';
  notebook: string | null;
  run_id: string | null;
  recorded_at: string;
  badges: Badges;
}

export type NodeKind =
  | 'dataset'
  | 'run'
  | 'model'
  | 'artifact'
  | 'signature'
  | 'scan'
  | 'fairness'
  | 'gate';

export interface ProvNode {
  id: string;
  kind: NodeKind;
  label: string;
  digest: string | null;
}

export interface ProvEdge {
  source: string;
  target: string;
  label: string;
}

export interface FairnessMetric {
  name: string;
  overall: number | null;
  groups: { [group: string]: number | null };
  threshold: number | null;
  passed: boolean | null;
}

export interface AuditEntry {
  index: number;
  time: string;
  actor: string;
  action: string;
  subject: string;
  details: unknown;
}

export interface ArtifactDetail extends ArtifactSummary {
  provenance: { nodes: ProvNode[]; edges: ProvEdge[] };
  scan: null | {
    verdict: string;
    findings: { rule: string; location: string; message: string; severity: string }[];
  };
  fairness: null | {
    metrics: FairnessMetric[];
    disparities: {
      name: string;
      value: number | null;
      threshold: number | null;
      passed: boolean | null;
      reason: string | null;
    }[];
  };
  signature: null | ({
    signer: string;
    key_id: string;
    identity: string | null;
    signed_at: string;
    verified: boolean;
    reason: string | null;
  } & SignerFacts);
  vulnerabilities: null | VulnerabilityCheck;
  gate: null | { verdict: string; rules: { rule: string; outcome: string; detail: string }[] };
  audit: (AuditEntry & { inclusion: 'verified' | 'failed' | 'unknown' })[];
}

/** The newest vulnerability check of the artifact or of its run's environment. */
export interface VulnerabilityCheck {
  checked_at?: string | null;
  source?: string;
  database?: string;
  unchecked?: number;
  items: {
    id: string;
    package: string;
    version?: string | null;
    severity?: string | null;
    fixed_in?: string[];
    summary?: string;
  }[];
}

export interface ArtifactPage {
  items: ArtifactSummary[];
  total: number;
  limit: number;
  offset: number;
}

export type Action =
  | 'read'
  | 'sign'
  | 'verify'
  | 'scan'
  | 'gate'
  | 'bias'
  | 'decrypt'
  | 'promote'
  | 'rollback'
  | 'audit';

export interface Me {
  user: string;
  display_name: string;
  roles: string[];
  actions: { [A in Action]?: { allowed: boolean; reason: string | null } };
}
