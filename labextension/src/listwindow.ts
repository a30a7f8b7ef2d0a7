/** Which rows of a fixed-row-height list are drawn: the visible ones plus an overscan. */
export interface RowWindow {
  start: number;
  end: number;
  offsetTop: number;
  totalHeight: number;
}

export function rowWindow(
  count: number,
  rowHeight: number,
  scrollTop: number,
  viewportHeight: number,
  overscan = 8
): RowWindow {
  const totalHeight = count * rowHeight;
  if (count === 0) {
    return { start: 0, end: 0, offsetTop: 0, totalHeight: 0 };
  }
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const visible = Math.ceil(Math.max(viewportHeight, rowHeight) / rowHeight) + 1;
  const start = Math.max(0, Math.min(first - overscan, count - 1));
  const end = Math.min(count, first + visible + overscan);
  return { start, end, offsetTop: start * rowHeight, totalHeight };
}
