/** `p2pmq schedule add|list|remove`: periodic messages the broker publishes itself. */
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, table, withAdmin } from './admin-client.js'
import { EXIT } from './exit-codes.js'

const specs = {
  ...adminSpecs,
  command: { type: 'string', value: '<cmd>', help: 'add: the command of the messages', default: '' },
  payload: { type: 'string', value: '<text>', help: 'add: the payload', default: '' },
  every: { type: 'number', value: '<ms>', help: 'add: publish every this many ms', default: 0 },
  cron: { type: 'string', value: '<expr>', help: 'add: publish on this cron expression (5 fields, or 6 with seconds)', default: '' },
  id: { type: 'string', value: '<id>', help: 'add: the schedule id (the same id replaces it); remove: the one to remove', default: '' }
} satisfies FlagSpecs

export const summary = 'Periodic messages: schedule add (-every or -cron), schedule list, schedule remove -id.'

export async function run (args: string[]): Promise<number> {
  const [action, ...rest] = args
  const flags = parseFlags(rest, specs)
  if (flags.help || action === '-help' || action === '--help') {
    console.log(usage('schedule add|list|remove', summary, specs))
    return 0
  }
  switch (action) {
    case 'add': {
      if (flags.command === '') throw new UsageError('-command=<cmd> is required')
      const timing = flags.cron !== '' ? { cron: flags.cron } : flags.every > 0 ? { every: flags.every } : undefined
      if (timing == null) throw new UsageError('give -every=<ms> or -cron=<expr>')
      const s = await withAdmin(flags, async (admin) =>
        await admin.schedule(flags.command, flags.payload, { ...timing, id: flags.id !== '' ? flags.id : undefined }, flags.timeout), 'write')
      console.log(flags.json ? JSON.stringify(s) : `Scheduled ${s.id}: ${s.command} ${s.cron ?? `every ${s.every as number} ms`}, next at ${new Date(s.nextAt).toISOString()}`)
      return 0
    }
    case 'list': {
      const list = await withAdmin(flags, async (admin) => await admin.schedules(flags.timeout))
      if (flags.json) {
        for (const s of list) console.log(JSON.stringify(s))
      } else {
        console.log(table(['ID', 'COMMAND', 'WHEN', 'NEXT'], list.map((s) => [s.id, s.command, s.cron ?? `every ${s.every as number} ms`, new Date(s.nextAt).toISOString()])))
      }
      return 0
    }
    case 'remove': {
      if (flags.id === '') throw new UsageError('-id=<id> is required')
      const removed = await withAdmin(flags, async (admin) => await admin.unschedule(flags.id, flags.timeout), 'write')
      console.log(flags.json ? JSON.stringify({ removed }) : removed ? `Removed ${flags.id}` : `No schedule ${flags.id}`)
      return removed ? EXIT.OK : EXIT.FAILURE
    }
    default: throw new UsageError('p2pmq schedule add|list|remove [flags]')
  }
}
