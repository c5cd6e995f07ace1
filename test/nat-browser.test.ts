/**
 * The page behind a NAT reaches a broker behind another NAT by peer ID: a relay and a STUN server
 * on the public segment, the broker behind NAT A (`-relay -stun`, a CLI process), the page served
 * by a plain web server on the public segment, Chromium inside NAT B's LAN loading it with
 * `?broker=<peer ID>&relay=<relay>&stun=<STUN>`. The page reaches the broker through the relay,
 * then directly over WebRTC (ICE punches both NATs); with `--random-fully` on NAT B it stays
 * relayed. Every request of a producer on the public segment is answered by the page either way.
 * Needs root, `ip`, `iptables`, coturn's `turnserver` and /usr/bin/chromium (as in this project's
 * CI; elsewhere skipped, saying why).
 */
import { type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { browser, CHROMIUM, hasChromium } from './chromium.js'
import { logged, runIn } from './cli-helpers.js'
import { until } from './helpers.js'
import { createNetwork, netnsUnavailable, punchedFlows, startStun, turnserverUnavailable, type Host, type Network, type NetworkOptions } from './netns.js'
import type { Page } from 'playwright-core'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const WEB_SERVER = fileURLToPath(new URL('../dist/src/web-server.js', import.meta.url))
const WEB_ROOT = fileURLToPath(new URL('../web/dist/', import.meta.url))
const WEB_PORT = 8080

const unavailable = netnsUnavailable() ?? (hasChromium ? undefined : `no ${CHROMIUM} (apt-get install chromium)`) ?? turnserverUnavailable()
if (unavailable != null) console.warn(`NAT browser tests skipped: ${unavailable}`)

/** A process in a namespace, its output as lines. */
interface Proc { child: ChildProcess, out: string[], err: string[], exited: Promise<number | null> }
interface Answer { n: number, answer?: string, consumer?: string }

let teardown: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of teardown.reverse()) await step()
  teardown = []
})

interface Scene {
  net: Network
  dir: string
  run: (host: Host, cmd: string, args: string[]) => Proc
  p2pmq: (host: Host, args: string[]) => Proc
  relayTcp: string
  relayWebRTC: string
  stunUrl: string
  brokerId: string
  brokerLan: string
  pageUrl: string
}

