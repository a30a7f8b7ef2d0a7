/** Role-awareness: whether the user may take an action, and the reason when not. */
import type { Action, Me } from './types';

export interface Permission {
  allowed: boolean;
  reason: string | null;
}

/** Deny unless the server said yes: an unknown user or action is not allowed. */
export function permission(me: Me | null, action: Action): Permission {
  if (!me) {
    return { allowed: false, reason: 'securenb server not reachable' };
  }
  const p = me.actions?.[action];
  if (!p) {
    return { allowed: false, reason: `the server grants no '${action}' action` };
  }
  return p.allowed ? { allowed: true, reason: null } : { allowed: false, reason: p.reason ?? `your role may not ${action}` };
}

/** A command label that says why it is disabled. */
export function labelWithReason(label: string, p: Permission): string {
  return p.allowed ? label : `${label} (not allowed: ${p.reason})`;
}

/** File extensions the file browser treats as model files. */
export const MODEL_EXTENSIONS = [
  '.pkl', '.pickle', '.joblib', '.pt', '.pth', '.bin', '.ckpt', '.safetensors',
  '.onnx', '.h5', '.hdf5', '.keras', '.pb', '.gguf', '.npy', '.npz', '.json', '.ubj', '.txt', '.model'
];

export function isModelFile(path: string): boolean {
  const lower = path.toLowerCase();
  return MODEL_EXTENSIONS.some(ext => lower.endsWith(ext)) && !lower.endsWith('.ipynb');
}

/** Whether a server event belongs to securenb. */
export const EVENT_PREFIX = 'https://securenb.dev/events/';

export function isSecurenbEvent(schemaId: unknown): boolean {
  return typeof schemaId === 'string' && schemaId.startsWith(EVENT_PREFIX);
}

/** What a securenb event names: the digest it concerns and the artifact's path. */
export interface EventSubject {
  digest: string | null;
  path: string | null;
}

export function eventSubject(event: unknown): EventSubject {
  const data = (event ?? {}) as { digest?: unknown; path?: unknown };
  return {
    digest: typeof data.digest === 'string' ? data.digest : null,
    path: typeof data.path === 'string' ? data.path : null
  };
}

/**
 * Whether an event concerns the artifact shown (digest and path of the open detail).
 * By path too: a verify of a model that changed on disk names the digest the file has
 * now, not the recorded one; an event that names nothing may concern anything.
 */
export function eventTouches(event: EventSubject, digest: string, path: string | null): boolean {
  if (event.digest === null && event.path === null) {
    return true;
  }
  return event.digest === digest || (path !== null && event.path === path);
}
