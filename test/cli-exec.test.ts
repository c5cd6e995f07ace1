/** `p2pmq consumer -exec` and stopping clients with Ctrl+C, through the CLI as a user runs it (real broker and client processes). */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run, startBroker, type Proc } from './cli-helpers.js'
import { EXIT } from '../cmd/exit-codes.js'
import { onCleanup, tempDir, until } from './helpers.js'

/** Whether process `pid` runs (a zombie waiting for its parent counts as gone). */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** The PIDs the -exec commands wrote to `file`, one a line; each is killed after the test if still there. */
function pids (file: string): number[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map(Number)
}

function killAfterTest (file: string): void {
  onCleanup(() => {
    for (const pid of pids(file)) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
  })
}

async function exitWithin (proc: Proc, ms: number): Promise<number | string | null> {
  return await Promise.race([proc.exited, new Promise<string>((resolve) => setTimeout(() => resolve(`still running after ${ms} ms`), ms))])
}

/** A shell command that starts `sleep <s>` in the background, writes its PID to `file`, and waits for it (the grandchild of the consumer). */
function sleeper (s: number, file: string, then = ''): string {
  return `sleep ${s} & echo $! >> ${file}; wait${then !== '' ? `; ${then}` : ''}`
}

describe('p2pmq consumer -exec', () => {
  it('a command past -timeout has its process group killed (its grandchild is gone) and the next attempt runs at once', async () => {
    const home = await tempDir()
    const file = join(home, 'pids')
    killAfterTest(file)
    const broker = await startBroker(home, ['-memory', '-retry-delay=0', '-max-attempts=2'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, `-exec=${sleeper(60, file)}`, '-timeout=1000'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-publish', '-count=1'], home)
    expect(await exitWithin(producer, 15_000)).toBe(0)
    await until(() => pids(file).length >= 1, 10_000, 'the first attempt to start its sleep')
    const [first] = pids(file)
    // Killed at the timeout: SIGTERM to the group; the second attempt is not held behind it.
    await until(() => !alive(first), 5_000, `the timed-out grandchild ${first} to be killed`)
    await until(() => pids(file).length >= 2, 5_000, 'the second attempt to start')
    await until(() => !alive(pids(file)[1]), 5_000, 'the second grandchild to be killed')
    expect(consumer.err.some((l) => l.includes('ran past -timeout=1000 ms; its process group was killed'))).toBe(true)
  }, 60_000)

  it('stopping the consumer (SIGTERM) kills the process groups of its commands', async () => {
    const home = await tempDir()
    const file = join(home, 'pids')
    killAfterTest(file)
    const broker = await startBroker(home, ['-memory'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, `-exec=${sleeper(60, file)}`, '-workers=2'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-publish', '-count=2'], home)
    expect(await exitWithin(producer, 15_000)).toBe(0)
    await until(() => pids(file).length === 2, 10_000, 'both commands to start their sleep')
    consumer.child.kill('SIGTERM')
    expect(await exitWithin(consumer, 10_000)).toBe(0)
    for (const pid of pids(file)) await until(() => !alive(pid), 3_000, `the grandchild ${pid} to be killed with its consumer`)
  }, 60_000)

  it('a command that exits 65 rejects its message: it goes to the dead letters at once, without retries', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory', '-retry-delay=0'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, '-command=job', '-exec=echo "bad input" >&2; exit 65'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-command=job', '-count=1', '-json'], home)
    expect(await exitWithin(producer, 15_000)).toBe(EXIT.MESSAGES_FAILED)
    expect(JSON.parse(producer.out[0]).error).toContain('bad input')
    const dlq = run(['dlq', 'list', `-broker=${broker.peerId}`, '-json'], home)
    expect(await exitWithin(dlq, 15_000)).toBe(0)
    expect(dlq.out.map((l) => JSON.parse(l).command)).toEqual(['job.dlq'])
    expect(consumer.out.filter((l) => l.startsWith('job '))).toHaveLength(1)
    expect(consumer.out.some((l) => l.includes('(attempt 2)'))).toBe(false)
  }, 60_000)

  it('a command whose answer exceeds the broker\'s -max-payload rejects its message; the consumer stays connected', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory', '-retry-delay=0', '-max-payload=1000'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, '-command=big', '-exec=head -c 200000 /dev/zero | tr "\\0" a'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-command=big', '-count=1', '-json'], home)
    expect(await exitWithin(producer, 15_000)).toBe(EXIT.MESSAGES_FAILED)
    expect(JSON.parse(producer.out[0]).error).toContain('exceeds the broker\'s limit of 1000')
    // Not retried, and the consumer's connection was not dropped for an oversized frame.
    expect(consumer.out.some((l) => l.includes('(attempt 2)'))).toBe(false)
    expect([...consumer.out, ...consumer.err].some((l) => l.includes('Disconnected'))).toBe(false)
  }, 60_000)

  it('a command that prints without end is killed once past the largest answer a broker takes; the message is rejected', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory', '-retry-delay=0'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, '-command=flood', '-exec=yes p2pmq'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-command=flood', '-count=1', '-json'], home)
    expect(await exitWithin(producer, 30_000)).toBe(EXIT.MESSAGES_FAILED)
    expect(JSON.parse(producer.out[0]).error).toMatch(/printed more than \d+ bytes/)
    expect(consumer.child.exitCode).toBeNull()
  }, 60_000)
})

