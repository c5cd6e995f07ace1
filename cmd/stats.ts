/** `p2pmq stats`: a broker's queues and clients. */
import { parseFlags, usage } from './flags.js'
import { adminSpecs, table, withAdmin } from './admin-client.js'
import { shortPeer } from './lifecycle.js'

const specs = adminSpecs

export const summary = 'Show a broker\'s queues (depth, in flight, consumers, rates) and clients.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('stats', summary, specs))
    return 0
  }
  const stats = await withAdmin(flags, async (admin) => await admin.stats(flags.timeout))
  if (flags.json) {
    console.log(JSON.stringify(stats))
    return 0
  }
  const rate = (n: number): string => n.toFixed(n < 10 ? 1 : 0)
  console.log(table(
    ['QUEUE', 'DEPTH', 'IN FLIGHT', 'DELAYED', 'DEAD LETTERS', 'CONSUMERS', 'PUBLISHED/S', 'DELIVERED/S', 'ACKED/S', 'FAILED'],
    stats.queues.map((q) => [q.group === '' ? `${q.command} (no group yet)` : `${q.command}@${q.group}`, String(q.depth), String(q.inFlight),
      String(q.delayed), String(q.deadLetters), String(q.consumers), rate(q.rates.published), rate(q.rates.delivered), rate(q.rates.acked), String(q.failed)])
  ))
  // The broker lists the deepest queues only.
  if ((stats.moreQueues ?? 0) > 0) console.log(`and ${stats.moreQueues} more queues, shallower`)
  console.log('')
  console.log(`${stats.messages} messages held, ${stats.keptAnswers} answers kept for disconnected producers`)
  for (const c of stats.clients) {
    const subs = c.subscriptions?.map((s) => `${s.patterns.join(',')}@${s.group} (${s.unacked}/${s.prefetch})`).join(' ') ?? ''
    console.log(`${c.role.padEnd(8)} ${shortPeer(c.peer)} ${subs}`.trimEnd())
  }
  return 0
}
