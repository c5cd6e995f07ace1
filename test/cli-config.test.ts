/**
 * The p2pmq home's config file (`<home>/config.json`: relays, STUN servers), as a user has it: real
 * `p2pmq` child processes on 127.0.0.1, each with its own home. A consumer and a producer given
 * only `-broker=<peer ID>` reach a broker through the relay their config names; -relay and
 * P2PMQ_RELAY come first; a broken or hostile file is one line naming the file and key (exit 2).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { logged, type Proc, run, startBroker } from './cli-helpers.js'
import { tempDir, until } from './helpers.js'

const SOME_PEER = '12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz'

/** `p2pmq <args>` with this home and exactly these relay/STUN variables (empty: unset). */
function runWith (args: string[], home: string, env: { P2PMQ_RELAY?: string, P2PMQ_STUN?: string } = {}): Proc {
  return run(args, home, [], { P2PMQ_RELAY: '', P2PMQ_STUN: '', ...env })
}

function writeConfig (home: string, text: string): string {
  mkdirSync(home, { recursive: true })
  const path = join(home, 'config.json')
  writeFileSync(path, text)
  return path
}

async function startRelay (home: string): Promise<string> {
  const proc = run(['relay', '-listen=/ip4/127.0.0.1/tcp/0'], home)
  await until(() => proc.out.some((l) => l.startsWith('Brokers and clients: ')), 15_000, 'the relay to listen')
  const addr = (proc.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
  // The hint says where the address goes.
  expect(proc.out).toContain(`Brokers and clients: -relay=${addr}, or P2PMQ_RELAY, or { "relay": ["${addr}"] } in ${join(home, 'config.json')}`)
  return addr
}

describe('the p2pmq home\'s config.json', () => {
  it('gives the relay: a consumer and a producer given only -broker=<peer ID> reach a broker through it; -relay and P2PMQ_RELAY come first', { timeout: 90_000 }, async () => {
    const dir = await tempDir('p2pmq-config-')
    const relay = await startRelay(join(dir, 'relay'))
    const broker = await startBroker(join(dir, 'broker'), ['-memory', '-acl=open', `-relay=${relay}`])
    await until(() => logged(broker.proc.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 15_000, 'the broker to reserve on the relay')

    // The clients' home: no address book entry for the broker, only the config.
    const home = join(dir, 'client')
    writeConfig(home, JSON.stringify({ relay: [relay] }))
    const consumer = runWith(['consumer', `-broker=${broker.peerId}`, '-command=cfg'], home)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 20_000, `the consumer to subscribe (${consumer.err.join(' ')})`)
    const producer = runWith(['producer', `-broker=${broker.peerId}`, '-command=cfg', '-count=3', '-interval=0'], home)
    expect(await producer.exited, producer.err.join('\n')).toBe(0)
    expect(producer.out.filter((l) => l.startsWith('Answer #'))).toHaveLength(3)

    // A relay that is not there (a free port) in the config: the variable's live relay is used; then
    // the same in the variable, and the flag's live relay is used.
    const deadRelay = relay.replace(/\/tcp\/\d+\//, '/tcp/1/')
    const elsewhere = join(dir, 'elsewhere')
    writeConfig(elsewhere, JSON.stringify({ relay: [deadRelay] }))
    const byEnv = runWith(['stats', `-broker=${broker.peerId}`, '-json'], elsewhere, { P2PMQ_RELAY: relay })
    expect(await byEnv.exited, byEnv.err.join('\n')).toBe(0)
    const byFlag = runWith(['stats', `-broker=${broker.peerId}`, `-relay=${relay}`, '-json'], elsewhere, { P2PMQ_RELAY: deadRelay })
    expect(await byFlag.exited, byFlag.err.join('\n')).toBe(0)
    expect((JSON.parse(byFlag.out.join('\n')) as { clients: Array<{ role: string }> }).clients.map((c) => c.role)).toContain('consumer')
  })

  it('refuses a broken or hostile file with one line naming the file and key, exit 2, before starting anything', async () => {
    const dir = await tempDir('p2pmq-config-')
    const relay = `/ip4/127.0.0.1/tcp/1/p2p/${SOME_PEER}`
    const cases: Array<[string, string | ((path: string) => void), RegExp]> = [
      ['bad JSON', '{ "relay": [', /is not valid JSON/],
      ['not an object', `["${relay}"]`, /must be a JSON object/],
      ['a misspelt key', JSON.stringify({ relays: [relay] }), /unknown key "relays" \(known: "relay", "stun"\)/],
      ['a string for a list', JSON.stringify({ relay }), /"relay" must be a list of strings/],
      ['a number in the list', JSON.stringify({ stun: [3478] }), /"stun" must be a list of strings/],
      ['a relay without its peer ID', JSON.stringify({ relay: ['/ip4/127.0.0.1/tcp/1'] }), /"relay"\[0\]: The relay address \/ip4\/127\.0\.0\.1\/tcp\/1 must end in \/p2p\/<relay peer ID>/],
      ['not a multiaddr', JSON.stringify({ relay: [relay, 'nonsense'] }), /"relay"\[1\]: The relay address "nonsense" is not a multiaddr/],
      ['a bad STUN server', JSON.stringify({ stun: ['http://127.0.0.1:3478'] }), /"stun"\[0\]: not a STUN server URL/],
      ['a huge file', JSON.stringify({ relay: [relay] }) + ' '.repeat(1_000_000), /is 1000\d+ bytes, at most 65536/],
      ['a directory', (path) => { mkdirSync(path) }, /is not a regular file/],
      ['a FIFO (nothing ever writes it)', (path) => { spawnSync('mkfifo', [path]) }, /is not a regular file/],
      ['/dev/zero', (path) => { symlinkSync('/dev/zero', path) }, /is not a regular file/],
      ['a symbolic link to nothing', (path) => { symlinkSync(join(dir, 'moved.json'), path) }, /is a symbolic link to \/.*\/moved\.json, which does not exist/],
      // A byte order mark (some editors write one) is no reason to refuse the file: the relay is read.
      ['a byte order mark', `\uFEFF${JSON.stringify({ relay: ['nonsense'] })}`, /"relay"\[0\]: The relay address "nonsense" is not a multiaddr/]
    ]
    for (const [i, [what, content, error]] of cases.entries()) {
      const home = join(dir, `home-${i}`)
      mkdirSync(home)
      const path = join(home, 'config.json')
      if (typeof content === 'string') writeFileSync(path, content)
      else content(path)
      for (const args of [['consumer', `-broker=${SOME_PEER}`], ['broker', '-memory', '-http=off']]) {
        const cli = runWith(args, home)
        const code = await Promise.race([cli.exited, new Promise((resolve) => setTimeout(() => { resolve('hung') }, 15_000))])
        expect(code, `${what} (${args[0]}): ${cli.err.join('\n')}`).toBe(2)
        expect(cli.err, what).toHaveLength(1)
        expect(cli.err[0], what).toContain(`p2pmq: ${path}: `)
        expect(cli.err[0], what).toMatch(error)
        expect(cli.out, what).toEqual([])
      }
    }
  }, 120_000)
})
