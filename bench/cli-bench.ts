/**
 * Scenario k: `p2pmq bench`, the CLI's load test, as a user runs it against a broker in memory
 * (the broker of scenario a, in its own process): 1 producer and 1 consumer, 100-byte publishes,
 * BENCH_CLI_COUNT of them, the first BENCH_WARMUP seconds left out as a leaves them; its consumers'
 * msg/s, to set beside a's.
 */
import { timeCommand } from './startup.js'

export interface CliBenchResult {
  /** What `p2pmq bench -json` printed. */
  producedPerSecond: number
  consumedPerSecond: number
  latencyMs: { p50: number, p99: number }
}

/** Runs `p2pmq bench -json` against the broker at `addr`, to its end (at most 2 minutes). */
export async function cliBench (addr: string, count: number, warmupMs: number, env: NodeJS.ProcessEnv): Promise<CliBenchResult> {
  const { out } = await timeCommand(['bench', `-broker=${addr}`, `-count=${count}`, `-warmup=${warmupMs}`, '-json'], env, undefined, 120_000)
  return JSON.parse(out) as CliBenchResult
}
