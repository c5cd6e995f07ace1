/** `p2pmq dlq list|replay`: a broker's dead letters (failed messages, in `<command>.dlq`). */
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, table, withAdmin } from './admin-client.js'

const specs = {
  ...adminSpecs,
  command: { type: 'string', value: '<cmd>', help: 'Only the dead letters of this command', default: '' },
  limit: { type: 'number', value: '<n>', help: 'At most this many', default: 1000 }
} satisfies FlagSpecs

export const summary = 'List dead letters (dlq list) or put them back in their queues (dlq replay).'

export async function run (args: string[]): Promise<number> {
  const [action, ...rest] = args
  const flags = parseFlags(rest, specs)
  if (flags.help || action === '-help' || action === '--help') {
    console.log(usage('dlq list|replay', summary, specs))
    return 0
  }
  const command = flags.command !== '' ? flags.command : undefined
  switch (action) {
    case 'list': {
      const pending = await withAdmin(flags, async (admin) => await admin.messages({ state: 'pending', limit: 100_000 }, flags.timeout))
      const letters = pending.filter((m) => m.command.endsWith('.dlq') && (command == null || m.command === `${command}.dlq`)).slice(0, flags.limit)
      if (flags.json) {
        for (const m of letters) console.log(JSON.stringify(m))
      } else {
        console.log(table(['DEAD LETTERS OF', 'ID', 'PRODUCER', 'FAILED AT'],
          letters.map((m) => [m.command.slice(0, -'.dlq'.length), m.id, m.producer, new Date(m.publishedAt).toISOString()])))
      }
      return 0
    }
    case 'replay': {
      const replayed = await withAdmin(flags, async (admin) => await admin.replayDeadLetters(command, flags.limit, flags.timeout), 'write')
      console.log(flags.json ? JSON.stringify({ replayed }) : `${replayed} dead letter${replayed === 1 ? '' : 's'} put back`)
      return 0
    }
    default: throw new UsageError('p2pmq dlq list|replay [flags]')
  }
}
