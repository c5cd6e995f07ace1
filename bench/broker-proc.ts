/**
 * Benchmark child: the p2pmq broker, alone in its process, listening on 127.0.0.1 only.
 * argv: <dataDir> <home> <memory|durable|webrtc>. Reports { type: 'ready', addr } (and, for
 * webrtc, the web page's `url`), then answers 'mark' and 'stats'. `webrtc`: in memory, also
 * listening on WebRTC Direct, with the web server.
 */
import { createBroker } from '../src/index.js'
import { serveBroker } from '../src/web-server.js'
import { CpuMeter, LISTEN, die, onCommand, report } from './common.js'

async function main (): Promise<void> {
  const [dataDir, home, mode] = process.argv.slice(2)
  if (dataDir == null || home == null || !['memory', 'durable', 'webrtc'].includes(mode)) throw new Error('usage: broker-proc <dataDir> <home> <memory|durable|webrtc>')
  const listen = mode === 'webrtc' ? [LISTEN, '/ip4/127.0.0.1/udp/0/webrtc-direct'] : [LISTEN]
  const node = await createBroker({ dataDir, home, listen, memory: mode !== 'durable' })
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
  const addrs = node.getMultiaddrs().map((a) => a.toString())
  const addr = addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
  if (addr == null) throw new Error(`The broker listens on no 127.0.0.1 TCP address: ${addrs.join(', ')}`)
  report({ type: 'ready', addr: addr.includes('/p2p/') ? addr : `${addr}/p2p/${node.peerId.toString()}`, addrs, url: web?.url })
}

main().catch(die)
