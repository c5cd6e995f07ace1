/** The `p2pmq` CLI as real child processes, for the CLI and crash tests (built JS from `npm test`'s pretest). */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { onCleanup, until } from './helpers.js'
import type { Host, Network } from './netns.js'

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

/** A line a long-running command logs as it runs (cmd/log.ts): `<ISO time> <LEVEL> <text>`. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR) (.*)$/

/** The texts of the lines of `lines` logged at `level`, without their stamp. */
export function logged (lines: string[], level: 'INFO' | 'WARN' | 'ERROR'): string[] {
  return lines.flatMap((l) => {
    const m = LOG_LINE.exec(l)
    return m?.[1] === level ? [m[2]] : []
  })
}

/** A data listener that adds each complete line of a child's output to `into` (and when it came to `at`). */
export function lines (into: string[], at?: number[]): (b: Buffer) => void {
  let rest = ''
  return (b) => {
    const parts = (rest + b.toString()).split('\n')
    rest = parts.pop() ?? ''
    into.push(...parts)
    at?.push(...parts.map(() => performance.now()))
  }
}

/** A command in a host of a test network: its output as lines, and when each stdout line came (performance.now()). */
export interface NetProc { child: ChildProcess, out: string[], outAt: number[], err: string[], exited: Promise<number | null> }

/**
 * Runs `cmd args` in `host` of `net` (test/netns.ts) with P2PMQ_HOME=home and no relay or STUN
 * server from this process's environment (`env` goes on top); killed at the network's teardown.
 */
export function runIn (net: Network, host: Host, cmd: string, args: string[], home: string, env: NodeJS.ProcessEnv = {}): NetProc {
  const child = net.run(host, cmd, args, { env: { ...process.env, P2PMQ_HOME: home, P2PMQ_RELAY: '', P2PMQ_STUN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: string[] = []
  const outAt: number[] = []
  const err: string[] = []
  child.stdout?.on('data', lines(out, outAt))
  child.stderr?.on('data', lines(err))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  return { child, out, outAt, err, exited }
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
  // (30 s: under the whole suite's load on two cores a start once took over 15.) What the broker
  // printed goes with a timeout: a relay-flood run in the whole suite timed out here twice.
  await until(() => proc.out.some((l) => l.startsWith('Web: ')), 30_000, 'the broker to listen and serve').catch((err: Error) => {
    throw new Error(`${err.message}; it printed ${JSON.stringify({ out: proc.out, err: proc.err })}`)
  })
  const peerId = proc.out.find((l) => l.startsWith('Broker peer ID: '))?.slice('Broker peer ID: '.length) ?? ''
  expect(peerId).toMatch(/^12D3KooW/)
  const listen = proc.out.find((l) => l.startsWith('Listening on'))
  expect(listen).toMatch(new RegExp(`^Listening on /ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peerId}$`))
  const tcp = (listen as string).slice('Listening on '.length)
  const url = (proc.out.find((l) => l.startsWith('Web: ')) as string).slice('Web: '.length)
  return { proc, peerId, tcp, url }
}
