/**
 * The types the broker's API speaks (its stats, clients, message listings and schedules), shared
 * by the broker, the clients, the CLI and the page: a client imports these, not the broker.
 */
import type { QueueStats } from './engine.js'

export type ClientRole = 'producer' | 'consumer' | 'admin'

export interface ClientEvent {
  peer: string
  role: ClientRole
  /** Why the stream ended, when it was not an orderly close. */
  error?: Error
}

export interface BrokerEvents {
  'client:join': CustomEvent<ClientEvent>
  'client:leave': CustomEvent<ClientEvent>
  /** A client sent a malformed, unknown or oversized frame; its stream was ended. */
  'client:error': CustomEvent<ClientEvent>
  /**
   * The access control list refused a peer: a connection, a publish or send, a subscription or an
   * admin request. At most one per peer per minute (the rest are counted in the next one).
   */
  'client:denied': CustomEvent<DeniedEvent>
  /** A peer reached one of the broker's limits per peer (told once per peer and limit a minute). */
  'peer:limit': CustomEvent<{ peer: string, limit: string, message: string }>
}

/** A refusal of the access control list, as `client:denied` tells it. */
export interface DeniedEvent {
  peer: string
  /** The stream's role; undefined for a connection refused at once. */
  role?: ClientRole
  /** What was refused and why, with how to fix it, e.g. `publish to "orders.new": no produce grant covers it`. */
  reason: string
  /** Refusals of this peer left untold since the last event (rate limit). */
  suppressed: number
}

export interface ClientInfo {
  peer: string
  role: ClientRole
  /** How it is connected: 'webrtc' (a browser page, usually), 'relay' (through a relay) or 'tcp'. */
  via: 'webrtc' | 'tcp' | 'relay'
  subscriptions?: Array<{ group: string, patterns: readonly string[], prefetch: number, unacked: number }>
}

/** Messages per second over the last second, per queue. */
export interface QueueRates {
  published: number
  delivered: number
  acked: number
}

export interface BrokerStats {
  /**
   * The queues, with their rates and dead letters (messages waiting in `<command>.dlq`): at most
   * 1,000 of them, the deepest first (then the most in flight), so the reply fits an admin frame.
   */
  queues: Array<QueueStats & { rates: QueueRates, deadLetters: number }>
  /** Queues the broker holds that `queues` leaves out (the shallowest). */
  moreQueues: number
  clients: ClientInfo[]
  /** Messages held: waiting, unrouted and in flight. */
  messages: number
  /** Answers waiting for their producers to reconnect. */
  keptAnswers: number
  /** The broker itself (absent from a broker older than the field). */
  broker?: BrokerOverview
}

/** The broker as the dashboard's overview shows it. */
export interface BrokerOverview {
  /** The p2pmq package version the broker runs. */
  version: string
  /** When the broker service started (ms since the epoch). */
  startedAt: number
  /** The process's resident memory and JavaScript heap in use, in bytes (absent outside Node). */
  memory?: { rss: number, heapUsed: number }
  /** Bytes the message store takes on disk, read every 10 s (absent without a store on disk). */
  storeBytes?: number
  /** Counters summed over the queues held now (a queue removed takes its counts with it). */
  totals: { published: number, delivered: number, acked: number, failed: number }
  /** Producer streams whose confirms flow control holds now (a consumed queue past its high-water mark). */
  heldProducers: number
}

export type MessageStateName = 'pending' | 'in process' | 'completed' | 'error'

export const MESSAGE_STATES: readonly MessageStateName[] = ['pending', 'in process', 'completed', 'error']

/** One message as `messages()` lists it. */
export interface MessageInfo {
  id: string
  command: string
  /** The consumer group whose copy this is ('' while no group wants it). */
  group: string
  state: MessageStateName
  producer: string
  /** The consumer that has it (in process) or had it last. */
  consumer?: string
  /** Deliveries so far. */
  attempts: number
  lastError?: string
  /** ms since the epoch. */
  publishedAt: number
  updatedAt: number
  /** With `bodies`: the message's headers. */
  headers?: Record<string, string>
  /** With `bodies`: its payload's kind (0 none, 1 bytes, 2 string, 3 JSON), size, and first bytes (at most 4 KiB, base64). */
  payload?: { kind: number, size: number, data: string }
}

export interface MessageQuery {
  /**
   * Only messages in this state.
   * @default undefined (any state)
   */
  state?: MessageStateName
  /**
   * Only messages of this command.
   * @default undefined (any command)
   */
  command?: string
  /**
   * Most messages returned.
   * @default 100
   */
  limit?: number
  /**
   * Skip this many matching messages first (the next page: `offset` + `limit`).
   * @default 0
   */
  offset?: number
  /**
   * Give each message's headers and the start of its payload too.
   * @default false
   */
  bodies?: boolean
}

/** How a periodic message repeats (`every` or `cron`, one of them), and its id and headers. */
export interface ScheduleOptions {
  /**
   * Replaces the schedule with this id.
   * @default undefined (an id is made up)
   */
  id?: string
  /**
   * Headers of each message published.
   * @default undefined (none)
   */
  headers?: Record<string, string>
  /**
   * ms between runs (at least 10); give this or `cron`.
   * @default undefined
   */
  every?: number
  /**
   * A cron expression (five fields, or six with seconds); give this or `every`.
   * @default undefined
   */
  cron?: string
}

