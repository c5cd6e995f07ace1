/**
 * Scenario k: `p2pmq bench`, the CLI's load test, as a user runs it against a broker in memory
 * (the broker of scenario a, in its own process): 1 producer and 1 consumer, 100-byte publishes,
 * BENCH_CLI_COUNT of them, the first BENCH_WARMUP seconds left out as a leaves them; its consumers'
 * msg/s, to set beside a's.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { P2PMQ_LAUNCH } from './common.js'

const COMMAND = fileURLToPath(new URL('../cmd/p2pmq.js', import.meta.url))

export interface CliBenchResult {
  /** What `p2pmq bench -json` printed. */
  producedPerSecond: number
  consumedPerSecond: number
  latencyMs: { p50: number, p99: number }
}

/** Runs `p2pmq bench -json` against the broker at `addr`, to its end (at most `timeoutMs`). */
export async function cliBench (addr: string, count: number, warmupMs: number, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<CliBenchResult> {
  const args = ['bench', `-broker=${addr}`, `-count=${count}`, `-warmup=${warmupMs}`, '-json']
  const child = spawn(process.execPath, [...P2PMQ_LAUNCH.nodeFlags, COMMAND, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`p2pmq ${args.join(' ')} took over ${timeoutMs} ms`)) }, timeoutMs)
      child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
    })
    if (code !== 0) throw new Error(`p2pmq ${args.join(' ')} exited with ${String(code)}: ${err.trim()}`)
    return JSON.parse(out) as CliBenchResult
  } finally {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  }
}
