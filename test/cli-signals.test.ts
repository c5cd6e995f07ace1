/** The CLI and SIGTERM/SIGINT: during a broker's startup as PID 1 of a container, and a producer that cannot reach its broker. */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { killGroup, logged, run, startBroker } from './cli-helpers.js'
import { tempDir, until } from './helpers.js'

/** Why the PID-namespace test cannot run here, or undefined when it can. */
function noNamespaces (): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare -p)'
  try { execFileSync('unshare', ['-p', '-f', '--mount-proc', 'true'], { stdio: 'ignore' }) } catch { return 'unshare -p -f --mount-proc does not work here' }
  return undefined
}
const skipReason = noNamespaces()

/** The host PID of the child of `parent` (unshare forks the namespace's PID 1). */
function childOf (parent: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) return Number(entry)
    } catch {}
  }
  return undefined
}

/**
 * Whether process `pid` has loaded the broker's code (a native addon is mapped): past the start of
 * the command, and before the broker is up. (SigCgt cannot tell: Node always catches SIGTERM, and
 * re-raises it when no listener is installed, which PID 1 ignores.)
 */
function brokerCodeLoaded (pid: number): boolean {
  try {
    return /\.node$/m.test(readFileSync(`/proc/${pid}/maps`, 'utf8'))
  } catch {
    return false
  }
}

describe('p2pmq and signals', () => {
  it.skipIf(skipReason != null)(`a broker that is PID 1 (a container) and gets SIGTERM while it starts stops once it is up, exit 0${skipReason != null ? ` (skipped: ${skipReason})` : ''}`, async () => {
    const home = await tempDir()
    const proc = run(['broker', '-http=0', '-memory'], home, ['unshare', '-p', '-f', '--mount-proc'])
    let node: number | undefined
    await until(() => (node = childOf(proc.child.pid as number)) != null && brokerCodeLoaded(node), 15_000, 'the broker to load')
    // Still starting: it has not printed its peer ID.
    expect(proc.out.filter((l) => l.startsWith('Broker peer ID'))).toEqual([])
    process.kill(node as number, 'SIGTERM')
    const code = await Promise.race([proc.exited, new Promise((resolve) => setTimeout(() => resolve('still running 15 s after SIGTERM'), 15_000))])
    expect(code).toBe(0)
    expect(logged(proc.out, 'INFO')).toContain('Stopping broker')
  }, 40_000)

  it('a producer whose broker is gone exits on the first SIGTERM or SIGINT, saying what was not confirmed (exit 4)', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory'])
    killGroup(broker.proc.child)
    await broker.proc.exited
    for (const [signal, mode] of [['SIGTERM', '-publish'], ['SIGINT', '-json']] as const) {
      const producer = run(['producer', `-broker=${broker.peerId}`, '-count=1', mode], home)
      await until(() => producer.err.some((l) => l.startsWith('Cannot reach the broker')), 15_000, 'the producer to retry')
      producer.child.kill(signal)
      const code = await Promise.race([producer.exited, new Promise((resolve) => setTimeout(() => resolve(`still running 10 s after ${signal}`), 10_000))])
      expect(code).toBe(4) // some messages failed (not confirmed)
      const done = mode === '-publish' ? 'confirmed' : 'answered'
      expect(producer.err).toContain(`Stopped by ${signal}: 0 of 1 sent ${done}, 1 not ${done} (the broker may or may not have them)`)
    }
  }, 60_000)
})
