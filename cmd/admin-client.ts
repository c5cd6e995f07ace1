/** What `p2pmq messages` and `p2pmq stats` share: flags to reach the broker, a one-shot admin call, a table. */
import { createAdmin, PermissionDeniedError, type Admin, type AdminLevel } from '../src/index.js'
import { MAX_TIMER, UsageError, type FlagSpecs } from './flags.js'
import { relayList, relaySpec } from './relay-flag.js'
import { reportRetry } from './lifecycle.js'
import { clientIdentity, nameSpec, refusal } from './identity.js'

export const adminSpecs = {
  broker: { type: 'string', value: '<peerId|multiaddr>', help: 'The broker: its peer ID (same host, or with -relay) or a multiaddr ending in /p2p/<peerId>', default: '' },
  relay: relaySpec,
  name: nameSpec,
  json: { type: 'boolean', help: 'Print JSON (for scripts)' },
  timeout: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'How long to wait for the broker', default: 10_000 }
} satisfies FlagSpecs

/**
 * Connects to the broker of `-broker` (through `-relay`) as the identity of -name (else the
 * user's), runs `call`, and stops the client whatever happens. A refusal by the broker's ACL
 * says which `level` of admin right to ask its operator for.
 */
export async function withAdmin<T> (flags: { broker: string, relay: string, name: string }, call: (admin: Admin) => Promise<T>, level: AdminLevel = 'read'): Promise<T> {
  if (flags.broker === '') throw new UsageError('-broker=<peerId|multiaddr> is required')
  let peer: string | undefined
  const admin = await createAdmin({ broker: flags.broker, relays: relayList(flags.relay), ...(await clientIdentity(flags)), onRetry: (err, wait) => { reportRetry(err, wait, peer, `admin ${level}`) } })
  peer = admin.peerId
  try {
    return await call(admin)
  } catch (err) {
    throw err instanceof PermissionDeniedError ? refusal(err, admin.peerId, `admin ${level}`) : err
  } finally {
    await admin.stop()
  }
}

/** Left-aligned columns, a header row first. */
export function table (header: string[], rows: string[][]): string {
  // A loop, not Math.max(...column): spreading 200,000 rows into arguments overflows the stack.
  const widths = header.map((h) => h.length)
  for (const r of rows) r.forEach((cell, i) => { if (cell.length > widths[i]) widths[i] = cell.length })
  const line = (r: string[]): string => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}
