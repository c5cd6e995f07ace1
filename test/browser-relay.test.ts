/**
 * The web page reaching its broker through a relay, on 127.0.0.1 in real Chromium: served by any
 * web server (here a static one) and told the broker and relay in its URL, or served by the
 * broker, whose /api/broker names its relays. Bad URL parameters are told on the page, as text.
 * Needs /usr/bin/chromium (`.ci/run` installs it) and the built page (`npm run build:web`).
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { logged, run, startBroker } from './cli-helpers.js'
import { browser, hasChromium } from './chromium.js'
import { onCleanup, producer, tempDir, until } from './helpers.js'
import { createAdmin, type AnsweredResult } from '../src/index.js'
import { startWebServer, type WebServer } from '../src/web-server.js'

/** The built page (WEB_ROOT is where it is relative to dist/src, and this test runs from src/). */
const WEB_ROOT = fileURLToPath(new URL('../web/dist/', import.meta.url))

const RELAY_ID = '12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz'

/** A web server with the page and no broker behind it (/api/broker answers 503). */
async function staticServer (): Promise<WebServer> {
  const web = await startWebServer({ port: 0, root: WEB_ROOT, info: () => undefined })
  onCleanup(async () => { await web.close() })
  return web
}

async function relayAndBroker (dir: string, brokerArgs: string[] = []): Promise<{ relayTcp: string, relayWebRTC: string, broker: Awaited<ReturnType<typeof startBroker>> }> {
  const relay = run(['relay', '-listen=/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/webrtc-direct'], join(dir, 'relay'))
  await until(() => relay.out.some((l) => l.includes('/webrtc-direct/')), 15_000, 'the relay to listen')
  const listening = relay.out.filter((l) => l.startsWith('Listening on ')).map((l) => l.slice('Listening on '.length))
  const relayTcp = listening.find((a) => a.includes('/tcp/')) as string
  const relayWebRTC = listening.find((a) => a.includes('/webrtc-direct/')) as string
  const broker = await startBroker(join(dir, 'broker'), ['-memory', '-acl=open', `-relay=${relayTcp}`, ...brokerArgs])
  await until(() => logged(broker.proc.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 15_000, 'the broker to reserve on the relay')
  return { relayTcp, relayWebRTC, broker }
}

describe.runIf(hasChromium)('the web page through a relay', () => {
  it('served by a static web server, finds the broker by the peer ID and relay in its URL, and answers through the relay', async () => {
    const dir = await tempDir()
    const { relayWebRTC, broker } = await relayAndBroker(dir)
    const web = await staticServer()
    const page = await (await browser()).newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`${web.url}?broker=${broker.peerId}&relay=${encodeURIComponent(relayWebRTC)}&subscribe=relayed.work&answer=auto`)
    await page.waitForSelector('#via[data-via="relayed"]', { timeout: 15_000 })
    expect(await page.textContent('#broker')).toBe(broker.peerId)
    expect(await page.textContent('#transport')).toContain('/p2p-circuit/')
    const pagePeer = await page.textContent('#peer') as string

    const home = join(dir, 'producer')
    const p = await producer({ address: broker.tcp, home })
    const replies: AnsweredResult[] = []
    for (let i = 0; i < 10; i++) replies.push(await p.request('relayed.work', `m${i}`, { timeout: 10_000 }))
    expect(replies.map((r) => r.payload)).toEqual(Array.from({ length: 10 }, (_, i) => `Answer to m${i}`))
    expect(new Set(replies.map((r) => r.consumer))).toEqual(new Set([pagePeer]))
    const admin = await createAdmin({ broker: broker.tcp, home })
    onCleanup(async () => { await admin.stop() })
    expect((await admin.stats()).clients.find((c) => c.peer === pagePeer && c.role === 'consumer')?.via).toBe('relay')
    expect(errors).toEqual([])
  }, 60_000)

  it('served by a broker with a relay, /api/broker names the relay at its WebRTC Direct address and the broker\'s STUN servers; the broker\'s own address comes first', async () => {
    const dir = await tempDir()
    // -stun names a server that is not there: nothing here dials it (the page goes direct).
    const { relayWebRTC, broker } = await relayAndBroker(dir, ['-stun=stun:127.0.0.1:9'])
    const info = await (await fetch(new URL('/api/broker', broker.url))).json() as { webrtc: string[], relays: string[], stun: string[] }
    expect(info.relays).toEqual([relayWebRTC])
    // Its own, not `<relay>/p2p-circuit/webrtc/…` (which a browser's dial would sort first).
    expect(info.webrtc).toEqual([expect.stringMatching(new RegExp(`^/ip4/127\\.0\\.0\\.1/udp/\\d+/webrtc-direct/certhash/[^/]+/p2p/${broker.peerId}$`))])
    expect(info.stun).toEqual(['stun:127.0.0.1:9'])
    const page = await (await browser()).newPage()
    await page.goto(`${broker.url}?subscribe=work&answer=auto`)
    // 4.5 s alone. Under the whole suite in CI, the first dial's WebRTC handshake once took over its
    // 3 s and the page connected through the relay: it then dials the broker's address again and moves.
    await page.waitForSelector('#via[data-via="direct"]', { timeout: 30_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}; the page shows: ${(await page.textContent('body'))?.replace(/\s+/g, ' ').slice(0, 600) ?? ''}`)
    })
    expect(await page.textContent('#transport')).toBe(info.webrtc[0])
  }, 60_000)

  it('tells what is wrong with ?broker, ?relay or ?stun on the page, as text, and dials nothing', async () => {
    const web = await staticServer()
    const page = await (await browser()).newPage()
    const peer = '12D3KooWQwTEhyaQyBXBkjAtViXE1HBzUqdc4FC1nbY8sN5zWyNK'
    const relay = `/ip4/127.0.0.1/udp/9/webrtc-direct/certhash/uEiAQl5H1Lwx4KwIcXCZopWtLjk427Djmjn3oCWz_-CseFg/p2p/${RELAY_ID}`
    const cases: Array<[Record<string, string>, string]> = [
      [{ broker: '<img src=x onerror=alert(1)>' }, '?broker="<img src=x onerror=alert(1)>" is not a peer ID'],
      [{ broker: peer }, '?broker=<peer ID> needs ?relay='],
      [{ broker: peer, relay: '<b>relay</b>' }, '?relay: The relay address "<b>relay</b>" is not a multiaddr'],
      [{ broker: peer, relay: `/ip4/127.0.0.1/tcp/4001/p2p/${RELAY_ID}` }, `?relay: a browser cannot dial /ip4/127.0.0.1/tcp/4001/p2p/${RELAY_ID}`],
      [{ broker: peer, relay: '/ip4/127.0.0.1/udp/9/webrtc-direct' }, 'must end in /p2p/<relay peer ID>'],
      [{ broker: RELAY_ID, relay }, `?broker=${RELAY_ID} is the peer ID of the relay ${relay}, not of a broker`],
      [{ broker: peer, relay, stun: 'http://example.com' }, '?stun: not a STUN server URL (stun:<host>:<port>): http://example.com'],
      [{ relay }, '?relay and ?stun need ?broker='],
      [{}, 'This page\'s server has no broker (/api/broker: 503)']
    ]
    for (const [params, message] of cases) {
      await page.goto(`${web.url}?${new URLSearchParams(params).toString()}`)
      await page.waitForSelector('#state[data-state="error"]', { timeout: 10_000 })
      expect(await page.textContent('#error')).toContain(message)
      expect(await page.locator('#error *').count()).toBe(0)
      expect(await page.locator('img').count()).toBe(0)
    }
  }, 60_000)
})
