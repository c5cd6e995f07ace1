/**
 * `-relay` and `-stun`, shared by every command that reaches a broker and by the broker itself; apart from
 * flags.ts, which must load no libp2p (`p2pmq -help` stays fast). Each comes from its flag, else its
 * environment variable, else the p2pmq home's config file (`<home>/config.json`).
 */
import { readHomeConfig, type HomeConfig } from '../src/home.js'
import { parseRelayAddress } from '../src/relay.js'
import { parseStunServer } from '../src/stun.js'
import { list, UsageError, type FlagSpec } from './flags.js'

export const relaySpec = {
  type: 'string',
  repeatable: true,
  list: true,
  env: 'P2PMQ_RELAY',
  value: '<multiaddr>[,…]',
  default: '',
  help: 'Relays (p2pmq relay), each a multiaddr ending in /p2p/<peerId>; repeat or comma-separate (default: P2PMQ_RELAY, else "relay" in <home>/config.json)'
} satisfies FlagSpec

/** The relays of `-relay`, else of P2PMQ_RELAY, else of the home's config, each checked (a UsageError names a bad one). */
export function relayList (value: string, env = process.env.P2PMQ_RELAY): string[] {
  return checkedList('relay', value, env, parseRelayAddress)
}

export const stunSpec = {
  type: 'string',
  repeatable: true,
  list: true,
  env: 'P2PMQ_STUN',
  value: 'stun:<host>:<port>[,…]',
  default: '',
  help: 'STUN servers: with -relay, move from a relayed connection to a direct WebRTC one when the NATs allow (default: P2PMQ_STUN, else "stun" in <home>/config.json, else none)'
} satisfies FlagSpec

/** The STUN servers of `-stun`, else of P2PMQ_STUN, else of the home's config, each checked (a UsageError names a bad one). */
export function stunList (value: string, env = process.env.P2PMQ_STUN): string[] {
  return checkedList('stun', value, env, parseStunServer)
}

/**
 * The home's config, read and checked once per process, whether or not a flag overrides it (a
 * broken file is reported, as git does, rather than found later).
 */
let config: HomeConfig | undefined
function homeConfig (): HomeConfig {
  config ??= readHomeConfig({ relay: parseRelayAddress, stun: parseStunServer })
  return config
}

/** The comma-separated items of `-<flag>` (else of its environment variable, else of the config), each through `parse`. */
function checkedList (flag: 'relay' | 'stun', value: string, env: string | undefined, parse: (item: string) => string): string[] {
  const configured = homeConfig()[flag] ?? []
  if (value === '' && (env ?? '') === '') return configured
  return list(value !== '' ? value : env ?? '').map((item) => {
    try {
      return parse(item)
    } catch (err) {
      throw new UsageError(`-${flag}: ${(err as Error).message}`)
    }
  })
}
