/**
 * An admin client: asks the broker about its queues and messages over the admin protocol (what
 * `p2pmq stats` and `p2pmq messages` use). Requests wait for the stream to open.
 */
import { ADMIN_PROTOCOL } from '../constants.js'
import { AnswerTimeoutError, ClosedError, type PermissionDeniedError } from '../errors.js'
import { adminErrorOf } from '../protocol/error-codes.js'
import { type FramedChannel } from '../protocol/channel.js'
import { FrameType, readBrokerToAdminFrame, writeRequest, type BrokerToAdminFrame } from '../protocol/frames.js'
import { ClientBase, type ClientOptions } from './client-base.js'
import { encodePayload } from '../payload.js'
import { toString } from 'uint8arrays/to-string'
import type { AclInfo, AdminMethod, AdminParams, AdminResult, BrokerStats, DeleteOptions, Grant, MessageInfo, MessageQuery, PeerRights, ScheduleInfo, ScheduleOptions } from '../broker/api.js'

interface Pending {
  method: string
  body: Uint8Array
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  timer?: ReturnType<typeof setTimeout>
  /** A standing request (`watch`): every response goes here, and it stays. */
  each?: (value: unknown) => void
}

export class Admin extends ClientBase<BrokerToAdminFrame> {
  private readonly pending = new Map<number, Pending>()
  private nextReqId = 0

  constructor (options: ClientOptions) {
    super(options, ADMIN_PROTOCOL)
  }

  async stats (timeout?: number): Promise<BrokerStats> {
    return await this.request('stats', undefined, timeout)
  }

  async messages (query: MessageQuery = {}, timeout?: number): Promise<MessageInfo[]> {
    return await this.request('messages', query, timeout)
  }

  /**
   * Registers `payload` to be published to `command` every `every` ms or on a `cron` expression
   * (five fields, or six with seconds), stored by the broker; the same `id` replaces a schedule.
   */
  async schedule (command: string, payload: unknown, options: ScheduleOptions, timeout?: number): Promise<ScheduleInfo> {
    const { kind, bytes } = encodePayload(payload)
    return await this.request('schedule', { ...options, command, kind, data: toString(bytes, 'base64') }, timeout)
  }

  async schedules (timeout?: number): Promise<ScheduleInfo[]> {
    return await this.request('schedules', undefined, timeout)
  }

  /** Removes a schedule; false when there was none with this id. */
  async unschedule (id: string, timeout?: number): Promise<boolean> {
    return (await this.request('unschedule', { id }, timeout)).removed
  }

  /**
   * Deletes `group`'s queue of `command` with all its messages; resolves with how many. Refused
   * with NotFoundError when there is none, ConflictError when it has consumers and `force` is not set.
   */
  async deleteQueue (command: string, group: string, options: DeleteOptions = {}, timeout?: number): Promise<number> {
    return (await this.request('delete-queue', { command, group, force: options.force }, timeout)).deleted
  }

  /**
   * Deletes a group: its bindings, queues and messages. Refused with NotFoundError when there is
   * none, ConflictError when it has subscriptions and `force` is not set (with it, they are ended).
   */
  async deleteGroup (group: string, options: DeleteOptions = {}, timeout?: number): Promise<AdminResult<'delete-group'>> {
    return await this.request('delete-group', { group, force: options.force }, timeout)
  }

  /** Removes the waiting (and delayed) messages of `command`, in one group or all; resolves with how many. */
  async purge (command: string, group?: string, timeout?: number): Promise<number> {
    return (await this.request('purge', { command, group }, timeout)).purged
  }

  /**
   * Republishes up to `limit` dead letters of `command` (or of every dead-letter queue) to the
   * command they failed in; resolves with how many.
   */
  async replayDeadLetters (command?: string, limit?: number, timeout?: number): Promise<number> {
    return (await this.request('replay-dead-letters', { command, limit }, timeout)).replayed
  }

  /** What this client's peer ID may do on the broker. */
  async whoami (timeout?: number): Promise<PeerRights> {
    return await this.request('whoami', undefined, timeout)
  }

  /** The broker's access control list (needs admin read). */
  async acl (timeout?: number): Promise<AclInfo> {
    return await this.request('acl', undefined, timeout)
  }

