/** The `p2pmq` CLI as real child processes, for the CLI and crash tests (built JS from `npm test`'s pretest). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { onCleanup, until } from './helpers.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))

export interface Proc {
  child: ChildProcessWithoutNullStreams
  out: string[]
  err: string[]
  exited: Promise<number | null>
}

/**
 * Runs `p2pmq <args>` with P2PMQ_HOME=home (and `env` over this process's environment), under the
 * command `wrap` if given (e.g. unshare); stopped (its whole process group) after the test.
 */
export function run (args: string[], home: string, wrap: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
  const argv = [...wrap, process.execPath, BIN, ...args]
  // Its own process group, so killing it also kills what it spawned (-exec commands).
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, P2PMQ_HOME: home, ...env }, detached: true })
  const out: string[] = []
  const err: string[] = []
  child.stdout.on('data', lines(out))
  child.stderr.on('data', lines(err))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  onCleanup(async () => {
    killGroup(child)
    if (child.exitCode == null && child.signalCode == null) await exited
  })
  return { child, out, err, exited }
}

/** A data listener that adds each complete line of a child's output to `into`. */
export function lines (into: string[]): (b: Buffer) => void {
  let rest = ''
  return (b) => {
    const parts = (rest + b.toString()).split('\n')
    rest = parts.pop() ?? ''
    into.push(...parts)
  }
}

export function killGroup (child: ChildProcessWithoutNullStreams): void {
  try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
}

/**
 * Starts `p2pmq broker` (with `args`) and waits until it listens and serves its web page. Returns
 * its TCP multiaddr (`tcp`) and web address (`url`) too.
 */
export async function startBroker (home: string, args: string[] = [], wrap: string[] = []): Promise<{ proc: Proc, peerId: string, tcp: string, url: string }> {
  // The web server on any free port, so brokers of tests running side by side do not collide.
  const proc = run(['broker', ...(args.some((a) => a.startsWith('-http')) ? args : ['-http=0', ...args])], home, wrap)
  await until(() => proc.out.some((l) => l.startsWith('Web: ')), 15_000, 'the broker to listen and serve')
  const peerId = proc.out.find((l) => l.startsWith('Broker peer ID: '))?.slice('Broker peer ID: '.length) ?? ''
  expect(peerId).toMatch(/^12D3KooW/)
  const listen = proc.out.find((l) => l.startsWith('Listening on'))
  expect(listen).toMatch(new RegExp(`^Listening on /ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peerId}$`))
  const tcp = (listen as string).slice('Listening on '.length)
  const url = (proc.out.find((l) => l.startsWith('Web: ')) as string).slice('Web: '.length)
  return { proc, peerId, tcp, url }
}
