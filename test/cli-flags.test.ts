/** Flag validation of the real CLI: plain decimal numbers, upper bounds, dead-letter suffixes, a listen port in use. */
import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import { describe, expect, it } from 'vitest'
import { run } from './cli-helpers.js'
import { onCleanup, tempDir } from './helpers.js'

describe('p2pmq flags', () => {
  it('numbers are plain decimal digits within bounds; a dead-letter suffix makes valid commands', async () => {
    const home = await tempDir()
    const bad: Array<[string, RegExp]> = [
      ['-http=1e1', /-http takes a port/],
      ['-http=0x1F90', /-http takes a port/],
      ['-http= 0', /-http takes a port/],
      ['-max-payload=0x10', /-max-payload takes a whole number in decimal digits, not "0x10"/],
      ['-visibility-timeout=1e3', /decimal digits/],
      ['-retry-factor= 2', /decimal digits/],
      ['-max-attempts=' + '1'.padEnd(301, '0'), /-max-attempts must be at most 1000000/],
      ['-high-water=10000000000', /-high-water must be at most/],
      ['-max-messages=10000000000', /-max-messages must be at most/],
      ['-page-size=100000000', /-page-size must be at most/],
      ['-dead-letter=.#', /-dead-letter=".#" does not make valid command names/],
      ['-dead-letter=.*', /does not make valid command names/],
      ['-dead-letter=.a\u0007', /does not make valid command names/],
      ['-dead-letter=.' + 'x'.repeat(300), /does not make valid command names/],
      ['-transient=metrics.#,a..b', /-transient: .*a\.\.b/]
    ]
    for (const [flag, message] of bad) {
      const broker = run(['broker', '-memory', '-http=off', flag], home)
      expect(await broker.exited, flag).toBe(2)
      expect(broker.err.join('\n'), flag).toMatch(message)
      expect(broker.out, flag).toEqual([])
    }
    const producer = run(['producer', '-broker=12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', '-transient=yes'], home)
    expect(await producer.exited).toBe(2)
    expect(producer.err.join('\n')).toContain('-transient="yes": give true or false')
  }, 60_000)

  it('a -listen port in use is one line naming the address (exit 2)', async () => {
    const home = await tempDir()
    const tcp = createServer()
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
    onCleanup(() => { tcp.close() })
    const udp = createSocket('udp4')
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve))
    onCleanup(() => { udp.close() })
    const tcpAddr = `/ip4/127.0.0.1/tcp/${(tcp.address() as { port: number }).port}`
    const busy = run(['broker', '-memory', '-http=off', `-listen=${tcpAddr}`], home)
    expect(await busy.exited).toBe(2)
    expect(busy.err.filter((l) => l !== '')).toEqual([`p2pmq: Cannot listen on ${tcpAddr}: the address is in use; give -listen another port (0: any free port)`])
    const udpAddr = `/ip4/127.0.0.1/udp/${udp.address().port}/webrtc-direct`
    const busyUdp = run(['broker', '-memory', '-http=off', `-listen=${udpAddr}`], home)
    expect(await busyUdp.exited).toBe(2)
    expect(busyUdp.err.filter((l) => l !== '').at(-1)).toContain(`Cannot listen on ${udpAddr}`)
  }, 60_000)
})

describe('p2pmq identities', () => {
  it('names the right flag for an identity in use, refuses -name=. and .., names a corrupt peer.key', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const home = await tempDir()
    const { startBroker } = await import('./cli-helpers.js')
    const data = join(home, 'b')
    await startBroker(home, [`-data=${data}`, '-memory'])
    const second = run(['broker', '-http=off', '-memory', `-data=${data}`], home)
    expect(await second.exited).toBe(2)
    expect(second.err.join('\n')).toMatch(/is in use by another running process; give this one another -data$/m)
    for (const name of ['.', '..', '...']) {
      const consumer = run(['consumer', '-broker=12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', `-name=${name}`], home)
      expect(await consumer.exited, name).toBe(2)
      expect(consumer.err.join('\n'), name).toMatch(/Invalid name/)
    }
    const corrupt = join(home, 'corrupt')
    await mkdir(corrupt)
    await writeFile(join(corrupt, 'peer.key'), 'not a key', { mode: 0o600 })
    const broker = run(['broker', '-http=off', '-memory', `-data=${corrupt}`], home)
    expect(await broker.exited).toBe(1) // not a usage error: the file needs restoring
    expect(broker.err.join('\n')).toContain(`${join(corrupt, 'peer.key')} is not a valid private key`)
    expect(broker.err.join('\n')).toMatch(/restore it from a backup, or remove it/)
  }, 60_000)
})
