/**
 * What the benchmark's parent and its child processes share: settings, result shapes, statistics,
 * and the two ends of the IPC channel (Proc/ProcGroup in the parent, `onCommand`/`report` in a
 * child). Every child is forked with an IPC channel; it exits when the parent goes away.
 */
import { fork, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { connectionVia } from '../src/relay-address.js'

/** The command every benchmark message names. */
export const BENCH_COMMAND = 'bench'
export const PAYLOAD_SIZE = 100
export const LISTEN = '/ip4/127.0.0.1/tcp/0'

export function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw == null || raw.trim() === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be a positive number, got "${raw}"`)
  return n
}

export function payload (size = PAYLOAD_SIZE): Uint8Array {
  const b = new Uint8Array(size)
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26)
  return b
}

// ---------------------------------------------------------------------------------------------
// Results

export interface ThroughputResult {
  /** Messages acked at the consumers between the warm-up mark and the end, all consumers. */
  acked: number
  /** Sum over consumers of acked / own measured seconds. */
  rate: number
  /** Publishes confirmed per second at the producer, over the whole run (warm-up included). */
  confirmedRate: number
  /** Publishes refused or failed at the producer (e.g. "broker full"). */
  publishFailures: number
  firstFailure?: string
  /** Messages still held by the broker when the run ended (waiting or in flight), if known. */
  backlog?: number
  /** The broker process's resident memory at the end, MB, if known. */
  brokerRssMB?: number
  /** CPU time of the broker process per acked message, µs, if known. */
  brokerCpuPerMsg?: number
  /** CPU use of each process over the measured window, as a fraction of one core. */
  cpu: Record<string, number>
}

export interface LatencyResult {
  count: number
  /** CPU time of each process per round trip (warm-up included), µs, when measured. */
  cpuPerTrip?: Record<string, number>
  p50: number
  p99: number
  p999: number
  mean: number
  max: number
}

export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.max(1, Math.ceil(p * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]
}

export function latencyOf (samplesUs: number[]): LatencyResult {
  const sorted = [...samplesUs].sort((a, b) => a - b)
  const sum = sorted.reduce((a, b) => a + b, 0)
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    mean: sorted.length > 0 ? sum / sorted.length : NaN,
    max: sorted.length > 0 ? sorted[sorted.length - 1] : NaN
  }
}

export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux architecture in use). */
const USER_HZ = 100

/** CPU time (user + system) a process has used, in µs, from /proc (Linux; 10 ms steps). Undefined elsewhere. */
export function cpuUsOf (pid: number): number | undefined {
  try {
    // Fields after the command name (in brackets, which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1e6 / USER_HZ
  } catch {
    return undefined
  }
}

/** The machine's CPU time so far, in /proc/stat's ticks: all of it, and what the hypervisor gave other guests (steal). Undefined off Linux. */
export function cpuTicks (): { total: number, steal: number } | undefined {
  try {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 }
  } catch {
    return undefined
  }
}

/** The share of the cores' time stolen by the hypervisor since `before` (a noisy VM's runs are worth less), in %. */
export function stealSince (before: ReturnType<typeof cpuTicks>): number | undefined {
  const now = cpuTicks()
  if (before == null || now == null || now.total <= before.total) return undefined
  return 100 * (now.steal - before.steal) / (now.total - before.total)
}

/**
 * A process's resident memory now and its peak (VmHWM) in MB, from /proc (Linux); `reset` starts a
 * new peak (clear_refs 5). Undefined elsewhere.
 */
export function memoryOf (pid: number, reset = false): { rssMB: number, peakMB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
    if (reset) writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return { rssMB: kb('VmRSS') / 1024, peakMB: kb('VmHWM') / 1024 }
  } catch {
    return undefined
  }
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

// ---------------------------------------------------------------------------------------------
// Parent side

/** A message on the IPC channel: children answer with `type`, parents command with `cmd`. */
export interface Msg { type: string, [key: string]: unknown }
export interface Cmd { cmd: string, [key: string]: unknown }

interface Waiter {
  type: string
  resolve: (m: Msg) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/** Every child this process forked and that has not exited: killed on any way out. */
const live = new Set<ChildProcess>()

export function killAll (): void {
  for (const child of live) {
    try { child.kill('SIGKILL') } catch {}
  }
}

let guarded = false
function guardExit (): void {
  if (guarded) return
  guarded = true
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

/** One forked child: commands out, typed messages in (kept until asked for, so none is missed). */
export class Proc {
  private readonly inbox: Msg[] = []
  private readonly waiters: Waiter[] = []
  private exitError?: Error
  readonly exited: Promise<void>

  constructor (readonly name: string, readonly child: ChildProcess) {
    live.add(child)
    child.on('message', (raw) => {
      const m = raw as Msg
      if (m.type === 'error') {
        this.failAll(new Error(`${this.name}: ${String(m.message)}`))
        return
      }
      const i = this.waiters.findIndex((w) => w.type === m.type)
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1)
        clearTimeout(w.timer)
        w.resolve(m)
      } else {
        this.inbox.push(m)
      }
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child)
        this.failAll(new Error(`${this.name} exited (code ${String(code)}, signal ${String(signal)})`))
        resolve()
      })
    })
    child.on('error', (err) => { this.failAll(new Error(`${this.name}: ${err.message}`)) })
  }

  get alive (): boolean {
    return this.child.exitCode == null && this.child.signalCode == null
  }

  send (cmd: Cmd): void {
    if (this.alive && this.child.connected) this.child.send(cmd)
  }

  /** The next message of this type (one that already arrived, or the next to come). */
  async next<T extends Msg = Msg> (type: string, timeoutMs = 30_000): Promise<T> {
    const i = this.inbox.findIndex((m) => m.type === type)
    if (i >= 0) return this.inbox.splice(i, 1)[0] as T
    if (this.exitError != null) throw this.exitError
    return await new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        type,
        resolve: (m) => { resolve(m as T) },
        reject,
        timer: setTimeout(() => {
          const j = this.waiters.indexOf(w)
          if (j >= 0) this.waiters.splice(j, 1)
          reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      this.waiters.push(w)
    })
  }

  async request<T extends Msg = Msg> (cmd: Cmd, type: string, timeoutMs = 30_000): Promise<T> {
    const answer = this.next<T>(type, timeoutMs)
    this.send(cmd)
    return await answer
  }

  private failAll (err: Error): void {
    this.exitError ??= err
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(err)
    }
  }
}

/**
 * The environment and Node flags the `p2pmq` command starts with, read from its first line
 * (`#!/usr/bin/env -S NAME=value … node --flag …`), so the bench's brokers run as `p2pmq broker`
 * does. See cmd/p2pmq.ts for why they are there.
 */
export const P2PMQ_LAUNCH = ((): { env: Record<string, string>, nodeFlags: string[] } => {
  const command = fileURLToPath(new URL('../cmd/p2pmq.js', import.meta.url))
  const first = readFileSync(command, 'utf8').split('\n', 1)[0]
  const words = first.replace(/^#!\/usr\/bin\/env -S /, '').split(' ')
  const node = words.indexOf('node')
  if (!first.startsWith('#!/usr/bin/env -S ') || node < 0) throw new Error(`Unexpected first line in ${command}: ${first}`)
  return {
    env: Object.fromEntries(words.slice(0, node).map((w) => w.split('=', 2) as [string, string])),
    nodeFlags: words.slice(node + 1)
  }
})()

/** Where a child runs when not forked here: how to spawn it (e.g. `Network.run` for a host), and its own environment. */
export interface StartIn {
  spawn: (cmd: string, args: string[], options: SpawnOptions) => ChildProcess
  env?: NodeJS.ProcessEnv
}

/** The children of one benchmark run: all stopped together, whatever happened. */
export class ProcGroup {
  private readonly procs: Proc[] = []
  private closing = false
  /** Children stopped or killed on purpose (a crash the run makes), whose exit is no failure. */
  private readonly killed = new Set<ChildProcess>()
  private failure?: Error
  private readonly onFailure = new Set<(err: Error) => void>()

  constructor (private readonly env: NodeJS.ProcessEnv) {
    guardExit()
  }

  /** Waits `ms`, but fails at once if a child of the group exits before `close`. */
  async sleep (ms: number): Promise<void> {
    if (this.failure != null) throw this.failure
    let timer: ReturnType<typeof setTimeout> | undefined
    let fail: ((err: Error) => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(resolve, ms)
        fail = reject
        this.onFailure.add(reject)
      })
    } finally {
      clearTimeout(timer)
      if (fail != null) this.onFailure.delete(fail)
    }
  }

  /**
   * Forks `script` (an absolute path to a compiled .js file) with an IPC channel; with `where`,
   * spawns `node <execArgv> script <args>` through it instead (e.g. inside a network namespace),
   * with `env` added to the group's.
   */
  start (name: string, script: string, args: string[], execArgv: string[] = [], where?: StartIn): Proc {
    const options = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as StdioOptions, serialization: 'json' as const }
    const child = where == null
      ? fork(script, args, { ...options, env: this.env, execArgv })
      : where.spawn(process.execPath, [...execArgv, script, ...args], { ...options, env: { ...this.env, ...where.env } })
    const proc = new Proc(name, child)
    this.procs.push(proc)
    child.once('exit', (code, signal) => {
      if (this.closing || this.killed.has(child)) return
      this.failure ??= new Error(`${name} exited during the run (code ${String(code)}, signal ${String(signal)})`)
      for (const f of this.onFailure) f(this.failure)
    })
    return proc
  }

  /** Kills a child with SIGKILL (a crash) and waits for it to be gone. */
  async kill (proc: Proc): Promise<void> {
    this.killed.add(proc.child)
    proc.child.kill('SIGKILL')
    await proc.exited
  }

  /** Asks a child to exit, and waits for it to be gone. */
  async stop (proc: Proc): Promise<void> {
    this.killed.add(proc.child)
    proc.send({ cmd: 'exit' })
    await proc.exited
  }

  /** Asks every child to exit, then kills what is left after `graceMs`. */
  async close (graceMs = 3_000): Promise<void> {
    this.closing = true
    for (const p of this.procs) p.send({ cmd: 'exit' })
    const all = Promise.all(this.procs.map(async (p) => { await p.exited }))
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([all, new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })])
    clearTimeout(timer)
    for (const p of this.procs) {
      if (p.alive) p.child.kill('SIGKILL')
    }
    await all
  }
}

