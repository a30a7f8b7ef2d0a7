/** Detail of one artifact: provenance graph, signature, scan findings, vulnerabilities, fairness chart, gate, audit trail. */
import { badgeViews } from './badges';
import { chartGeometry } from './chart';
import { h, s } from './dom';
import { layoutGraph } from './layout';
import type { ArtifactDetail, FairnessMetric, ProvNode, VulnerabilityCheck } from './types';

export function badgeRow(detail: { badges: ArtifactDetail['badges'] }): HTMLElement {
  const row = h('span', { class: 'snb-badges' });
  for (const b of badgeViews(detail.badges)) {
    row.append(
      h('span', { class: `snb-badge snb-tone-${b.tone}`, 'data-badge': b.key, title: b.title }, b.text)
    );
  }
  return row;
}

const SECTION_OF: { [kind: string]: string } = {
  signature: 'signature',
  scan: 'scan',
  fairness: 'fairness',
  gate: 'gate'
};

/** The provenance graph as SVG; nodes are buttons (click, Enter or Space). */
export function provenanceGraph(
  detail: ArtifactDetail,
  onNode: (node: ProvNode) => void
): SVGElement {
  const g = layoutGraph(detail.provenance.nodes, detail.provenance.edges);
  const svg = s('svg', {
    class: 'snb-graph',
    viewBox: `0 0 ${g.width} ${g.height}`,
    width: g.width,
    height: g.height,
    role: 'group',
    'aria-label': 'Provenance graph'
  });
  const defs = s('defs');
  const marker = s('marker', {
    id: 'snb-arrow',
    viewBox: '0 0 10 10',
    refX: 9,
    refY: 5,
    markerWidth: 6,
    markerHeight: 6,
    orient: 'auto-start-reverse'
  });
  marker.append(s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'snb-arrowhead' }));
  defs.append(marker);
  svg.append(defs);
  for (const e of g.edges) {
    const p = s('path', { d: e.path, class: 'snb-edge', 'marker-end': 'url(#snb-arrow)' });
    const t = s('title');
    t.textContent = e.label;
    p.append(t);
    svg.append(p);
  }
  for (const n of g.nodes) {
    const self = n.digest !== null && n.digest === detail.digest;
    const node = s('g', {
      class: `snb-node snb-node-${n.kind}${self ? ' snb-node-self' : ''}`,
      transform: `translate(${n.x},${n.y})`,
      tabindex: 0,
      role: 'button',
      'data-node-id': n.id,
      'data-kind': n.kind,
      'aria-label': `${n.kind}: ${n.label}`
    });
    node.append(s('rect', { width: n.width, height: n.height, rx: 6, ry: 6 }));
    const label = s('text', { x: n.width / 2, y: n.height / 2, 'dominant-baseline': 'central', 'text-anchor': 'middle' });
    const fit = Math.floor((n.width - 8) / 6.2);
    label.textContent = n.label.length > fit ? n.label.slice(0, fit - 1) + '…' : n.label;
    const title = s('title');
    title.textContent = `${n.kind}: ${n.label}${n.digest ? '\n' + n.digest : ''}`;
    node.append(label, title);
    node.addEventListener('click', () => onNode(n));
    node.addEventListener('keydown', ev => {
      const key = (ev as KeyboardEvent).key;
      if (key === 'Enter' || key === ' ') {
        ev.preventDefault();
        onNode(n);
      }
    });
    svg.append(node);
  }
  return svg;
}

