/** Per-group fairness bar chart (SVG) with each metric's threshold drawn as a line. */
import type { FairnessMetric } from './types';

export interface Bar {
  group: string;
  value: number | null;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ChartGeometry {
  bars: Bar[];
  threshold: number | null;
  thresholdX: number | null;
  overallX: number | null;
  max: number;
  width: number;
  height: number;
  plotTop: number;
  plotBottom: number;
}

/** Geometry of one metric's chart; pure so it is unit-tested. */
export function chartGeometry(metric: FairnessMetric, width = 260, height = 130): ChartGeometry {
  const groups = Object.entries(metric.groups);
  const values = groups.map(([, v]) => v ?? 0);
  const max = Math.max(1e-9, ...values, metric.threshold ?? 0, metric.overall ?? 0) * 1.1;
  const left = 70;
  const plotTop = 6;
  const rowH = Math.max(14, Math.min(24, (height - 24) / Math.max(1, groups.length)));
  const plotBottom = plotTop + rowH * groups.length;
  const plotW = width - left - 44;
  const bars = groups.map(([group, value], i) => ({
    group,
    value,
    x: left,
    y: plotTop + i * rowH + 2,
    width: value === null ? 0 : (Math.max(0, value) / max) * plotW,
    height: rowH - 4
  }));
  const xOf = (v: number | null): number | null => (v === null ? null : left + (v / max) * plotW);
  return {
    bars,
    threshold: metric.threshold,
    thresholdX: xOf(metric.threshold),
    overallX: xOf(metric.overall),
    max,
    width,
    height: plotBottom + 18,
    plotTop,
    plotBottom
  };
}
