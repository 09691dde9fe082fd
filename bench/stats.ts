/** Order statistics for the bench's samples. */

/** The p-th percentile of an ascending list (nearest rank), NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
