/**
 * The admin protocol's methods, one handler per method in one table (as js-libp2p's kad-dht
 * registers one handler per message type): each checks its parameters (throwing
 * InvalidArgumentError) and calls the part of the broker that does the work. To add a method, add
 * its types to `AdminMethods` (api.ts) and its entry here. `watch`, the standing request (it
 * repeats `stats`), and `unwatch`, which ends one, are the admin session's own (admin-session.ts).
 */
import { MAX_MESSAGES_OFFSET } from '../constants.js'
import { InvalidArgumentError, PermissionDeniedError, UnknownMethodError } from '../errors.js'
import { Rights } from './acl.js'
import { MESSAGE_STATES, type AclInfo, type AdminLevel, type AdminMethod, type AdminResult, type BrokerStats, type MessageInfo, type MessageQuery, type MessageStateName, type PeerRights, type ScheduleSpec } from './api.js'
import type { DeadLetters } from './dead-letters.js'
import type { Deletions } from './deletions.js'
import type { QueueEngine } from './engine.js'
import type { Scheduler } from './schedules.js'
import type { AdminService } from './sessions.js'

/** Runs one admin method of `peer` (who may do what `rights` says): `raw` is the request's parsed JSON body, not checked yet. */
type Handler<M extends AdminMethod> = (raw: unknown, peer: string, rights: Rights) => AdminResult<M> | Promise<AdminResult<M>>

/** Every admin method but the session's own has its handler. */
export type AdminHandlerTable = { [M in Exclude<AdminMethod, 'watch' | 'unwatch'>]: Handler<M> }

/**
 * The admin right each method needs (the ACL's `admin: 'read' | 'write'`); none for the asking
 * peer's own rights and for stopping its own watch.
 */
export const ADMIN_LEVELS: { readonly [M in AdminMethod]: AdminLevel | undefined } = {
  stats: 'read',
  messages: 'read',
  schedules: 'read',
  watch: 'read',
  acl: 'read',
  schedule: 'write',
  unschedule: 'write',
  purge: 'write',
  'delete-queue': 'write',
  'delete-group': 'write',
  'replay-dead-letters': 'write',
  'acl-allow': 'write',
  'acl-deny': 'write',
  whoami: undefined,
  unwatch: undefined
}

/** What the handlers act on. */
export interface AdminTargets {
  engine: QueueEngine<any>
  scheduler: Scheduler
  deletions: Deletions
  deadLetters: DeadLetters
  stats: () => BrokerStats
  messages: (query: MessageQuery) => Promise<MessageInfo[]>
  acl: () => AclInfo
  /** Applies an `acl-allow` or `acl-deny` request (parameters unchecked) of `peer`. */
  changeAcl: (kind: 'allow' | 'deny', raw: unknown, peer: string) => Promise<AclInfo>
}

export function adminHandlers (t: AdminTargets): AdminHandlerTable {
  return {
    stats: () => t.stats(),
    messages: async (raw) => await t.messages(messageQuery(raw)),
    schedule: (raw, peer) => t.scheduler.add(peer, scheduleSpec(raw)),
    schedules: () => t.scheduler.list(),
    unschedule: (raw) => {
      const { id } = fields(raw)
      if (typeof id !== 'string') throw new InvalidArgumentError('unschedule needs an id')
      return { removed: t.scheduler.remove(id) }
    },
    purge: (raw) => {
      const { command, group } = fields(raw)
      if (typeof command !== 'string' || command === '') throw new InvalidArgumentError('purge needs a command')
      if (group != null && typeof group !== 'string') throw new InvalidArgumentError('group must be a string')
      if (typeof group === 'string') t.engine.touchGroup(group)
      return { purged: t.deletions.purge(command, group as string | undefined) }
    },
    'delete-queue': (raw) => {
      const { command, group, force } = fields(raw)
      if (typeof command !== 'string' || command === '') throw new InvalidArgumentError('delete-queue needs a command')
      if (typeof group !== 'string' || group === '') throw new InvalidArgumentError('delete-queue needs a group')
      return { deleted: t.deletions.deleteQueue(command, group, { force: force === true }) }
    },
    'delete-group': (raw) => {
      const { group, force } = fields(raw)
      if (typeof group !== 'string' || group === '') throw new InvalidArgumentError('delete-group needs a group')
      return t.deletions.deleteGroup(group, { force: force === true })
    },
    'replay-dead-letters': (raw) => {
      const { command, limit } = fields(raw)
      if (command != null && typeof command !== 'string') throw new InvalidArgumentError('command must be a string')
      if (limit != null && !(typeof limit === 'number' && Number.isInteger(limit) && limit > 0)) throw new InvalidArgumentError('limit must be a positive integer')
      return { replayed: t.deadLetters.replay(command as string | undefined, limit as number | undefined) }
    },
    whoami: (_raw, peer, rights): PeerRights => ({ peer, mode: t.acl().mode, rights: rights.grants }),
    acl: () => t.acl(),
    'acl-allow': async (raw, peer) => await t.changeAcl('allow', raw, peer),
    'acl-deny': async (raw, peer) => await t.changeAcl('deny', raw, peer)
  }
}

