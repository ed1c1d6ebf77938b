/**
 * Latency samples in microseconds (float, so sub-µs precision is kept until the summary), stored
 * raw in a growing Float64Array: exact percentiles, no histogram rounding. 1 M samples = 8 MB.
 */

/** Percentiles of one run, in microseconds. */
export interface LatencySummary {
  readonly count: number
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

export const EMPTY_SUMMARY: LatencySummary = { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 }

export class LatencyRecorder {
  private data = new Float64Array(1 << 16)
  private n = 0

  get count(): number {
    return this.n
  }

  add(us: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.n++] = us
  }

  summary(): LatencySummary {
    return summarize(this.data.subarray(0, this.n))
  }
}

/** Nearest-rank percentile of sorted samples (q in 0..1). */
export const percentile = (sorted: Float64Array, q: number): number => {
  if (sorted.length === 0) return 0
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)))
  return sorted[rank - 1]!
}

/** Summary of unsorted samples (the input is not modified). */
export const summarize = (samples: Float64Array): LatencySummary => {
  if (samples.length === 0) return EMPTY_SUMMARY
  const sorted = Float64Array.from(samples).sort()
  let sum = 0
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!
  const r = (x: number) => Math.round(x * 10) / 10
  return {
    count: sorted.length,
    mean: r(sum / sorted.length),
    p50: r(percentile(sorted, 0.5)),
    p90: r(percentile(sorted, 0.9)),
    p99: r(percentile(sorted, 0.99)),
    max: r(sorted[sorted.length - 1]!)
  }
}