export function fairnessChart(metric: FairnessMetric): SVGElement {
  const g = chartGeometry(metric);
  const svg = s('svg', {
    class: 'snb-chart',
    viewBox: `0 0 ${g.width} ${g.height}`,
    width: g.width,
    height: g.height,
    role: 'img',
    'aria-label': `${metric.name} per group: ${g.bars.map(b => `${b.group} ${fmt(b.value)}`).join(', ')}${metric.threshold !== null ? `; threshold ${fmt(metric.threshold)}` : ''}`
  });
  for (const b of g.bars) {
    const label = s('text', { x: b.x - 6, y: b.y + b.height / 2, 'text-anchor': 'end', 'dominant-baseline': 'central', class: 'snb-chart-label' });
    label.textContent = b.group.length > 10 ? b.group.slice(0, 9) + '…' : b.group;
    const bar = s('rect', { x: b.x, y: b.y, width: Math.max(1, b.width), height: b.height, class: 'snb-bar', 'data-group': b.group });
    const value = s('text', { x: b.x + b.width + 4, y: b.y + b.height / 2, 'dominant-baseline': 'central', class: 'snb-chart-value' });
    value.textContent = fmt(b.value);
    svg.append(label, bar, value);
  }
  if (g.thresholdX !== null) {
    svg.append(s('line', { x1: g.thresholdX, x2: g.thresholdX, y1: g.plotTop - 2, y2: g.plotBottom + 2, class: 'snb-threshold' }));
    const t = s('text', { x: g.thresholdX, y: g.plotBottom + 12, 'text-anchor': 'middle', class: 'snb-chart-label' });
    t.textContent = `threshold ${fmt(g.threshold)}`;
    svg.append(t);
  }
  if (g.overallX !== null) {
    svg.append(s('line', { x1: g.overallX, x2: g.overallX, y1: g.plotTop - 2, y2: g.plotBottom + 2, class: 'snb-overall' }));
  }
  return svg;
}

function fmt(v: number | null): string {
  return v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(3);
}

function section(id: string, title: string, ...body: (Node | string)[]): HTMLElement {
  const headingId = `snb-h-${id}`;
  return h(
    'section',
    { class: 'snb-section', 'data-section': id, 'aria-labelledby': headingId, tabindex: '-1' },
    h('h3', { id: headingId }, title),
    ...body
  );
}

function table(head: string[], rows: string[][], cls = ''): HTMLElement {
  const t = h('table', { class: `snb-table ${cls}` });
  t.append(h('thead', {}, h('tr', {}, ...head.map(c => h('th', { scope: 'col' }, c)))));
  const body = h('tbody');
  for (const r of rows) {
    body.append(h('tr', {}, ...r.map(c => h('td', {}, c))));
  }
  t.append(body);
  return t;
}