/** Serves admin sessions from the handler table. */
export class AdminDispatcher implements AdminService {
  private readonly table: AdminHandlerTable

  constructor (private readonly targets: AdminTargets) {
    this.table = adminHandlers(targets)
  }

  /**
   * Runs an admin request through the table; throws UnknownMethodError for a method it lacks,
   * PermissionDeniedError when `rights` lack the admin level it needs.
   */
  async run (peer: string, method: string, raw: unknown, rights = Rights.everything(peer)): Promise<unknown> {
    if (!Object.hasOwn(this.table, method)) throw new UnknownMethodError(`Unknown admin method "${method}"`)
    checkAdmin(rights, method as keyof AdminHandlerTable)
    return await this.table[method as keyof AdminHandlerTable](raw, peer, rights)
  }

  stats (): BrokerStats {
    return this.targets.stats()
  }
}

/** Throws PermissionDeniedError when `rights` lack the admin level `method` needs. */
export function checkAdmin (rights: Rights, method: AdminMethod): void {
  const level = ADMIN_LEVELS[method]
  if (level != null && !rights.mayAdmin(level)) {
    throw new PermissionDeniedError(`${rights.peer} may not call ${method}: it needs admin ${level} in the broker's ACL`)
  }
}

/** A request's fields, each still to be checked (they came as JSON): none for a body that is not an object. */
function fields (raw: unknown): Record<string, unknown> {
  return raw != null && typeof raw === 'object' ? raw as Record<string, unknown> : {}
}

/** Checks a `schedule` request: `{ id?, command, every? | cron?, headers?, kind, data }` (data: base64 of the payload bytes). */
function scheduleSpec (raw: unknown): ScheduleSpec {
  const p = (raw ?? {}) as Record<string, unknown>
  if (typeof p.command !== 'string') throw new InvalidArgumentError('schedule needs a command')
  if (p.id != null && (typeof p.id !== 'string' || p.id === '')) throw new InvalidArgumentError('id must be a non-empty string')
  if (p.every != null && typeof p.every !== 'number') throw new InvalidArgumentError('every must be a number of ms')
  if (p.cron != null && typeof p.cron !== 'string') throw new InvalidArgumentError('cron must be a string')
  if (!(Number.isInteger(p.kind) && (p.kind as number) >= 0 && (p.kind as number) <= 3) || typeof p.data !== 'string') throw new InvalidArgumentError('schedule needs the payload: kind (0-3) and data (base64)')
  const headers = p.headers as Record<string, string> | undefined
  if (headers != null && (typeof headers !== 'object' || Array.isArray(headers) || Object.values(headers).some((v) => typeof v !== 'string'))) throw new InvalidArgumentError('headers must map strings to strings')
  return { id: p.id as string | undefined, command: p.command, every: p.every as number | undefined, cron: p.cron as string | undefined, headers, kind: p.kind as number, payload: new Uint8Array(Buffer.from(p.data, 'base64')) }
}

/** Messages a `messages` request with bodies lists at most: each takes up to ~5.5 KiB of JSON. */
const MAX_BODIES_LIMIT = 1_000

/** Checks a `messages` request's parameters. */
function messageQuery (raw: unknown): MessageQuery {
  const p = (raw ?? {}) as Record<string, unknown>
  if (typeof p !== 'object') throw new InvalidArgumentError('messages takes an object')
  if (p.state != null && !MESSAGE_STATES.includes(p.state as MessageStateName)) throw new InvalidArgumentError(`state must be one of ${MESSAGE_STATES.join(', ')}`)
  if (p.command != null && typeof p.command !== 'string') throw new InvalidArgumentError('command must be a string')
  if (p.limit != null && !(Number.isInteger(p.limit) && (p.limit as number) > 0)) throw new InvalidArgumentError('limit must be a positive integer')
  if (p.offset != null && !(Number.isInteger(p.offset) && (p.offset as number) >= 0 && (p.offset as number) <= MAX_MESSAGES_OFFSET)) throw new InvalidArgumentError(`offset must be an integer from 0 to ${MAX_MESSAGES_OFFSET}`)
  if (p.bodies != null && typeof p.bodies !== 'boolean') throw new InvalidArgumentError('bodies must be true or false')
  if (p.bodies === true && ((p.limit as number | undefined) ?? 0) > MAX_BODIES_LIMIT) throw new InvalidArgumentError(`with bodies, limit is at most ${MAX_BODIES_LIMIT}`)
  return { state: p.state as MessageStateName | undefined, command: p.command as string | undefined, limit: p.limit as number | undefined, offset: p.offset as number | undefined, bodies: p.bodies as boolean | undefined }
}
