/** `p2pmq group delete`: see queue.ts. */
import { groupSummary, runDelete } from './queue.js'

export const summary = groupSummary
export async function run (args: string[]): Promise<number> {
  return await runDelete('group', args)
}
