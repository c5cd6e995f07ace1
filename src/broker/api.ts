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
  /** A peer reached one of the broker's limits per peer (told once per peer and limit a minute). */
  'peer:limit': CustomEvent<{ peer: string, limit: string, message: string }>
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
}

export type AdminMethod = keyof AdminMethods
export type AdminParams<M extends AdminMethod> = AdminMethods[M]['params']
export type AdminResult<M extends AdminMethod> = AdminMethods[M]['result']
