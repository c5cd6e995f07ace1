/** `p2pmq purge`: removes the waiting messages of a command. */
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, withAdmin } from './admin-client.js'

const specs = {
  ...adminSpecs,
  command: { type: 'string', value: '<cmd>', help: 'The command whose waiting messages go (required)', default: '' },
  group: { type: 'string', value: '<name>', help: 'Only this group\'s queue (default: every group, and messages no group wants yet)', default: '' }
} satisfies FlagSpecs

export const summary = 'Remove the waiting (and delayed) messages of a command; messages being processed stay.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('purge', summary, specs))
    return 0
  }
  if (flags.command === '') throw new UsageError('-command=<cmd> is required')
  const purged = await withAdmin(flags, async (admin) => await admin.purge(flags.command, flags.group !== '' ? flags.group : undefined, flags.timeout), 'write')
  console.log(flags.json ? JSON.stringify({ purged }) : `${purged} message${purged === 1 ? '' : 's'} purged`)
  return 0
}
