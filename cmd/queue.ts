/** `p2pmq queue delete` and `p2pmq group delete`: end a queue, or a whole group. */
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, withAdmin } from './admin-client.js'

const specs = {
  ...adminSpecs,
  command: { type: 'string', value: '<cmd>', help: 'The command whose queue goes (queue delete)', default: '' },
  group: { type: 'string', value: '<name>', help: 'The group (required)', default: '' },
  force: { type: 'boolean', help: 'Delete even while consumers are subscribed (a deleted group ends their subscriptions)' }
} satisfies FlagSpecs

export const queueSummary = 'Delete one group\'s queue of a command, with its messages (queue delete).'
export const groupSummary = 'Delete a group: its bindings, queues and messages (group delete).'

/** `what` is 'queue' or 'group': which `p2pmq <what> delete` this is. */
export async function runDelete (what: 'queue' | 'group', args: string[]): Promise<number> {
  const [action, ...rest] = args
  const flags = parseFlags(rest, specs)
  if (flags.help || action === '-help' || action === '--help') {
    console.log(usage(`${what} delete`, what === 'queue' ? queueSummary : groupSummary, specs))
    return 0
  }
  if (action !== 'delete') throw new UsageError(`p2pmq ${what} delete [flags]`)
  if (flags.group === '') throw new UsageError('-group=<name> is required')
  if (what === 'queue') {
    if (flags.command === '') throw new UsageError('-command=<cmd> is required (to delete the whole group: p2pmq group delete)')
    const deleted = await withAdmin(flags, async (admin) => await admin.deleteQueue(flags.command, flags.group, { force: flags.force }, flags.timeout), 'write')
    console.log(flags.json ? JSON.stringify({ deleted }) : `Queue ${flags.command} of group ${flags.group} deleted with ${deleted} message${deleted === 1 ? '' : 's'}`)
    return 0
  }
  if (flags.command !== '') throw new UsageError('group delete takes no -command (to delete one queue: p2pmq queue delete)')
  const r = await withAdmin(flags, async (admin) => await admin.deleteGroup(flags.group, { force: flags.force }, flags.timeout), 'write')
  console.log(flags.json ? JSON.stringify(r) : `Group ${flags.group} deleted with ${r.queues} queue${r.queues === 1 ? '' : 's'} and ${r.messages} message${r.messages === 1 ? '' : 's'}`)
  return 0
}

export const summary = queueSummary
export async function run (args: string[]): Promise<number> {
  return await runDelete('queue', args)
}