describe('Ctrl+C', () => {
  it('a consumer that has not reached its broker yet stops at the first Ctrl+C (exit 0)', async () => {
    const home = await tempDir()
    // A peer ID no broker on this host has: the consumer keeps retrying its dial.
    const consumer = run(['consumer', '-broker=12D3KooWFpvDQuXYThkewtAU1Y1Kzgw8Lvkv7RNBU5urdwCpey8c'], home)
    await until(() => consumer.err.some((l) => l.startsWith('Cannot reach the broker')), 15_000, 'the consumer to retry its dial')
    consumer.child.kill('SIGINT')
    expect(await exitWithin(consumer, 10_000)).toBe(0)
    expect(consumer.out.some((l) => l.startsWith('Subscribed'))).toBe(false)
  }, 60_000)

  it('a consumer finishes the message it is handling within -grace; one too slow for its default 5 s goes back to another consumer', async () => {
    const home = await tempDir()
    const file = join(home, 'pids')
    killAfterTest(file)
    const broker = await startBroker(home, ['-memory', '-retry-delay=0'])

    // Finishes in time: its answer reaches the producer, then it exits 0.
    const a = run(['consumer', `-broker=${broker.peerId}`, '-exec=sleep 2; echo A'], home)
    await until(() => a.out.some((l) => l.startsWith('Subscribed')), 15_000, 'consumer A to subscribe')
    const p1 = run(['producer', `-broker=${broker.peerId}`, '-count=1', '-json'], home)
    await until(() => a.out.some((l) => l.includes('(attempt 1)')), 15_000, 'consumer A to get the message')
    a.child.kill('SIGINT')
    expect(await exitWithin(a, 10_000)).toBe(0)
    expect(a.err.some((l) => /^SIGINT: finishing 1 message \(up to 5000 ms\)/.test(l))).toBe(true)
    expect(await exitWithin(p1, 10_000)).toBe(0)
    expect(JSON.parse(p1.out[0]).answer).toBe('A')

    // Too slow for -grace: given back when it leaves, answered by B; its command is killed.
    const slow = run(['consumer', `-broker=${broker.peerId}`, `-exec=${sleeper(30, file, 'echo A')}`, '-timeout=60000'], home)
    await until(() => slow.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the slow consumer to subscribe')
    const p2 = run(['producer', `-broker=${broker.peerId}`, '-count=1', '-json', '-timeout=30000'], home)
    await until(() => pids(file).length === 1, 15_000, 'the slow consumer to start on the message')
    const b = run(['consumer', `-broker=${broker.peerId}`, '-exec=echo B'], home)
    await until(() => b.out.some((l) => l.startsWith('Subscribed')), 15_000, 'consumer B to subscribe')
    slow.child.kill('SIGINT')
    expect(await exitWithin(slow, 15_000)).toBe(0)
    expect(await exitWithin(p2, 15_000)).toBe(0)
    expect(JSON.parse(p2.out[0]).answer).toBe('B')
    expect(b.out.some((l) => l.includes('(attempt 2)'))).toBe(true)
    await until(() => !alive(pids(file)[0]), 3_000, 'the slow command to be killed')
  }, 90_000)

  it('a second Ctrl+C makes a consumer leave at once (exit 130), killing its commands', async () => {
    const home = await tempDir()
    const file = join(home, 'pids')
    killAfterTest(file)
    const broker = await startBroker(home, ['-memory'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, `-exec=${sleeper(60, file)}`], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const producer = run(['producer', `-broker=${broker.peerId}`, '-publish', '-count=1'], home)
    expect(await exitWithin(producer, 15_000)).toBe(0)
    await until(() => pids(file).length === 1, 10_000, 'the command to start its sleep')
    consumer.child.kill('SIGINT')
    await until(() => consumer.err.some((l) => l.startsWith('SIGINT: finishing 1 message')), 5_000, 'the consumer to say what it finishes')
    consumer.child.kill('SIGINT')
    expect(await exitWithin(consumer, 2_000)).toBe(130)
    await until(() => !alive(pids(file)[0]), 3_000, 'the command to be killed')
  }, 60_000)

  it('a producer says what it waits for; it exits once answered, or at once on a second Ctrl+C', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory'])
    const consumer = run(['consumer', `-broker=${broker.peerId}`, '-exec=sleep 3; echo ok', '-workers=3'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed')), 15_000, 'the consumer to subscribe')
    const taken = (): number => consumer.out.filter((l) => l.includes('(attempt 1)')).length

    const patient = run(['producer', `-broker=${broker.peerId}`, '-count=3', '-interval=0', '-json'], home)
    await until(() => taken() === 3, 15_000, 'the consumer to take 3 messages')
    patient.child.kill('SIGINT')
    await until(() => patient.err.includes('SIGINT: waiting for 3 answers; Ctrl+C again to quit'), 5_000, 'the producer to say what it waits for')
    expect(await exitWithin(patient, 15_000)).toBe(0)
    expect(patient.out.map((l) => JSON.parse(l).answer)).toEqual(['ok', 'ok', 'ok'])

    const quitter = run(['producer', `-broker=${broker.peerId}`, '-count=3', '-interval=0', '-json'], home)
    await until(() => taken() === 6, 15_000, 'the consumer to take 3 more messages')
    quitter.child.kill('SIGINT')
    await until(() => quitter.err.includes('SIGINT: waiting for 3 answers; Ctrl+C again to quit'), 5_000, 'the producer to say what it waits for')
    quitter.child.kill('SIGINT')
    expect(await exitWithin(quitter, 2_000)).toBe(EXIT.MESSAGES_FAILED)
    expect(quitter.err).toContain('Stopped by SIGINT: 0 of 3 sent answered, 3 not answered (the broker may or may not have them)')
    // Its commands end with it, not after the test.
    consumer.child.kill('SIGTERM')
    expect(await exitWithin(consumer, 15_000)).toBe(0)
  }, 90_000)
})
