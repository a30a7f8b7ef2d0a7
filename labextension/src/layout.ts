/**
 * Layered layout of a provenance graph: datasets, then runs, then models, then the
 * evidence about a model (signature, scan, fairness, gate). Within a layer, nodes are
 * ordered by the mean position of their parents (the barycenter heuristic) so that
 * edges cross as little as possible. Pure: unit-tested without a DOM.
 */
import type { NodeKind, ProvEdge, ProvNode } from './types';

export const KIND_LAYER: { [K in NodeKind]: number } = {
  dataset: 0,
  run: 1,
  model: 2,
  artifact: 2,
  signature: 3,
  scan: 3,
  fairness: 3,
  gate: 3
};

export interface PlacedNode extends ProvNode {
  layer: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge extends ProvEdge {
  path: string;
}

export interface GraphLayout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}

export interface LayoutOptions {
  nodeWidth: number;
  /** Evidence nodes (signature, scan, fairness, gate) are narrower so four fit a sidebar. */
  evidenceWidth: number;
  nodeHeight: number;
  gapX: number;
  gapY: number;
  margin: number;
}

const DEFAULTS: LayoutOptions = { nodeWidth: 120, evidenceWidth: 78, nodeHeight: 30, gapX: 8, gapY: 44, margin: 8 };

export function layoutGraph(
  nodes: ProvNode[],
  edges: ProvEdge[],
  options: Partial<LayoutOptions> = {}
): GraphLayout {
  const o = { ...DEFAULTS, ...options };
  const byId = new Map(nodes.map(n => [n.id, n]));
  const valid = edges.filter(e => byId.has(e.source) && byId.has(e.target));
  // Layer: the kind's layer, pushed down below any parent so edges always point down.
  const layer = new Map<string, number>(nodes.map(n => [n.id, KIND_LAYER[n.kind] ?? 2]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let changed = false;
    for (const e of valid) {
      const need = (layer.get(e.source) ?? 0) + 1;
      if ((layer.get(e.target) ?? 0) < need && e.source !== e.target) {
        layer.set(e.target, need);
        changed = true;
      }
    }
    if (!changed) {
      break;
    }
  }
  const used = [...new Set(layer.values())].sort((a, b) => a - b);
  const rowOf = new Map(used.map((l, i) => [l, i]));
  const rows: ProvNode[][] = used.map(() => []);
  for (const n of nodes) {
    rows[rowOf.get(layer.get(n.id)!)!].push(n);
  }
  // Barycenter ordering, top row in input order.
  const index = new Map<string, number>();
  rows.forEach((row, r) => {
    if (r > 0) {
      const center = (n: ProvNode): number => {
        const parents = valid.filter(e => e.target === n.id && index.has(e.source));
        if (parents.length === 0) {
          return Number.MAX_SAFE_INTEGER;
        }
        return parents.reduce((s, e) => s + index.get(e.source)!, 0) / parents.length;
      };
      const keyed = row.map((n, i) => ({ n, c: center(n), i }));
      keyed.sort((a, b) => a.c - b.c || a.i - b.i);
      rows[r] = keyed.map(k => k.n);
    }
    rows[r].forEach((n, i) => index.set(n.id, i - (rows[r].length - 1) / 2));
  });
  const widthOf = (n: ProvNode): number => (KIND_LAYER[n.kind] === 3 ? o.evidenceWidth : o.nodeWidth);
  const rowWidth = (row: ProvNode[]): number =>
    row.reduce((s, n) => s + widthOf(n), 0) + Math.max(0, row.length - 1) * o.gapX;
  const width = 2 * o.margin + Math.max(o.nodeWidth, ...rows.map(rowWidth));
  const height = 2 * o.margin + rows.length * o.nodeHeight + Math.max(0, rows.length - 1) * o.gapY;
  const placed = new Map<string, PlacedNode>();
  rows.forEach((row, r) => {
    let x = (width - rowWidth(row)) / 2;
    row.forEach(n => {
      placed.set(n.id, {
        ...n,
        layer: r,
        x,
        y: o.margin + r * (o.nodeHeight + o.gapY),
        width: widthOf(n),
        height: o.nodeHeight
      });
      x += widthOf(n) + o.gapX;
    });
  });
  const placedEdges = valid.map(e => {
    const s = placed.get(e.source)!;
    const t = placed.get(e.target)!;
    const x1 = s.x + s.width / 2;
    const y1 = s.y + s.height;
    const x2 = t.x + t.width / 2;
    const y2 = t.y;
    const my = (y1 + y2) / 2;
    return { ...e, path: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}` };
  });
  return { nodes: nodes.map(n => placed.get(n.id)!), edges: placedEdges, width, height };
}
