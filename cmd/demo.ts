/** `p2pmq demo` (`npm start`): a broker, two consumers and a producer on loopback, in one go. */
import { join } from 'node:path'
import { createBroker, createConsumer, createProducer } from '../src/index.js'
import { payloadToText } from '../src/payload.js'
import { withStage } from './demo-stage.js'
import { parseFlags, usage, type FlagSpecs } from './flags.js'
import { shortPeer } from './lifecycle.js'

const specs = {
  count: { type: 'number', value: '<n>', help: 'Messages the producer sends', default: 10 },
  interval: { type: 'number', value: '<ms>', help: 'Pause between messages', default: 200 }
} satisfies FlagSpecs

export const summary = 'Start a broker, two consumers and a producer on 127.0.0.1 and show answers arriving from both consumers.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('demo', summary, specs))
    return 0
  }
  return await withStage(async ({ home, stopLater }) => {
    const broker = await createBroker({ home, dataDir: join(home, 'broker') })
    stopLater(async () => { await broker.stop() })
    const address = broker.getMultiaddrs()[0].toString()
    console.log(`Broker peer ID: ${broker.peerId.toString()}`)
    console.log(`Listening on ${address}`)

    for (const name of ['consumer-1', 'consumer-2']) {
      const consumer = await createConsumer({ broker: address, home })
      stopLater(async () => { await consumer.stop() })
      await consumer.subscribe('greet', async (m) => {
        await new Promise((resolve) => setTimeout(resolve, 20)) // a little work
        return `${name} says: Answer to ${payloadToText(m.payload)}`
      })
      console.log(`${name} (${shortPeer(consumer.peerId)}) subscribed to "greet"`)
    }

    const producer = await createProducer({ broker: address, home })
    stopLater(async () => { await producer.stop() })
    console.log(`producer (${shortPeer(producer.peerId)}) sends ${flags.count} messages\n`)
    const answers = new Map<string, number>()
    const pending: Array<Promise<void>> = []
    for (let n = 1; n <= flags.count; n++) {
      pending.push(producer.request('greet', `Hello world #${n}!`).then((r) => {
        answers.set(r.consumer, (answers.get(r.consumer) ?? 0) + 1)
        console.log(`#${n} answered by ${shortPeer(r.consumer)}: ${payloadToText(r.payload)}`)
      }))
      await new Promise((resolve) => setTimeout(resolve, flags.interval))
    }
    await Promise.all(pending)
    console.log(`\n${flags.count} answers from ${answers.size} consumers: ${[...answers].map(([p, n]) => `${shortPeer(p)} ${n}`).join(', ')}`)
    return 0
  })
}
