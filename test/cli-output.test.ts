/** The CLI when its output cannot be written (a reader gone, a full disk) or is read slowly: real child processes. */
import { spawn } from 'node:child_process'
import { openSync, closeSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { run, startBroker } from './cli-helpers.js'
import { onCleanup, tempDir, until } from './helpers.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const STACK = /\n\s+at /

/** Closes the reading end of a child's stdout after its first line, as `| head -1` does. */
function headOne (out: NodeJS.ReadableStream & { destroy: () => void }): Promise<void> {
  return new Promise((resolve) => {
    out.once('data', () => { out.destroy(); resolve() })
  })
}

describe('p2pmq output', () => {
  it('a broker whose stdout reader went away keeps serving; producer and consumer then exit quietly with 141', async () => {
    const home = await tempDir()
    const broker = await startBroker(home)
    broker.proc.child.stdout.destroy() // the reader of the broker's log goes away
    run(['consumer', `-broker=${broker.peerId}`, '-quiet'], home)
    const consumer = run(['consumer', `-broker=${broker.peerId}`], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 15_000, 'the consumer to subscribe')
    consumer.child.stdout.destroy()
    // Each message makes the consumer print a line, to its closed pipe.
    const producer = run(['producer', `-broker=${broker.peerId}`, '-count=20', '-interval=50'], home)
    await headOne(producer.child.stdout)
    expect(await producer.exited).toBe(141)
    expect(await consumer.exited).toBe(141)
    expect(producer.err.join('\n')).not.toMatch(/EPIPE|\n\s+at /)
    expect(consumer.err.join('\n')).not.toMatch(/EPIPE|\n\s+at /)
    // The broker logged joins and leaves to its closed pipe, and still serves.
    const publish = run(['producer', `-broker=${broker.peerId}`, '-count=2', '-interval=0', '-publish'], home)
    expect(await publish.exited).toBe(0)
    expect(broker.proc.child.exitCode).toBe(null)
    expect(broker.proc.err.join('\n')).not.toMatch(STACK)
    broker.proc.child.kill('SIGTERM')
    expect(await broker.proc.exited).toBe(0)
  }, 60_000)

  it('a broker logging to a full disk (/dev/full) keeps serving', async () => {
    const home = await tempDir()
    const full = openSync('/dev/full', 'w')
    onCleanup(() => { closeSync(full) })
    const child = spawn(process.execPath, [BIN, 'broker', '-http=0'], { env: { ...process.env, P2PMQ_HOME: home }, stdio: ['ignore', full, 'pipe'] })
    const err: string[] = []
    child.stderr?.on('data', (b: Buffer) => err.push(b.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    onCleanup(async () => { if (child.exitCode == null) { child.kill('SIGKILL'); await exited } })
    const brokers = join(home, 'brokers')
    await until(() => { try { return readdirSync(brokers).some((f) => f.endsWith('.json')) } catch { return false } }, 15_000, 'the broker to start')
    const peerId = readdirSync(brokers).find((f) => f.endsWith('.json'))!.slice(0, -'.json'.length)
    for (let i = 0; i < 2; i++) { // each producer joins and leaves: two log lines the disk cannot take
      const publish = run(['producer', `-broker=${peerId}`, '-count=1', '-publish'], home)
      expect(await publish.exited).toBe(0)
    }
    expect(child.exitCode).toBe(null)
    expect(err.join('')).not.toMatch(/ENOSPC|\n\s+at /)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })

  it('a slow stdout reader gets every line a command printed before it exits', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home)
    const count = 3000 // about 150 kB of lines: more than a pipe holds
    const producer = run(['producer', `-broker=${peerId}`, `-count=${count}`, '-interval=0', '-publish'], home)
    producer.child.stdout.pause()
    await until(() => producer.err.some((l) => l.startsWith(`${count} of ${count} confirmed`)), 60_000, 'the producer to finish')
    await new Promise((resolve) => setTimeout(resolve, 1000)) // it would have exited by now
    producer.child.stdout.resume()
    expect(await producer.exited).toBe(0)
    expect(producer.out.filter((l) => l.startsWith('Confirmed #'))).toHaveLength(count)
  })
})

describe('p2pmq output of what peers send', () => {
  /** Runs `p2pmq <args>` on a terminal (a pty of script(1)); its output lines, without the pty's \r. */
  function onTerminal (args: string[], home: string): { out: string[], exited: Promise<number | null> } {
    const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`
    const child = spawn('script', ['-qfec', [process.execPath, BIN, ...args].map(quote).join(' '), '/dev/null'], { env: { ...process.env, P2PMQ_HOME: home }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const out: string[] = []
    let rest = ''
    child.stdout.on('data', (b: Buffer) => {
      const parts = (rest + b.toString()).split('\n')
      rest = parts.pop() ?? ''
      out.push(...parts.map((l) => l.replace(/\r$/, '')))
    })
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    onCleanup(async () => { if (child.exitCode == null) { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} await exited } })
    return { out, exited }
  }

  it('on a terminal, payloads and answers show control characters escaped; piped, they stay bytes', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home)
    const consumer = onTerminal(['consumer', `-broker=${peerId}`], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 15_000, 'the consumer to subscribe')
    const evil = '\u001b[2J\u001b]52;c;aGk=\u0007\u202eok'
    const piped = run(['producer', `-broker=${peerId}`, '-count=1', `-payload=${evil}`], home)
    expect(await piped.exited).toBe(0)
    expect(piped.out.find((l) => l.startsWith('Answer #1'))).toContain(`Answer to ${evil}`)
    await until(() => consumer.out.some((l) => l.includes('(attempt 1)')), 10_000, 'the consumer to print the message')
    const line = consumer.out.find((l) => l.includes('(attempt 1)')) as string
    expect(line).toMatch(/: \\x1b\[2J\\x1b\]52;c;aGk=\\x07\\u202eok$/)
    // eslint-disable-next-line no-control-regex -- escape and bell are what it looks for
    expect(consumer.out.join('\n')).not.toMatch(/[\u001b\u0007\u202e]/)

    const terminal = onTerminal(['producer', `-broker=${peerId}`, '-count=1', `-payload=${evil}`], home)
    expect(await terminal.exited).toBe(0)
    const answer = terminal.out.find((l) => l.startsWith('Answer #1')) as string
    expect(answer).toMatch(/Answer to \\x1b\[2J\\x1b\]52;c;aGk=\\x07\\u202eok$/)
  }, 60_000)
})