/** The whole detail view; `onOpen` is called with a digest when a graph node names another artifact. */
export function detailView(detail: ArtifactDetail, onOpen: (digest: string) => void): HTMLElement {
  const root = h('div', { class: 'snb-detail' });
  const jump = (id: string): void => {
    const target = root.querySelector<HTMLElement>(`[data-section="${id}"]`);
    if (target) {
      target.scrollIntoView({ block: 'start' });
      target.focus();
    }
  };
  root.append(
    h('h2', { class: 'snb-detail-title', title: detail.path }, detail.name),
    h('div', { class: 'snb-detail-path' }, `${detail.kind} · ${detail.path}`),
    h('div', { class: 'snb-detail-digest' }, detail.digest),
    badgeRow(detail)
  );
  root.append(
    section(
      'provenance',
      'Provenance',
      detail.provenance.nodes.length
        ? h('div', { class: 'snb-graph-box' }, provenanceGraph(detail, n => {
            if (SECTION_OF[n.kind]) {
              jump(SECTION_OF[n.kind]);
            } else if (n.digest && n.digest !== detail.digest) {
              onOpen(n.digest);
            } else {
              jump('provenance');
            }
          }) as unknown as Node)
        : h('p', { class: 'snb-muted' }, 'No provenance recorded.')
    )
  );
  const sig = detail.signature;
  root.append(
    section(
      'signature',
      'Signature',
      sig
        ? h(
            'dl',
            { class: 'snb-dl' },
            h('dt', {}, 'State'),
            h('dd', { class: sig.verified ? 'snb-good' : 'snb-bad' }, sig.verified ? 'verified' : `FAILED: ${sig.reason ?? 'does not verify'}`),
            h('dt', {}, 'Signer'),
            h('dd', {}, sig.signer, sig.identity_via ? h('span', { class: 'snb-secondary' }, `via ${sig.identity_via}`) : null),
            h('dt', {}, 'Identity'),
            h('dd', {}, sig.identity ?? '—'),
            h('dt', {}, 'Key'),
            h('dd', {}, sig.key_name ? `${sig.key_name} ` : null, h('span', { class: 'snb-mono snb-secondary' }, sig.key_id)),
            h('dt', {}, 'Signed at'),
            h('dd', {}, sig.signed_at)
          )
        : h('p', { class: 'snb-muted' }, detail.badges.signature.state === 'tampered' ? 'TAMPERED: the file does not match its signature.' : 'Not signed.')
    )
  );
  const scan = detail.scan;
  root.append(
    section(
      'scan',
      'Scan',
      scan
        ? h('div', {}, h('p', {}, `Verdict: ${scan.verdict}`),
            scan.findings.length
              ? table(['Severity', 'Rule', 'Location', 'Message'], scan.findings.map(f => [f.severity, f.rule, f.location, f.message]), 'snb-findings')
              : h('p', { class: 'snb-muted' }, 'No findings.'))
        : h('p', { class: 'snb-muted' }, 'Not scanned.')
    )
  );
  root.append(section('vulnerabilities', 'Vulnerabilities', vulnerabilityBody(detail.vulnerabilities)));
  const fair = detail.fairness;
  const fairBody = h('div');
  if (fair) {
    for (const m of fair.metrics) {
      fairBody.append(
        h('h4', {}, `${m.name} (overall ${fmt(m.overall)})${m.passed === false ? ' — FAIL' : m.passed ? ' — pass' : ''}`),
        fairnessChart(m) as unknown as Node
      );
    }
    if (fair.disparities.length) {
      fairBody.append(
        table(['Disparity', 'Value', 'Threshold', 'Result'], fair.disparities.map(d => [
          d.name, fmt(d.value), fmt(d.threshold), d.passed === null ? d.reason ?? 'n/a' : d.passed ? 'pass' : 'FAIL'
        ]))
      );
    }
  } else {
    fairBody.append(h('p', { class: 'snb-muted' }, 'Fairness not checked.'));
  }
  root.append(section('fairness', 'Fairness', fairBody));
  const gate = detail.gate;
  root.append(
    section(
      'gate',
      'Gate',
      gate
        ? h('div', {}, h('p', {}, `Verdict: ${gate.verdict}`), table(['Rule', 'Outcome', 'Detail'], gate.rules.map(r => [r.rule, r.outcome, r.detail])))
        : h('p', { class: 'snb-muted' }, 'Gate not run.')
    )
  );
  root.append(
    section(
      'audit',
      'Audit trail',
      detail.audit.length
        ? table(['#', 'Time', 'Actor', 'Action', 'Inclusion proof'], detail.audit.map(a => [String(a.index), a.time, a.actor, a.action, a.inclusion]), 'snb-audit')
        : h('p', { class: 'snb-muted' }, 'No audit entries.')
    )
  );
  return root;
}

/** The vulnerability check: what was checked, when, against which database; each finding. */
function vulnerabilityBody(check: VulnerabilityCheck | null): HTMLElement {
  if (!check) {
    return h('p', { class: 'snb-muted' }, 'Vulnerabilities not checked.');
  }
  const body = h(
    'div',
    {},
    h(
      'dl',
      { class: 'snb-dl' },
      h('dt', {}, 'Checked'),
      h('dd', {}, check.source || '—'),
      h('dt', {}, 'Database'),
      h('dd', {}, check.database || '—'),
      h('dt', {}, 'At'),
      h('dd', {}, check.checked_at ?? '—')
    )
  );
  if (check.unchecked) {
    body.append(h('p', { class: 'snb-bad' }, `${check.unchecked} package(s) could not be checked.`));
  }
  // a list, not a six-column table: the sidebar is narrow
  body.append(
    check.items.length
      ? h(
          'ul',
          { class: 'snb-vulns' },
          ...check.items.map(v =>
            h(
              'li',
              {},
              h('span', { class: `snb-sev snb-sev-${v.severity ?? 'unknown'}` }, (v.severity ?? 'unknown').toUpperCase()),
              ` ${v.package} ${v.version ?? ''}`,
              h('div', { class: 'snb-mono snb-secondary' }, v.id, v.fixed_in?.length ? ` · fixed in ${v.fixed_in.join(', ')}` : ' · no fix yet'),
              v.summary ? h('div', { class: 'snb-muted' }, v.summary) : null
            )
          )
        )
      : h('p', { class: 'snb-muted' }, 'No known vulnerabilities.')
  );
  return body;
}
