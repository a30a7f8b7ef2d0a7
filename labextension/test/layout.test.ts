import { layoutGraph } from '../src/layout';
import type { ProvEdge, ProvNode } from '../src/types';

const n = (id: string, kind: ProvNode['kind']): ProvNode => ({ id, kind, label: id, digest: null });
const e = (source: string, target: string): ProvEdge => ({ source, target, label: '' });

describe('layoutGraph', () => {
  const nodes = [n('sig', 'signature'), n('model', 'model'), n('d2', 'dataset'), n('run', 'run'), n('d1', 'dataset'), n('scan', 'scan'), n('gate', 'gate')];
  const edges = [e('d1', 'run'), e('d2', 'run'), e('run', 'model'), e('model', 'sig'), e('model', 'scan'), e('model', 'gate')];
  const g = layoutGraph(nodes, edges);
  const at = (id: string) => g.nodes.find(x => x.id === id)!;

  it('puts datasets above the run, the run above the model, evidence below the model', () => {
    expect(at('d1').layer).toBe(0);
    expect(at('d2').layer).toBe(0);
    expect(at('run').layer).toBe(1);
    expect(at('model').layer).toBe(2);
    for (const id of ['sig', 'scan', 'gate']) {
      expect(at(id).layer).toBe(3);
    }
  });

  it('every edge points down and no two nodes overlap', () => {
    for (const edge of g.edges) {
      expect(at(edge.source).y).toBeLessThan(at(edge.target).y);
    }
    for (const a of g.nodes) {
      for (const b of g.nodes) {
        if (a !== b && a.layer === b.layer) {
          expect(Math.abs(a.x - b.x)).toBeGreaterThanOrEqual(a.width);
        }
      }
    }
    for (const a of g.nodes) {
      expect(a.x).toBeGreaterThanOrEqual(0);
      expect(a.x + a.width).toBeLessThanOrEqual(g.width);
      expect(a.y + a.height).toBeLessThanOrEqual(g.height);
    }
  });

  it('pushes a node below its parent when the data says so (a model trained from a model)', () => {
    const g2 = layoutGraph([n('base', 'model'), n('run', 'run'), n('tuned', 'model')], [e('base', 'run'), e('run', 'tuned')]);
    const ys = Object.fromEntries(g2.nodes.map(x => [x.id, x.y]));
    expect(ys.base).toBeLessThan(ys.run);
    expect(ys.run).toBeLessThan(ys.tuned);
  });

  it('orders children under their parents (barycenter) so edges do not cross', () => {
    const g3 = layoutGraph(
      [n('a', 'dataset'), n('b', 'dataset'), n('rb', 'run'), n('ra', 'run')],
      [e('a', 'ra'), e('b', 'rb')]
    );
    const x = Object.fromEntries(g3.nodes.map(v => [v.id, v.x]));
    expect(x.ra).toBeLessThan(x.rb);
  });

  it('ignores edges to unknown nodes and survives a cycle', () => {
    const g4 = layoutGraph([n('x', 'run'), n('y', 'run')], [e('x', 'y'), e('y', 'x'), e('x', 'ghost')]);
    expect(g4.nodes).toHaveLength(2);
    expect(g4.edges).toHaveLength(2);
  });

  it('lays out an empty graph', () => {
    expect(layoutGraph([], []).nodes).toEqual([]);
  });
});
