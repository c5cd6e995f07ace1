/**
 * Benchmark child: the p2pmq broker, alone in its process, listening on 127.0.0.1 only.
 * argv: <dataDir> <home> <memory|durable|webrtc> [net]. Reports { type: 'ready', addr } (and, for
 * webrtc, the web page's `url`), then answers 'mark' and 'stats'. `webrtc`: in memory, also
 * listening on WebRTC Direct, with the web server. `net` (across the NAT harness), JSON of
 * { listen, relays, stun? }: listens on `listen` instead, reserves on the relays (and with `stun`
 * listens on /webrtc through them), and is ready once reachable through a relay.
 */
import { tierUpSooner } from '../cmd/tier-up.js'
import { createBroker, localAddresses } from '../src/index.js'
import { serveBroker } from '../src/web-server.js'
import { CpuMeter, LISTEN, die, onCommand, report, sleep } from './common.js'

// As the CLI's broker runs (cmd/tier-up.ts).
tierUpSooner()

interface Net { listen: string, relays: string[], stun?: string[] }

/** Waits until the broker's addresses include one through a relay (and, with STUN, a /webrtc one). */
async function untilReachable (node: { getMultiaddrs: () => Array<{ toString: () => string }> }, stun: boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const addrs = node.getMultiaddrs().map((a) => a.toString())
    if (addrs.some((a) => a.includes('/p2p-circuit')) && (!stun || addrs.some((a) => a.includes('/webrtc')))) return
    if (Date.now() > deadline) throw new Error(`No reservation on the relay within ${timeoutMs} ms (addresses: ${addrs.join(', ')})`)
    await sleep(20)
  }
}

async function main (): Promise<void> {
  const [dataDir, home, mode, netText] = process.argv.slice(2)
  if (dataDir == null || home == null || !['memory', 'durable', 'webrtc'].includes(mode)) throw new Error('usage: broker-proc <dataDir> <home> <memory|durable|webrtc> [net]')
  const net = netText == null ? undefined : JSON.parse(netText) as Net
  const listen = net != null ? [net.listen] : mode === 'webrtc' ? [LISTEN, '/ip4/127.0.0.1/udp/0/webrtc-direct'] : [LISTEN]
  const node = await createBroker({ dataDir, home, listen, memory: mode !== 'durable', relays: net?.relays, stun: net?.stun, acl: net != null ? 'open' : undefined })
  const web = mode === 'webrtc' ? await serveBroker(node, 0) : undefined
  const cpu = new CpuMeter()
  onCommand((cmd) => {
    switch (cmd.cmd) {
      case 'mark': cpu.mark(); break
      case 'gc': globalThis.gc?.(); report({ type: 'gc', memory: process.memoryUsage() }); break
      case 'stats': {
        const stats = node.services.mq.stats()
        report({ type: 'stats', messages: stats.messages, queues: stats.queues, clients: stats.clients.length, rss: process.memoryUsage().rss, memory: process.memoryUsage(), ...cpu.since() })
        break
      }
    }
  }, async () => { await web?.close(); await node.stop() })
  if (net != null) await untilReachable(node, (net.stun ?? []).length > 0)
  // Where it listens (with -relay it announces only relayed and public addresses, not the LAN one the bench's own clients use)
  const addrs = localAddresses(node).map((a) => a.toString())
  const host = (net?.listen ?? LISTEN).split('/tcp/')[0]
  const addr = addrs.find((a) => a.startsWith(`${host}/tcp/`))
  if (addr == null) throw new Error(`The broker listens on no ${host} TCP address: ${addrs.join(', ')}`)
  report({ type: 'ready', addr: addr.includes('/p2p/') ? addr : `${addr}/p2p/${node.peerId.toString()}`, addrs, url: web?.url })
}

main().catch(die)