async function scene (options: NetworkOptions): Promise<Scene> {
  const net = await createNetwork({ publicHosts: ['relay', 'stun', 'web', 'prod'], lans: { a: ['a1', 'a2'], b: ['b1'] }, dropUnsolicited: true, ...options })
  teardown.push(async () => { await net.teardown() })
  const dir = mkdtempSync(join(tmpdir(), 'p2pmq-nat-browser-'))
  teardown.push(() => { rmSync(dir, { recursive: true, force: true }) })
  let homes = 0
  const run = (host: Host, cmd: string, args: string[]): Proc => runIn(net, host, cmd, args, join(dir, `home-${homes++}`))
  const p2pmq = (host: Host, args: string[]): Proc => run(host, process.execPath, [BIN, ...args])
  const { hosts } = net
  const stun = await startStun(net, hosts.stun, dir)
  const stunUrl = `stun:${stun.ip}:${stun.port}`
  const relay = p2pmq(hosts.relay, ['relay', `-listen=/ip4/${hosts.relay.ip}/tcp/4001,/ip4/${hosts.relay.ip}/udp/4001/webrtc-direct`])
  // Any web server can serve the page: here the broker's own file server, with no broker behind it.
  const web = run(hosts.web, process.execPath, ['--input-type=module', '-e',
    `const { startWebServer } = await import(${JSON.stringify(WEB_SERVER)}); await startWebServer({ port: ${WEB_PORT}, host: ${JSON.stringify(hosts.web.ip)}, root: ${JSON.stringify(WEB_ROOT)}, info: () => undefined }); console.log('serving')`])
  await until(() => relay.out.filter((l) => l.startsWith('Listening on ')).length >= 2, 20_000, `the relay to listen (out: ${relay.out.join(' | ')}; err: ${relay.err.join(' ')})`)
  const listening = relay.out.filter((l) => l.startsWith('Listening on ')).map((l) => l.slice('Listening on '.length))
  const relayTcp = listening.find((a) => a.includes('/tcp/')) as string
  const relayWebRTC = listening.find((a) => a.includes('/webrtc-direct/')) as string
  const broker = p2pmq(hosts.a1, ['broker', '-acl=open', `-listen=/ip4/${hosts.a1.ip}/tcp/4002`, '-http=off', '-memory', `-relay=${relayTcp}`, `-stun=${stunUrl}`])
  await until(() => logged(broker.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 20_000, `the broker's reservation (${broker.err.join(' ')})`)
  await until(() => web.out.includes('serving'), 10_000, `the web server (${web.err.join(' ')})`)
  const brokerLan = (broker.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
  const brokerId = brokerLan.split('/p2p/')[1]
  const query = new URLSearchParams({ broker: brokerId, relay: relayWebRTC, stun: stunUrl, subscribe: 'echo', answer: 'auto' })
  return { net, dir, run, p2pmq, relayTcp, relayWebRTC, stunUrl, brokerId, brokerLan, pageUrl: `http://${hosts.web.ip}:${WEB_PORT}/?${query.toString()}` }
}

/** Chromium inside `host`'s namespace (playwright-core runs the wrapper with its pipe transport). */
async function pageIn (s: Scene, host: Host): Promise<Page> {
  const wrapper = join(s.dir, 'chromium-in-netns')
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${host.ns} ${CHROMIUM} "$@"\n`)
  chmodSync(wrapper, 0o755)
  const b = await browser(wrapper)
  teardown.push(async () => { await b.close() })
  const page = await b.newPage()
  // DEBUG_PAGE='p2pmq:*,libp2p:webrtc:*' prints the page's libp2p log.
  if (process.env.DEBUG_PAGE != null) {
    await page.addInitScript((d) => { localStorage.setItem('debug', d) }, process.env.DEBUG_PAGE)
    page.on('console', (m) => { console.log(`page: ${m.text()}`) })
  }
  return page
}

/** How the broker sees its consumers connected (`p2pmq stats` run beside it, on LAN A). */
async function consumerVias (s: Scene): Promise<string[]> {
  const stats = s.p2pmq(s.net.hosts.a2, ['stats', `-broker=${s.brokerLan}`, '-json'])
  expect(await stats.exited, stats.err.join('\n')).toBe(0)
  const clients = (JSON.parse(stats.out.join('\n')) as { clients: Array<{ role: string, via: string }> }).clients
  return clients.filter((c) => c.role === 'consumer').map((c) => c.via)
}

/**
 * The page is loaded; at once a producer on the public segment, knowing the broker's peer ID and
 * the relay only, sends `count` requests, one every 25 ms, while the page connects (through the
 * relay, then maybe directly): every one is answered by the page, once.
 */
async function answeredByPage (s: Scene, page: Page, count: number): Promise<Answer[]> {
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(s.pageUrl)
  const producer = s.p2pmq(s.net.hosts.prod, ['producer', `-broker=${s.brokerId}`, `-relay=${s.relayTcp}`, '-command=echo', `-count=${count}`, '-interval=25', '-timeout=40000', '-json'])
  expect(await producer.exited, producer.err.join('\n')).toBe(0)
  const answers = producer.out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Answer)
  expect(answers.map((a) => a.n).sort((x, y) => x - y)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
  const pagePeer = await page.textContent('#peer')
  for (const a of answers) {
    expect(a.answer).toBe(`Answer to Hello world #${a.n}!`)
    if (a.consumer != null) expect(a.consumer).toBe(pagePeer)
  }
  expect(errors).toEqual([])
  return answers
}

const at = async (page: Page, via: 'relayed' | 'direct'): Promise<number> => Number(await page.getAttribute('#via', `data-${via}-at`))

describe.skipIf(unavailable != null)('the page in Chromium behind NAT B, the broker behind NAT A', () => {
  it('reaches the broker by peer ID through the relay, moves to a direct WebRTC connection, and answers every request', { timeout: 120_000 }, async () => {
    const s = await scene({})
    const page = await pageIn(s, s.net.hosts.b1)
    await answeredByPage(s, page, 80)
    await page.waitForSelector('#via[data-via="direct"]', { timeout: 15_000 })
    expect(await page.textContent('#broker')).toBe(s.brokerId)
    expect(await page.textContent('#transport')).toContain('/p2p-circuit/webrtc/')
    expect(await consumerVias(s)).toEqual(['webrtc'])
    // The direct path is a UDP flow NAT B saw replies on (a punched hole), to NAT A's public address.
    expect(punchedFlows(s.net).length).toBeGreaterThan(0)
    const relayedAt = await at(page, 'relayed')
    const directAt = await at(page, 'direct')
    console.log(`page connected through the relay ${relayedAt} ms after its start, directly over WebRTC ${directAt - relayedAt} ms after that`)
  })

  it('with --random-fully on NAT B stays relayed, and every request is still answered', { timeout: 120_000 }, async () => {
    const s = await scene({ randomFully: ['b'] })
    const page = await pageIn(s, s.net.hosts.b1)
    await answeredByPage(s, page, 40)
    // Past the WebRTC attempt's timeout, still relayed.
    await new Promise((resolve) => setTimeout(resolve, 11_000))
    expect(await page.getAttribute('#via', 'data-via')).toBe('relayed')
    expect(await page.getAttribute('#via', 'data-direct-at')).toBeNull()
    expect(await consumerVias(s)).toEqual(['relay'])
    console.log(`page connected through the relay ${await at(page, 'relayed')} ms after its start (NAT B --random-fully: no direct connection)`)
  })
})
