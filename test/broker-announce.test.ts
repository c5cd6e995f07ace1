/**
 * `p2pmq broker -announce`: what a broker announces beside its own addresses, and with -relay
 * instead of its loopback and LAN ones (the namespaces test: test/nat.test.ts). Here on 127.0.0.1:
 * bad values are usage errors, and a broker with a relay keeps its loopback address for this host.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { logged, run, startBroker } from './cli-helpers.js'
import { onCleanup, tempDir, until } from './helpers.js'
import { createNode } from '../src/node.js'
import { createBroker } from '../src/index.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))

describe('p2pmq broker -announce', () => {
  it('refuses what is not an address to announce, before starting (exit 2)', async () => {
    const home = await tempDir('p2pmq-announce-')
    for (const [value, error] of [
      ['nonsense', /-announce: "nonsense" is not a multiaddr/],
      ['/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', /-announce: give "\/ip4\/203\.0\.113\.7\/tcp\/4001\/p2p\/12D3KooW\w+" without \/p2p\//],
      // Valid multiaddrs that no other host can dial: announced, they would only cost clients dials.
      ['/ip4/203.0.113.7', /-announce: "\/ip4\/203\.0\.113\.7" names no transport/],
      ['/ip4/203.0.113.7/udp/4001', /-announce: "\/ip4\/203\.0\.113\.7\/udp\/4001" names no transport/],
      ['/ip4/203.0.113.7/tcp/0', /-announce: "\/ip4\/203\.0\.113\.7\/tcp\/0" has port 0/],
      ['/ip4/0.0.0.0/tcp/4001', /-announce: "\/ip4\/0\.0\.0\.0\/tcp\/4001" names no host/],
      ['/ip6/::/tcp/4001', /-announce: "\/ip6\/::\/tcp\/4001" names no host/],
      ['/tcp/4001', /-announce: "\/tcp\/4001" does not start with a host/]
    ] as const) {
      const cli = spawnSync(process.execPath, [BIN, 'broker', '-memory', '-http=off', `-announce=${value}`], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, P2PMQ_HOME: home, P2PMQ_RELAY: '' } })
      expect(cli.status, cli.stderr).toBe(2)
      expect(cli.stderr).toMatch(error)
    }
  })

  it('createBroker refuses the same addresses, before it starts a node', async () => {
    const home = await tempDir()
    for (const [addr, why] of [['/ip4/203.0.113.7', 'names no transport'], ['/ip4/0.0.0.0/tcp/4002', 'names no host'], ['/ip4/203.0.113.7/tcp/0', 'port 0'], ['nonsense', 'is not a multiaddr']]) {
      await expect(createBroker({ home, memory: true, announce: [addr] })).rejects.toThrow(why)
    }
  })

  it('p2pmq relay -announce refuses an address no other host can dial (exit 2)', async () => {
    const home = await tempDir('p2pmq-announce-')
    for (const [value, error] of [
      ['/ip4/0.0.0.0/tcp/4001', /-announce: "\/ip4\/0\.0\.0\.0\/tcp\/4001" names no host/],
      ['/ip4/203.0.113.7/tcp/0', /-announce: "\/ip4\/203\.0\.113\.7\/tcp\/0" has port 0/],
      ['/ip4/203.0.113.7/udp/0/webrtc-direct', /has port 0/]
    ] as const) {
      const cli = spawnSync(process.execPath, [BIN, 'relay', '-listen=/ip4/127.0.0.1/tcp/0', `-announce=${value}`], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, P2PMQ_HOME: home } })
      expect(cli.status, cli.stderr).toBe(2)
      expect(cli.stderr).toMatch(error)
    }
  })

  it('with a relay: announces the relayed address and -announce, not 127.0.0.1 (a client through the relay learns only those); this host\'s address book and web page keep 127.0.0.1', { timeout: 60_000 }, async () => {
    const dir = await tempDir('p2pmq-announce-')
    const relay = run(['relay', '-listen=/ip4/127.0.0.1/tcp/0'], join(dir, 'relay'))
    await until(() => relay.out.some((l) => l.startsWith('Listening on ')), 15_000, 'the relay to listen')
    const relayAddr = (relay.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
    const home = join(dir, 'broker')
    const broker = await startBroker(home, ['-memory', '-acl=open', `-relay=${relayAddr}`, '-announce=/ip4/203.0.113.7/tcp/4001'])
    await until(() => logged(broker.proc.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 15_000, 'the reservation')
    expect(broker.proc.out).toContain(`Announced as /ip4/203.0.113.7/tcp/4001/p2p/${broker.peerId}`)
    const book = JSON.parse(readFileSync(join(home, 'brokers', `${broker.peerId}.json`), 'utf8')) as { addrs: string[] }
    expect(book.addrs).toContain(broker.tcp)
    const info = await (await fetch(new URL('/api/broker', broker.url))).json() as { addresses: string[] }
    expect(info.addresses).toContain(broker.tcp)
    expect(info.addresses.some((a) => a.includes('/p2p-circuit/'))).toBe(true)

    // What a client reaching it through the relay learns (identify): no loopback address.
    const client = await createNode({ circuitRelay: true })
    onCleanup(async () => { await client.stop() })
    await client.start()
    const id = peerIdFromString(broker.peerId)
    const identified = new Promise<void>((resolve) => client.addEventListener('peer:identify', (e) => { if (e.detail.peerId.equals(id)) resolve() }))
    await client.dial(multiaddr(`${relayAddr}/p2p-circuit/p2p/${broker.peerId}`), { signal: AbortSignal.timeout(10_000) })
    await identified
    const learned = (await client.peerStore.get(id)).addresses.map((a) => a.multiaddr.toString())
    expect(learned).toContain('/ip4/203.0.113.7/tcp/4001')
    expect(learned.filter((a) => a.startsWith('/ip4/127.'))).toEqual([`${relayAddr}/p2p-circuit`])
  })
})