  /** Lets `peer` (a peer ID, or `*` for any peer) do what `grant` says (needs admin write); resolves with the ACL after. */
  async allow (peer: string, grant: Grant, timeout?: number): Promise<AclInfo> {
    return await this.request('acl-allow', { peer, ...grant }, timeout)
  }

  /** Withdraws `grant` from `peer`, or with no grant blocks the peer (needs admin write); resolves with the ACL after. */
  async deny (peer: string, grant?: Grant, timeout?: number): Promise<AclInfo> {
    return await this.request('acl-deny', { peer, ...grant }, timeout)
  }

  /**
   * Calls `onStats` with the broker's stats now and every `interval` ms (250 to 3,600,000), until
   * stopped; it is asked again after a reconnect. Returns a function that stops it. An admin
   * connection holds at most 4 watches at once.
   */
  watch (onStats: (stats: AdminResult<'watch'>) => void, interval = 1000): () => void {
    const reqId = ++this.nextReqId
    const params: AdminParams<'watch'> = { interval }
    const p: Pending = { method: 'watch', body: new TextEncoder().encode(JSON.stringify(params)), resolve: () => {}, reject: () => {}, each: (v) => { onStats(v as AdminResult<'watch'>) } }
    this.pending.set(reqId, p)
    if (this.channel?.isOpen === true) this.send(this.channel, reqId, p)
    return () => {
      if (!this.pending.delete(reqId)) return
      // (A broker older than `unwatch` refuses it and sends on until the stream closes; those are dropped.)
      this.request('unwatch', { reqId }).catch(() => {})
    }
  }

  /**
   * Calls an admin method; rejects with the broker's refusal (PermissionDeniedError, or an AdminError
   * subclass by its code: InvalidArgumentError, NotFoundError, ...), or AnswerTimeoutError after `timeout` ms. A method
   * of `AdminMethods` is typed; any other name is sent as it is (for a newer broker's methods).
   */
  async request<M extends AdminMethod> (method: M, params: AdminParams<M>, timeout?: number): Promise<AdminResult<M>>
  async request (method: string, params?: unknown, timeout?: number): Promise<unknown>
  async request (method: string, params?: unknown, timeout = 10_000): Promise<unknown> {
    if (this.stopped) throw new ClosedError('The admin client is stopped')
    const reqId = ++this.nextReqId
    const body = params === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(params))
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId)
        reject(new AnswerTimeoutError(`No answer from the broker to "${method}" within ${timeout} ms`))
      }, timeout)
      const p: Pending = { method, body, resolve, reject, timer }
      this.pending.set(reqId, p)
      if (this.channel?.isOpen === true) this.send(this.channel, reqId, p)
    })
  }

  async stop (): Promise<void> {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(new ClosedError('The admin client was stopped'))
    }
    this.pending.clear()
    await super.stop()
  }

  protected readFrame = readBrokerToAdminFrame

  protected onOpen (channel: FramedChannel<BrokerToAdminFrame>): void {
    // Requests sent on a stream that closed are sent again: they only read.
    for (const [reqId, p] of this.pending) this.send(channel, reqId, p)
  }

  protected onDisconnect (): void {}

  /** Refused at connection time: a request waiting to be sent fails now, not at its timeout (a watch waits on). */
  protected onRefused (err: PermissionDeniedError): void {
    for (const [reqId, p] of this.pending) {
      if (p.each != null) continue
      this.pending.delete(reqId)
      clearTimeout(p.timer)
      p.reject(err)
    }
  }

  protected onFrame (f: BrokerToAdminFrame): void {
    if (f.type !== FrameType.Response) return
    const p = this.pending.get(f.reqId)
    if (p == null) return
    const value = JSON.parse(new TextDecoder().decode(f.body)) as unknown
    if (p.each != null) {
      if (f.ok) p.each(value)
      return
    }
    this.pending.delete(f.reqId)
    clearTimeout(p.timer)
    if (f.ok) p.resolve(value)
    else {
      const refusal = (value ?? {}) as { error?: unknown, code?: unknown }
      p.reject(adminErrorOf(refusal.code, `The broker refused "${p.method}": ${typeof refusal.error === 'string' ? refusal.error : 'no reason given'}`))
    }
  }

  private send (channel: FramedChannel<BrokerToAdminFrame>, reqId: number, p: Pending): void {
    writeRequest(channel.writer, reqId, p.method, p.body)
  }
}