// ---------------------------------------------------------------------------------------------
// Child side

/** Sends one message to the parent. */
export function report (msg: Msg): void {
  if (process.connected) process.send?.(msg)
}

/** Reports the error to the parent and exits (once the report is sent, or after 500 ms). */
export function die (err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err)
  console.error(`[bench child ${process.pid}] ${message}`)
  const exit = (): void => { process.exit(1) }
  if (process.connected && process.send != null) {
    process.send({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () => { exit() })
    setTimeout(exit, 500).unref()
  } else {
    exit()
  }
}

/**
 * Handles the parent's commands in order; `exit` runs `stop` (bounded to 2 s) and exits. The child
 * also exits when the parent goes away (the IPC channel closes).
 */
export function onCommand (handle: (cmd: Cmd) => void | Promise<void>, stop: () => Promise<void>): void {
  let exiting = false
  const exit = async (code: number): Promise<void> => {
    if (exiting) return
    exiting = true
    const timer = setTimeout(() => process.exit(code), 2_000)
    try { await stop() } catch {}
    clearTimeout(timer)
    process.exit(code)
  }
  process.on('disconnect', () => { void exit(1) })
  process.on('unhandledRejection', (err) => { die(err) })
  let chain = Promise.resolve()
  process.on('message', (raw) => {
    const cmd = raw as Cmd
    if (cmd.cmd === 'exit') {
      void exit(0)
      return
    }
    chain = chain.then(async () => { await handle(cmd) }).catch(die)
  })
}

