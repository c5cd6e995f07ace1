/**
 * Scenario g, startup: wall time of `p2pmq -help`, and of a `p2pmq producer` process from its spawn
 * to its first answer from a broker and consumer already running (both children of the benchmark),
 * each run with the Node flags and environment of the command's first line.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { P2PMQ_LAUNCH, ProcGroup, type Msg } from './common.js'

const COMMAND = fileURLToPath(new URL('../cmd/p2pmq.js', import.meta.url))

export interface StartupResult {
  /** ms, one per run */
  help: number[]
  firstAnswer: number[]
}

/**
 * Runs `p2pmq <args>` as the command starts (its first line's flags), and resolves with the ms from
 * its spawn until `done` is true of a stdout line (or its exit 0, without `done`), and its stdout.
 */
export async function timeCommand (args: string[], env: NodeJS.ProcessEnv, done?: (line: string) => boolean, timeoutMs = 30_000): Promise<{ ms: number, out: string }> {
  const t0 = performance.now()
  const child = spawn(process.execPath, [...P2PMQ_LAUNCH.nodeFlags, COMMAND, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  try {
    return await new Promise<{ ms: number, out: string }>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`p2pmq ${args.join(' ')} took over ${timeoutMs} ms`)) }, timeoutMs)
      let out = ''
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString()
        if (done != null && out.split('\n').slice(0, -1).some(done)) { clearTimeout(timer); resolve({ ms: performance.now() - t0, out }) }
      })
      child.on('exit', (code) => {
        clearTimeout(timer)
        if (done == null && code === 0) resolve({ ms: performance.now() - t0, out })
        else reject(new Error(`p2pmq ${args.join(' ')} exited with ${String(code)} before it was done: ${err.trim()}`))
      })
    })
  } finally {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  }
}

/** `n` runs of each, against one in-memory broker and one answering consumer. */
export async function p2pmqStartup (n: number, e: { home: string, env: NodeJS.ProcessEnv }, script: (name: string) => string): Promise<StartupResult> {
  const help: number[] = []
  const firstAnswer: number[] = []
  const env = { ...e.env, ...P2PMQ_LAUNCH.env }
  for (let i = 0; i < n; i++) help.push((await timeCommand(['-help'], env)).ms)
  const group = new ProcGroup(e.env)
  try {
    const broker = group.start('broker', script('broker-proc.js'), [join(e.home, 'broker-startup'), e.home, 'memory'], P2PMQ_LAUNCH.nodeFlags)
    const { addr } = await broker.next<Msg & { addr: string }>('ready')
    const consumer = group.start('consumer', script('consumer-proc.js'), [addr, 'echo', '10', 'startup'])
    await consumer.next('ready')
    for (let i = 0; i < n; i++) {
      const { ms } = await timeCommand([
        'producer', `-broker=${addr}`, '-command=startup', '-count=1', '-interval=0'
      ], env, (line) => line.startsWith('Answer #1 '))
      firstAnswer.push(ms)
    }
  } finally {
    await group.close()
  }
  return { help, firstAnswer }
}