/** A periodic message to register: the payload as `encodePayload` gives it. */
export interface ScheduleSpec extends ScheduleOptions {
  command: string
  kind: number
  payload: Uint8Array
}

/** The options of deleting a queue or a group. */
export interface DeleteOptions {
  /**
   * Delete it even while it has consumers (a deleted group's subscriptions are ended).
   * @default false (refused with ConflictError)
   */
  force?: boolean
}

/** A schedule as it is listed. */
export interface ScheduleInfo {
  id: string
  command: string
  producer: string
  every?: number
  cron?: string
  /** The next run and when it was registered (ms since the epoch). */
  nextAt: number
  createdAt: number
}

/** A `schedule` request as it travels: the payload as `encodePayload` gives it, its bytes in base64. */
export interface ScheduleRequest extends Omit<ScheduleSpec, 'payload'> {
  /** base64 of the payload bytes. */
  data: string
}

/** Whether a peer may read the broker's state (`read`) or also change it (`write`). */
export type AdminLevel = 'read' | 'write'

/** A right to consume: subscriptions whose patterns this pattern covers, in `group` or any group. */
export interface ConsumeGrant {
  pattern: string
  /**
   * Only in this consumer group.
   * @default undefined (any group)
   */
  group?: string
}

/**
 * What one peer ID (or `*`, any peer) may do: its entry in the access control list (the ACL
 * file's `peers` map). A peer's rights are its own grants and `*`'s, unless it is blocked.
 */
export interface PeerGrants {
  /** Command patterns it may publish and send to. */
  produce?: string[]
  consume?: ConsumeGrant[]
  admin?: AdminLevel
  /** Refused everything, at connection time, whatever `*` grants. */
  blocked?: boolean
}

/** The access control list, as its file (`acl.json`) holds it. */
export interface AclFile {
  peers: Record<string, PeerGrants>
}

/**
 * `protected`: no ACL yet; peers connecting from this host may do everything, others are refused.
 * `acl`: the ACL decides. `open`: any peer may do everything (`acl: 'open'`), until a change makes an ACL.
 */
export type AclMode = 'protected' | 'acl' | 'open'

export interface AclInfo extends AclFile {
  mode: AclMode
  /** Set by a change that had to do more than asked, e.g. the first one in protected mode (it grants the asking peer admin write). */
  note?: string
}

/** One grant, as `acl-allow` adds it and `acl-deny` withdraws it. */
export type Grant = { produce: string } | { consume: string, group?: string } | { admin: AdminLevel }

/** An `acl-allow` or `acl-deny` request: a peer ID or `*`, and the grant; `acl-deny` with no grant blocks the peer. */
export type AclChange = { peer: string } & (Grant | Record<never, never>)

/** What the asking peer may do (`whoami`): its ID, the mode and its rights (its own grants and `*`'s). */
export interface PeerRights {
  peer: string
  mode: AclMode
  rights: PeerGrants
}

/**
 * The admin protocol: each method's parameters (the request's JSON body) and result (the
 * response's). The broker's handler table, the admin client, the CLI and the page all use it.
 */
export interface AdminMethods {
  stats: { params: undefined, result: BrokerStats }
  messages: { params: MessageQuery | undefined, result: MessageInfo[] }
  schedule: { params: ScheduleRequest, result: ScheduleInfo }
  schedules: { params: undefined, result: ScheduleInfo[] }
  unschedule: { params: { id: string }, result: { removed: boolean } }
  purge: { params: { command: string, group?: string }, result: { purged: number } }
  'delete-queue': { params: { command: string, group: string, force?: boolean }, result: { deleted: number } }
  'delete-group': { params: { group: string, force?: boolean }, result: { queues: number, messages: number } }
  'replay-dead-letters': { params: { command?: string, limit?: number } | undefined, result: { replayed: number } }
  /**
   * The one standing request: the stats now and every `interval` ms (250 to 3,600,000) after, until
   * the stream closes or `unwatch` names its reqId. A stream holds at most 4.
   */
  watch: { params: { interval?: number } | undefined, result: BrokerStats }
  unwatch: { params: { reqId: number }, result: { stopped: boolean } }
  /** The asking peer's own rights; any connected peer may ask. */
  whoami: { params: undefined, result: PeerRights }
  /** The access control list (admin read). */
  acl: { params: undefined, result: AclInfo }
  /** Adds a grant (admin write); the ACL as it is after. Allowing a blocked peer unblocks it. */
  'acl-allow': { params: AclChange & Grant, result: AclInfo }
  /** Withdraws a grant, or with none blocks the peer (admin write); the ACL as it is after. */
  'acl-deny': { params: AclChange, result: AclInfo }
}

export type AdminMethod = keyof AdminMethods
export type AdminParams<M extends AdminMethod> = AdminMethods[M]['params']
export type AdminResult<M extends AdminMethod> = AdminMethods[M]['result']
