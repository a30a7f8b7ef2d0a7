import { chartGeometry } from '../src/chart';
import { rowWindow } from '../src/listwindow';

describe('rowWindow (virtualised list)', () => {
  it('draws only the visible rows plus overscan, out of 1,000', () => {
    const w = rowWindow(1000, 50, 0, 500, 5);
    expect(w.start).toBe(0);
    expect(w.end - w.start).toBeLessThanOrEqual(20);
    expect(w.totalHeight).toBe(50000);
  });
  it('follows the scroll position and clamps at the end', () => {
    const w = rowWindow(1000, 50, 25000, 500, 5);
    expect(w.start).toBe(495);
    expect(w.offsetTop).toBe(495 * 50);
    const end = rowWindow(1000, 50, 10 ** 7, 500, 5);
    expect(end.end).toBe(1000);
    expect(end.start).toBeLessThan(1000);
  });
  it('handles an empty list', () => {
    expect(rowWindow(0, 50, 0, 500)).toEqual({ start: 0, end: 0, offsetTop: 0, totalHeight: 0 });
  });
});

describe('chartGeometry (fairness bars)', () => {
  const m = { name: 'selection_rate', overall: 0.5, groups: { a: 0.6, b: 0.3, c: null }, threshold: 0.8, passed: false };
  it('bar lengths are proportional and the threshold line sits at its value', () => {
    const g = chartGeometry(m);
    const [a, b, c] = g.bars;
    expect(a.width / b.width).toBeCloseTo(2, 5);
    expect(c.width).toBe(0);
    expect(g.thresholdX! - a.x).toBeCloseTo((0.8 / 0.6) * a.width, 5);
    expect(g.thresholdX!).toBeLessThan(g.width);
  });
  it('has no threshold line without a threshold', () => {
    expect(chartGeometry({ ...m, threshold: null }).thresholdX).toBeNull();
  });
});