/** CPU time of this process since a mark, and the wall time, for a "fraction of a core" figure. */
export class CpuMeter {
  private cpu = process.cpuUsage()
  private wall = performance.now()

  mark (): void {
    this.cpu = process.cpuUsage()
    this.wall = performance.now()
  }

  /** { µs of CPU, ms of wall time } since the mark. */
  since (): { cpuUs: number, wallMs: number } {
    const d = process.cpuUsage(this.cpu)
    return { cpuUs: d.user + d.system, wallMs: performance.now() - this.wall }
  }
}

// ---------------------------------------------------------------------------------------------
// Clients across networks (scenario h)

/** Env of a client child across the NAT harness: JSON of NetClient. */
export const NET_CLIENT_ENV = 'BENCH_NET_CLIENT'

/**
 * A client child across the NAT harness: the broker is given by peer ID and found through
 * `relays`; with `stun`, the client may upgrade to WebRTC; `direct`: it reports ready only once
 * its connection to the broker is direct; `firstAnswer` (a producer): it sends one request as
 * soon as it is connected and reports how long that took from its start.
 */
export interface NetClient { relays: string[], stun?: string[], direct?: boolean, firstAnswer?: boolean }

export function netClient (): NetClient | undefined {
  const raw = process.env[NET_CLIENT_ENV]
  return raw == null || raw === '' ? undefined : JSON.parse(raw) as NetClient
}

/** The broker's peer ID, from a peer ID or a multiaddr ending in /p2p/<peerId>. */
export function brokerPeerOf (broker: string): string {
  return broker.split('/p2p/').at(-1) as string
}

/** How a client node is connected to the broker: one of webrtc, relay, tcp per open connection. */
export function viasTo (node: { getConnections: () => Array<{ remotePeer: { toString: () => string }, remoteAddr: { toString: () => string } }> }, peer: string): string[] {
  return node.getConnections().filter((c) => c.remotePeer.toString() === peer).map((c) => connectionVia(c.remoteAddr.toString()))
}

/** Waits (at most `timeoutMs`) until the client's only connections to the broker are WebRTC and its stream is open again. */
export async function untilDirect (client: { connected: boolean, node: Parameters<typeof viasTo>[0] }, peer: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const vias = viasTo(client.node, peer)
    if (client.connected && vias.length > 0 && vias.every((v) => v === 'webrtc')) return
    if (Date.now() > deadline) throw new Error(`No direct connection to the broker within ${timeoutMs} ms (connected by ${vias.length > 0 ? vias.join(', ') : 'nothing'})`)
    await sleep(20)
  }
}
