/** The audit log in a main-area tab: the latest entries and a "verify log" button. */
import { SecurenbApi } from './api';
import { h } from './dom';
import type { AuditEntry } from './types';

export function auditLogView(api: SecurenbApi): HTMLElement {
  const root = h('div', { class: 'snb-auditlog' }, h('h2', {}, 'securenb audit log'));
  const status = h('p', { role: 'status' }, 'Loading…');
  const verify = h('button', { class: 'jp-Button snb-verify-log', type: 'button' }, 'Verify log consistency');
  const body = h('div');
  root.append(verify, status, body);
  verify.addEventListener('click', async () => {
    try {
      const r = await api.call<{ verified: boolean; size: number; reason: string | null }>('audit/verify', { method: 'POST', body: '{}' });
      status.textContent = r.verified ? `Log verified: ${r.size} entries` : `Log does NOT verify: ${r.reason ?? 'unknown reason'}`;
    } catch (err) {
      status.textContent = `Verify failed: ${(err as Error).message}`;
    }
  });
  void (async () => {
    try {
      const probe = await api.auditEntries(0, 1);
      const offset = Math.max(0, probe.size - 200);
      const page = await api.auditEntries(offset, 200);
      const entries = page.items as AuditEntry[];
      status.textContent = `${page.size} entries${offset ? `, latest 200 shown` : ''}`;
      const t = h('table', { class: 'snb-table' });
      t.append(h('thead', {}, h('tr', {}, ...['#', 'Time', 'Actor', 'Action', 'Subject'].map(c => h('th', { scope: 'col' }, c)))));
      const tb = h('tbody');
      for (const e of entries.slice().reverse()) {
        tb.append(h('tr', {}, ...[String(e.index), e.time, e.actor, e.action, e.subject].map(c => h('td', {}, c))));
      }
      t.append(tb);
      body.replaceChildren(t);
    } catch (err) {
      status.textContent = `Could not load the audit log: ${(err as Error).message}`;
    }
  })();
  return root;
}
