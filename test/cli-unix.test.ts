/**
 * The CLI as a Unix tool, through real child processes as a user types it: a slow pipe reader gets
 * all of a large listing, a table of 150,000 rows, exit codes, `--version`, whole-number flags,
 * one-line errors, and `-data` as the data directory of every command that has one.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { killGroup, run, startBroker } from './cli-helpers.js'
import { onCleanup, tempDir, until } from './helpers.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
/** A class name in an error line: `TimeoutError: …`, `UsageError: …`. */
const CLASS_NAME = /\b\w*Error: /
const STACK = /^\s+at /m

/** Runs a bash pipeline (with pipefail) whose `$P2PMQ` is the CLI; its stdout and exit code. */
async function pipeline (script: string, home: string): Promise<{ out: string, err: string, code: number | null }> {
  const child = spawn('bash', ['-o', 'pipefail', '-c', script], {
    env: { ...process.env, P2PMQ_HOME: home, P2PMQ: `${process.execPath} ${BIN}` },
    detached: true
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  onCleanup(async () => {
    if (child.exitCode == null && child.signalCode == null) {
      killGroup(child)
      await exited
    }
  })
  const code = await exited
  return { out, err, code }
}

describe('p2pmq as a Unix tool', () => {
  it('a slow pipe reader gets all 150,000 lines of messages -json; the 150,000-row table prints', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-memory', '-quiet'])
    const count = 150_000 // past the ~120,000 arguments Math.max(...rows) takes
    const producer = run(['producer', `-broker=${peerId}`, '-command=bulk', `-count=${count}`, '-interval=0', '-publish', '-json'], home)
    expect(await producer.exited).toBe(0)
    // The reader sleeps longer than any grace period an exit might give it, then counts.
    const json = await pipeline(`$P2PMQ messages -broker=${peerId} -limit=200000 -json | { sleep 15; wc -l; }`, home)
    expect.soft(json.err).toBe('')
    expect.soft(json.code).toBe(0)
    expect.soft(Number(json.out.trim())).toBe(count)
    const table = await pipeline(`$P2PMQ messages -broker=${peerId} -limit=200000 | { sleep 1; wc -l; }`, home)
    expect(table.err).toBe('')
    expect(table.code).toBe(0)
    expect(Number(table.out.trim())).toBe(count + 1) // a header, then a row per message
  }, 240_000)

  it('--version and -version print the package version', async () => {
    const home = await tempDir()
    for (const flag of ['--version', '-version']) {
      const p = run([flag], home)
      expect(await p.exited, flag).toBe(0)
      expect(p.out.filter((l) => l !== ''), flag).toEqual([VERSION])
    }
  })

  it('integer flags refuse 1.5 and 1e3; an error is one line without a class name (exit 2)', async () => {
    const home = await tempDir()
    const broker = '12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7'
    for (const args of [['producer', `-broker=${broker}`, '-count=1.5'], ['producer', `-broker=${broker}`, '-count=1e3'],
      ['messages', `-broker=${broker}`, '-limit=2.5'], ['consumer', `-broker=${broker}`, '-workers=1.5'], ['stats', '-timeout=1e3']]) {
      const p = run(args, home)
      expect(await p.exited, args.join(' ')).toBe(2)
      const lines = p.err.filter((l) => l !== '')
      expect(lines, args.join(' ')).toHaveLength(1)
      expect(lines[0]).toMatch(/^p2pmq: Flag -\w+ takes a whole number in decimal digits, not "[^"]+" \(p2pmq \w+ -help for usage\)$/)
    }
    const unknown = run(['producer', '-nope=1'], home)
    expect(await unknown.exited).toBe(2)
    expect(unknown.err.filter((l) => l !== '')).toEqual(['p2pmq: Unknown flag -nope (p2pmq producer -help for usage)'])
    const command = run(['nope'], home)
    expect(await command.exited).toBe(2)
    expect(command.err.filter((l) => l !== '')).toEqual(['p2pmq: Unknown command "nope" (p2pmq -help for usage)'])
    // A bad -broker: one line, no class name; with P2PMQ_DEBUG the stack follows for a bug report.
    const address = run(['stats', '-broker=foo'], home)
    expect(await address.exited).toBe(2)
    expect(address.err.filter((l) => l !== '')).toEqual(['p2pmq: "foo" is neither a peer ID nor a multiaddr ending in /p2p/<peerId>'])
    const debug = spawn(process.execPath, [BIN, 'stats', '-broker=foo'], { env: { ...process.env, P2PMQ_HOME: home, P2PMQ_DEBUG: '1' } })
    let debugErr = ''
    debug.stderr.on('data', (b: Buffer) => { debugErr += b.toString() })
    await new Promise((resolve) => debug.on('close', resolve))
    expect(debugErr).toMatch(STACK)
  }, 60_000)

  it('a broker that cannot be reached exits 3, with one-line errors', async () => {
    const home = await tempDir()
    const { peerId, proc } = await startBroker(home, ['-memory', '-quiet'])
    const tcp = proc.out.find((l) => l.startsWith('Listening on /ip4/'))!.slice('Listening on '.length)
    killGroup(proc.child)
    await proc.exited
    // A peer ID this host has no address for, and an address nobody listens on any more.
    for (const broker of ['12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', tcp]) {
      for (const cmd of [['stats'], ['messages'], ['purge', '-command=x'], ['schedule', 'list']]) {
        const p = run([...cmd, `-broker=${broker}`, '-timeout=1000'], home)
        expect(await p.exited, `${cmd.join(' ')} ${broker}`).toBe(3)
        const lines = p.err.filter((l) => l !== '')
        expect(lines.at(-1)).toMatch(/^p2pmq: No answer from the broker to "\w+" within 1000 ms$/)
        for (const line of lines) expect(line).not.toMatch(CLASS_NAME)
      }
    }
    // A producer that never reached its broker: 3 as well, not "some messages failed".
    const p = run(['producer', `-broker=${tcp}`, '-count=1', '-timeout=1000'], home)
    expect(await p.exited).toBe(3)
    void peerId
  }, 120_000)

  it('a producer refuses an invalid -command before it starts (exit 2)', async () => {
    const home = await tempDir()
    for (const command of ['a b', 'x.*', 'right\u202eleft']) {
      const p = run(['producer', '-broker=12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', `-command=${JSON.parse(`"${command}"`) as string}`, '-count=1'], home)
      expect(await p.exited, command).toBe(2)
      expect(p.err.filter((l) => l !== '').at(-1)).toMatch(/^p2pmq: .*command.*\(p2pmq producer -help for usage\)$/)
    }
  }, 60_000)

  it('a producer some of whose messages fail exits 4', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-memory', '-quiet', '-max-payload=10'])
    const p = run(['producer', `-broker=${peerId}`, '-count=2', '-interval=0', '-publish', '-payload=<n>: more than ten bytes'], home)
    expect(await p.exited).toBe(4)
    expect(p.out.filter((l) => l.startsWith('Message #'))).toHaveLength(2)
    for (const line of [...p.out, ...p.err]) expect(line).not.toMatch(CLASS_NAME)
  }, 60_000)

  it('-data is the data directory in every command that has one; payloads are -payload', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-memory', '-quiet'])
    const consumerDir = join(home, 'consumer-identity')
    const consumer = run(['consumer', `-broker=${peerId}`, `-data=${consumerDir}`, '-command=job'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 15_000, 'the consumer to subscribe')
    const producerDir = join(home, 'producer-identity')
    const producer = run(['producer', `-broker=${peerId}`, `-data=${producerDir}`, '-command=job', '-count=1', '-payload=hello', '-json'], home)
    expect(await producer.exited).toBe(0)
    expect(JSON.parse(producer.out[0]).answer).toBe('Answer to hello')
    expect(existsSync(join(producerDir, 'peer.key'))).toBe(true)
    expect(existsSync(join(consumerDir, 'peer.key'))).toBe(true)
    const schedule = run(['schedule', 'add', `-broker=${peerId}`, '-command=tick', '-payload=hi', '-every=60000', '-json'], home)
    expect(await schedule.exited).toBe(0)
    expect(JSON.parse(schedule.out[0]).command).toBe('tick')
    for (const cmd of ['producer', 'consumer', 'broker', 'schedule add']) {
      const help = run([...cmd.split(' '), '-help'], home)
      expect(await help.exited).toBe(0)
      const data = help.out.find((l) => l.trimStart().startsWith('-data='))
      if (cmd === 'schedule add') expect(data).toBeUndefined()
      else expect(data, cmd).toMatch(/^\s+-data=<dir>\s/)
    }
  }, 60_000)

  it('a -data that cannot be made (a file in the way, under /proc) is a usage error: one line, exit 2', async () => {
    const home = await tempDir()
    const file = join(home, 'a-file')
    writeFileSync(file, 'not a directory')
    // Under /proc, Node's own recursive mkdir never returned.
    for (const dir of [file, join(file, 'below'), '/proc/p2pmq-no-such-dir']) {
      for (const cmd of [['broker', '-memory', '-http=off'], ['producer', '-broker=12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', '-count=1']]) {
        const p = run([...cmd, `-data=${dir}`], home)
        expect(await p.exited, `${cmd[0]} ${dir}`).toBe(2)
        expect(p.err.filter((l) => l !== '').at(-1)).toMatch(/^p2pmq: (-data=.* is not a directory|The data directory .* cannot be made: (a file is in its way \((EEXIST|ENOTDIR)\)|its file system refuses it \(ENOENT\)))/)
      }
    }
  }, 60_000)
})
