/** WebRTC Direct, the transport browsers use: a consumer reaches the broker over it, from Node. */
import { describe, expect, it } from 'vitest'
import { createConsumer, type AnsweredResult } from '../src/index.js'
import { startBroker as startBrokerProc, killGroup } from './cli-helpers.js'
import { freeUdpPort, onCleanup, producer, startBroker, tempDir, until } from './helpers.js'

describe('WebRTC Direct', () => {
  it('carries a consumer: it subscribes, answers, and the producer gets its answers', async () => {
    const broker = await startBroker({ listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/webrtc-direct'] })
    const address = broker.node.getMultiaddrs().map(String).find((a) => a.includes('/webrtc-direct/certhash/'))
    expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/udp\/\d+\/webrtc-direct\/certhash\/[\w-]+\/p2p\/12D3KooW/)
    const c = await createConsumer({ broker: address as string, home: broker.home })
    onCleanup(async () => { await c.stop() })
    await c.subscribe('browser.work', (m) => `done ${m.payload as string}`)
    expect(c.node.getConnections().map((conn) => conn.remoteAddr.toString())).toEqual([expect.stringContaining('/webrtc-direct/')])
    const p = await producer(broker)
    const replies: AnsweredResult[] = await Promise.all(Array.from({ length: 20 }, async (_, i) => await p.request('browser.work', String(i))))
    expect(replies.map((r) => r.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `done ${i}`))
    expect(new Set(replies.map((r) => r.consumer))).toEqual(new Set([c.peerId]))
  })

  it('keeps its certificate in the data directory: a restarted broker has the same address', async () => {
    const home = await tempDir()
    const port = await freeUdpPort()
    const listen = `-listen=/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/${port}/webrtc-direct`
    const webrtcLine = (out: string[]): string | undefined => out.find((l) => l.includes('/webrtc-direct/'))
    const first = await startBrokerProc(home, [listen])
    await until(() => webrtcLine(first.proc.out) != null, 10_000, 'the WebRTC address')
    const before = webrtcLine(first.proc.out)
    killGroup(first.proc.child)
    await first.proc.exited
    const second = await startBrokerProc(home, [listen])
    await until(() => webrtcLine(second.proc.out) != null, 10_000, 'the WebRTC address')
    expect(webrtcLine(second.proc.out)).toBe(before)
    expect(before).toContain(`/udp/${port}/webrtc-direct/certhash/`)
  })

  it('serves /api/broker with the current WebRTC address, and no file outside its root', async () => {
    const home = await tempDir()
    const { proc, peerId, url } = await startBrokerProc(home)
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const info = await (await fetch(new URL('api/broker', url))).json() as { peerId: string, webrtc: string[] }
    expect(info.peerId).toBe(peerId)
    expect(info.webrtc).toHaveLength(1)
    expect(proc.out).toContain(`Listening on ${info.webrtc[0]}`)
    expect((await fetch(new URL('%2e%2e/%2e%2e/package.json', url))).status).toBe(404)
    expect((await fetch(url, { method: 'POST' })).status).toBe(405)
  })
})
