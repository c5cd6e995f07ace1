/**
 * `p2pmq demo-users-servers` (`npm run demo:users-servers`): a broker with its dashboard, two
 * producers sending `num_users` and `num_servers` every second with changing values, and a
 * consumer subscribed to both that answers. The printed dashboard address subscribes the page,
 * in a group of its own, to both commands, so it shows every value as it changes.
 */
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createBroker, createProducer } from '../src/index.js'
import { serveBroker } from '../src/web-server.js'
import { withStage } from './demo-stage.js'
import { parseFlags, usage, type FlagSpecs } from './flags.js'
import { shutdownSignal } from './lifecycle.js'

const BIN = fileURLToPath(new URL('./p2pmq.js', import.meta.url))

const specs = {
  http: { type: 'number', value: '<port>', help: 'Port of the dashboard (0: any free port)', default: 8094 },
  interval: { type: 'number', value: '<ms>', help: 'Pause between two values of each producer', default: 1000 },
  seconds: { type: 'number', value: '<s>', help: 'Stop after this long (0: at Ctrl+C)', default: 0 }
} satisfies FlagSpecs

export const summary = 'Dashboard demo: two producers send num_users and num_servers every second; a consumer answers both.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('demo-users-servers', summary, specs))
    return 0
  }
  return await withStage(async ({ home, stopLater }) => {
    const broker = await createBroker({ home, dataDir: join(home, 'broker'), memory: true, listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/webrtc-direct'] })
    stopLater(async () => { await broker.stop() })
    const web = await serveBroker(broker, flags.http)
    stopLater(async () => { await web.close() })
    const address = broker.getMultiaddrs().map(String).find((a) => a.includes('/tcp/')) as string
    console.log(`Broker peer ID: ${broker.peerId.toString()}`)
    // The page in a group of its own gets every value, beside the consumer that answers them.
    console.log(`Dashboard: ${web.url}?subscribe=num_users,num_servers&group=dashboard&answer=auto`)

    // The consumer is the CLI's, in a process of its own, as a user would run it.
    const consumer = spawn(process.execPath, [BIN, 'consumer', `-broker=${address}`, '-command=num_users,num_servers'], {
      env: { ...process.env, P2PMQ_HOME: home },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    stopLater(async () => {
      if (consumer.exitCode != null) return
      const exited = new Promise((resolve) => consumer.once('exit', resolve))
      consumer.kill()
      await exited
    })
    createInterface({ input: consumer.stdout }).on('line', (line) => { console.log(`consumer: ${line}`) })
    await new Promise<void>((resolve, reject) => {
      consumer.stdout.on('data', (b: Buffer) => { if (b.toString().includes('Subscribed to')) resolve() })
      consumer.once('exit', (code) => { reject(new Error(`the consumer exited (${String(code)})`)) })
    })

    // Two producers, each a random walk: users between 0 and 1000, servers between 1 and 20.
    const walk = async (command: string, start: number, step: number, min: number, max: number): Promise<() => void> => {
      const producer = await createProducer({ broker: address, home })
      stopLater(async () => { await producer.stop() })
      let value = start
      const timer = setInterval(() => {
        value = Math.max(min, Math.min(max, value + Math.round((Math.random() * 2 - 1) * step)))
        producer.send(command, value, { timeout: 10_000 }).catch((err: Error) => { console.error(`${command}: ${err.message}`) })
      }, flags.interval)
      return () => { clearInterval(timer) }
    }
    const stopWalks = [await walk('num_users', 120, 25, 0, 1000), await walk('num_servers', 4, 1, 1, 20)]
    stopLater(async () => { for (const stop of stopWalks) stop() })
    if (flags.seconds > 0) await new Promise((resolve) => setTimeout(resolve, flags.seconds * 1000))
    else await shutdownSignal()
    return 0
  })
}
