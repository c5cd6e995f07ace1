/**
 * `p2pmq demo-fanout` (`npm run demo:fanout`): two groups, `billing` and `audit`, each with two
 * consumers. Every `num_users` message reaches both groups; inside a group its two consumers
 * share them.
 */
import { join } from 'node:path'
import { createBroker, createConsumer, createProducer } from '../src/index.js'
import { payloadToText } from '../src/payload.js'
import { withStage } from './demo-stage.js'
import { parseFlags, usage, type FlagSpecs } from './flags.js'
import { shortPeer } from './lifecycle.js'

const specs = {
  count: { type: 'number', value: '<n>', help: 'Messages the producer sends', default: 6 },
  interval: { type: 'number', value: '<ms>', help: 'Pause between messages', default: 300 }
} satisfies FlagSpecs

export const summary = 'Fan-out demo: two groups each get every num_users message; consumers inside a group share them.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('demo-fanout', summary, specs))
    return 0
  }
  return await withStage(async ({ home, stopLater }) => {
    const broker = await createBroker({ home, dataDir: join(home, 'broker'), memory: true })
    stopLater(async () => { await broker.stop() })
    const address = broker.getMultiaddrs()[0].toString()
    console.log(`Broker peer ID: ${broker.peerId.toString()}`)
    const got = new Map<string, number>()
    for (const group of ['billing', 'audit']) {
      for (const name of [`${group}-1`, `${group}-2`]) {
        const consumer = await createConsumer({ broker: address, home })
        stopLater(async () => { await consumer.stop() })
        await consumer.subscribe('num_users', (m) => {
          got.set(group, (got.get(group) ?? 0) + 1)
          console.log(`${group.padEnd(7)} ${name} (${shortPeer(consumer.peerId)}) got num_users = ${payloadToText(m.payload)}`)
        }, { group })
      }
    }
    const producer = await createProducer({ broker: address, home })
    stopLater(async () => { await producer.stop() })
    for (let n = 1; n <= flags.count; n++) {
      await producer.publish('num_users', 100 + n * 7)
      await new Promise((resolve) => setTimeout(resolve, flags.interval))
    }
    const deadline = Date.now() + 5_000
    while ([...got.values()].reduce((a, b) => a + b, 0) < 2 * flags.count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    console.log(`\n${flags.count} messages: billing got ${got.get('billing') ?? 0}, audit got ${got.get('audit') ?? 0}`)
    return got.get('billing') === flags.count && got.get('audit') === flags.count ? 0 : 1
  })
}
