/**
 * The broker's settings as an operator gives them: real `p2pmq broker` processes configured by a
 * `-config` file, by P2PMQ_BROKER_* variables and by flags, the flag winning over its variable and
 * the variable over the file; and every way a file or a variable can be wrong, one line naming it, exit 2.
 */
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MessageTooLargeError } from '../src/index.js'
import { run } from './cli-helpers.js'
import { producer, tempDir, until } from './helpers.js'

/** Starts `p2pmq broker <args>` with `env`, and returns its TCP address once it listens. */
async function startBroker (home: string, args: string[], env: Record<string, string> = {}): Promise<{ tcp: string, out: string[] }> {
  const proc = run(['broker', ...args], home, [], env)
  await until(() => proc.out.some((l) => l.startsWith('Listening on /ip4/127.0.0.1/tcp/')) || proc.child.exitCode != null, 30_000, 'the broker to listen')
  const listen = proc.out.find((l) => l.startsWith('Listening on /ip4/127.0.0.1/tcp/'))
  expect(listen, proc.err.join('\n')).toBeDefined()
  return { tcp: (listen as string).slice('Listening on '.length), out: proc.out }
}

/** Whether the broker at `tcp` takes a publish of `bytes` bytes (false: refused as too large). */
async function takes (home: string, tcp: string, bytes: number): Promise<boolean> {
  const p = await producer({ address: tcp, home })
  try {
    await p.publish('sized', 'x'.repeat(bytes))
    return true
  } catch (err) {
    expect(err).toBeInstanceOf(MessageTooLargeError)
    return false
  } finally {
    await p.stop()
  }
}

describe('p2pmq broker settings', () => {
  it('come from a -config file, under P2PMQ_BROKER_* variables, under flags', async () => {
    const home = await tempDir()
    const config = join(home, 'broker.json')
    const data = join(home, 'from-file')
    await writeFile(config, JSON.stringify({ 'max-payload': 1000, data, listen: ['/ip4/127.0.0.1/tcp/0'], http: 'off', quiet: true, 'retry-factor': 1.5 }, null, 2))

    const fromFile = await startBroker(home, [`-config=${config}`])
    expect(await takes(home, fromFile.tcp, 900)).toBe(true)
    expect(await takes(home, fromFile.tcp, 1500)).toBe(false)
    expect(existsSync(join(data, 'store'))).toBe(true) // "data" from the file
    expect(fromFile.out.some((l) => l.startsWith('Web: '))).toBe(false) // "http": "off"

    // The variable wins over the file, and P2PMQ_BROKER_CONFIG names the file.
    const fromEnv = await startBroker(home, [], { P2PMQ_BROKER_CONFIG: config, P2PMQ_BROKER_MAX_PAYLOAD: '2000', P2PMQ_BROKER_DATA: join(home, 'from-env'), P2PMQ_BROKER_HTTP: '0' })
    expect(await takes(home, fromEnv.tcp, 1500)).toBe(true)
    expect(await takes(home, fromEnv.tcp, 2500)).toBe(false)
    expect(existsSync(join(home, 'from-env', 'store'))).toBe(true)
    expect(fromEnv.out.some((l) => l.startsWith('Web: http://127.0.0.1:'))).toBe(true)

    // The flag wins over both.
    const fromFlag = await startBroker(home, [`-config=${config}`, '-max-payload=3000', `-data=${join(home, 'from-flag')}`, '-memory'], { P2PMQ_BROKER_MAX_PAYLOAD: '2000' })
    expect(await takes(home, fromFlag.tcp, 2500)).toBe(true)
    expect(existsSync(join(home, 'from-flag', 'store'))).toBe(false) // -memory
  }, 120_000)

  it('a file or a variable that cannot be used is one line naming it, exit 2, before anything starts', async () => {
    const home = await tempDir()
    const file = async (name: string, text: string): Promise<string> => {
      const path = join(home, name)
      await writeFile(path, text)
      return path
    }
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[`-config=${join(home, 'missing.json')}`], {}, /missing\.json: does not exist/],
      [[`-config=${await file('bad.json', '{ "max-payload": ')}`], {}, /bad\.json: is not valid JSON/],
      [[`-config=${await file('list.json', '[]')}`], {}, /list\.json: must be a JSON object, e.g. \{ "max-payload"/],
      [[`-config=${await file('typo.json', '{ "max-payloads": 1 }')}`], {}, /typo\.json: unknown key "max-payloads"/],
      [[`-config=${await file('nested.json', '{ "config": "other.json" }')}`], {}, /nested\.json: unknown key "config"/],
      [[`-config=${await file('string.json', '{ "max-payload": "1000" }')}`], {}, /string\.json: "max-payload" must be a number, not "1000"/],
      [[`-config=${await file('half.json', '{ "max-payload": 1.5 }')}`], {}, /half\.json: "max-payload" takes a whole number in decimal digits, not "1\.5"/],
      [[`-config=${await file('huge.json', '{ "max-attempts": 1e300 }')}`], {}, /huge\.json: "max-attempts" takes a whole number in decimal digits, not "1e\+300"/],
      [[`-config=${await file('switch.json', '{ "memory": "yes" }')}`], {}, /switch\.json: "memory" must be true or false, not "yes"/],
      [[`-config=${await file('listen.json', '{ "listen": [1] }')}`], {}, /listen\.json: "listen" must be a string or a list of strings, not \[1\]/],
      [[`-config=${await file('data.json', '{ "data": ["a", "b"] }')}`], {}, /data\.json: "data" must be a string, not \["a","b"\]/],
      [[`-config=${home}`], {}, /: is not a regular file/],
      [[], { P2PMQ_BROKER_MAX_PAYLOAD: '0x10' }, /^p2pmq: P2PMQ_BROKER_MAX_PAYLOAD takes a whole number in decimal digits, not "0x10"/],
      [[], { P2PMQ_BROKER_MEMORY: 'maybe' }, /^p2pmq: P2PMQ_BROKER_MEMORY takes true or false, not "maybe"/],
      [[], { P2PMQ_BROKER_VISIBILITY_TIMEOUT: '0' }, /^p2pmq: P2PMQ_BROKER_VISIBILITY_TIMEOUT must be at least 1, not 0/],
      [[], { P2PMQ_BROKER_CONFIG: join(home, 'gone.json') }, /gone\.json: does not exist/],
      // The command line's own errors come first.
      [['-max-payload=x'], { P2PMQ_BROKER_MEMORY: 'maybe' }, /^p2pmq: Flag -max-payload takes a whole number/]
    ]
    for (const [args, env, message] of cases) {
      const broker = run(['broker', '-http=off', ...args], home, [], env)
      const what = JSON.stringify({ args, env })
      expect(await broker.exited, what).toBe(2)
      expect(broker.err.filter((l) => l !== ''), what).toHaveLength(1)
      expect(broker.err[0], what).toMatch(message)
      expect(broker.out, what).toEqual([])
    }
  }, 120_000)
})
