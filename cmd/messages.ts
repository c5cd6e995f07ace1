/** `p2pmq messages`: lists a broker's messages by state. */
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, table, withAdmin } from './admin-client.js'
import { shortPeer } from './lifecycle.js'
import type { MessageStateName } from '../src/index.js'

const STATES = ['pending', 'in-process', 'completed', 'error']

const specs = {
  ...adminSpecs,
  state: { type: 'string', value: '<state>', help: `Only messages in this state: ${STATES.join(', ')}`, default: '' },
  command: { type: 'string', value: '<cmd>', help: 'Only messages naming this command', default: '' },
  limit: { type: 'number', value: '<n>', help: 'At most this many', default: 100 }
} satisfies FlagSpecs

export const summary = 'List a broker\'s messages: pending, in process, completed (kept for a while) and failed.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('messages', summary, specs))
    return 0
  }
  if (flags.state !== '' && !STATES.includes(flags.state)) throw new UsageError(`-state must be one of ${STATES.join(', ')}`)
  const state = flags.state === '' ? undefined : flags.state.replace('-', ' ') as MessageStateName
  const messages = await withAdmin(flags, async (admin) => await admin.messages({
    state,
    command: flags.command !== '' ? flags.command : undefined,
    limit: flags.limit
  }, flags.timeout))
  if (flags.json) {
    for (const m of messages) console.log(JSON.stringify(m))
    return 0
  }
  console.log(table(
    ['STATE', 'COMMAND', 'GROUP', 'ID', 'ATTEMPTS', 'CONSUMER', 'UPDATED', 'ERROR'],
    messages.map((m) => [m.state, m.command, m.group, m.id, String(m.attempts), m.consumer != null ? shortPeer(m.consumer) : '',
      new Date(m.updatedAt).toISOString(), m.lastError ?? ''])
  ))
  return 0
}
