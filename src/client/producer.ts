/**
 * A producer: publishes messages that name a command, and gets each one's answer back.
 *
 * - `publish()` resolves once the broker has taken the message (a publisher confirm).
 * - `send()` resolves with the consumer's answer, or rejects with AnswerTimeoutError or
 *   MessageFailedError.
 * - At most `window` messages are out at once (unconfirmed publishes plus unanswered sends); more
 *   calls wait for a slot, so nothing grows without bound.
 * - After a reconnect, every unconfirmed publish and unanswered send is sent again with the same
 *   id and seq; the broker drops the duplicates of what it already took.
 */
import { DEFAULT_COMMAND, DEFAULT_PRODUCER_WINDOW, DEFAULT_SEND_TIMEOUT, MAX_PRODUCER_WINDOW, PRODUCER_PROTOCOL } from '../constants.js'
import { ClosedError, InvalidMessageError, MessageFailedError, MessageTooLargeError, PermissionDeniedError, RejectedError, AnswerTimeoutError } from '../errors.js'
import { decodePayload, encodePayload, type Payload } from '../payload.js'
import { type FramedChannel } from '../protocol/channel.js'
import { FrameType, PublishFlags, RejectCode, ResultStatus, readBrokerToProducerFrame, writeHello, writePublish, type BrokerToProducerFrame, type MessageFields, type MessageResult, type Result } from '../protocol/frames.js'
import { Deque } from '../deque.js'
import { ClientBase, type ClientOptions } from './client-base.js'
import { TypedEventEmitter } from '@libp2p/interface'
import { Admin } from './admin.js'
import type { ScheduleInfo, ScheduleOptions } from '../broker/api.js'

export interface ProducerOptions extends ClientOptions {
  /**
   * Messages out at once (unconfirmed or unanswered), 1 to 65536.
   * @default 2000
   */
  window?: number
  /**
   * ms `send` and `request` wait for an answer unless told otherwise.
   * @default 30000
   */
  timeout?: number
}

export interface PublishOptions {
  /**
   * String headers the consumer gets with the message.
   * @default undefined (none: the handler sees `{}`)
   */
  headers?: Record<string, string>
  /**
   * The message id. A given id is deduplicated: the broker drops a message whose id it saw for
   * the same command within its dedup window (5 minutes by default), from any producer.
   * @default undefined (a unique id is made, not deduplicated)
   */
  id?: string
  /**
   * ms to wait before the message may be delivered (a delayed message).
   * @default 0 (at once)
   */
  delay?: number
  /**
   * Deliver no sooner than this time (ms since the epoch, or a Date); wins over `delay`.
   * @default undefined (at once, or after `delay`)
   */
  at?: number | Date
  /**
   * ms after which the message must not be delivered: it fails as "expired" instead.
   * @default 0 (no limit)
   */
  ttl?: number
  /**
   * Kept by the broker in memory only, even when it has a store (AMQP's delivery mode 1): no disk
   * write, no sync before the confirm or the answer, and lost if the broker stops. Otherwise as
   * any message (acked, retried, dead-lettered). A send's default: a producer holds its sends
   * until they are answered and sends them again to a broker that restarted, so what a store
   * would add is kept only while the producer waits, and the producer does that.
   * @default false for `publish`; true for `send` and `request`
   */
  transient?: boolean
}

export interface SendOptions extends PublishOptions {
  /**
   * ms to wait for the answer.
   * @default the producer's `timeout` (30000)
   */
  timeout?: number
}

/** A consumer's answer to a `send` (or `request`). */
export interface AnsweredResult extends MessageResult {
  payload: Payload
}

/** A message that will not be attempted again: published ones too (their promise resolved at the confirm). */
export interface FailedResult extends MessageResult {
  /** Why it failed: the consumer's error, or the broker's reason (expired, too many attempts). */
  error: string
}

export interface ProducerEvents {
  /** An answer to a message this producer object did not send: one kept for this identity while it was away. */
  result: CustomEvent<AnsweredResult>
  /** A message this producer is not waiting on failed: a publish, or one sent before a restart. */
  failed: CustomEvent<FailedResult>
  connected: CustomEvent<void>
  disconnected: CustomEvent<void>
}

interface Outgoing extends MessageFields {
  seq: number
  flags: number
  /** When it may be delivered (0: at once), and how long it may wait (0: no limit). */
  dueAt: number
  ttl: number
  done: boolean
  deadline: number
  resolve: (value: any) => void
  reject: (err: Error) => void
}

export class Producer extends ClientBase<BrokerToProducerFrame> {
  readonly events = new TypedEventEmitter<ProducerEvents>()
  private readonly window: number
  private readonly timeout: number
  /** Unique to this object: the session named in Hello, and the prefix of the ids it makes. */
  private readonly idPrefix = `${randomId()}-`
  private nextId = 0
  private nextSeq = 0
  /** Publishes not yet confirmed, by seq, in seq order. */
  private readonly publishes = new Map<number, Outgoing>()
  /**
   * Sends not yet answered, by seq. The broker confirms a send only by its result, so after a
   * reconnect these are resent with the unconfirmed publishes (a broker that still has them drops
   * the copies; one that restarted takes them again).
   */
  private readonly sends = new Map<number, Outgoing>()
  /** The same sends, by message id, for their results. */
  private readonly awaiting = new Map<string, Outgoing>()
  /** Timeouts, one list per distinct timeout value, so each list is in deadline order. */
  private readonly deadlines = new Map<number, Deque<Outgoing>>()
  private readonly waiters = new Deque<() => void>()
  private inUse = 0
  private sweepTimer?: ReturnType<typeof setInterval>
  maxPayload = Infinity
  /** Answers that arrived after their send had timed out: dropped. */
  lateResults = 0

  /** For the admin stream that schedules use, opened on first use on the same node. */
  private readonly brokerOptions: ClientOptions
  private admin?: Admin

  constructor (options: ProducerOptions) {
    super(options, PRODUCER_PROTOCOL)
    this.brokerOptions = { broker: options.broker, node: options.node, lookup: options.lookup, onRetry: options.onRetry }
    const window = options.window ?? DEFAULT_PRODUCER_WINDOW
    if (!(window >= 1 && window <= MAX_PRODUCER_WINDOW)) throw new RangeError(`window must be 1 to ${MAX_PRODUCER_WINDOW}`)
    this.window = window
    this.timeout = options.timeout ?? DEFAULT_SEND_TIMEOUT
  }

  /** Publishes a message; resolves with its id once the broker has taken it. */
  publish (command: string = DEFAULT_COMMAND, payload?: unknown, options: PublishOptions = {}): Promise<string> {
    return this.enqueue(command, payload, options, options.transient === true ? PublishFlags.Transient : 0, Infinity)
  }

  /** Sends a message and resolves with the answer's payload. */
  async send (command: string = DEFAULT_COMMAND, payload?: unknown, options: SendOptions = {}): Promise<Payload> {
    return (await this.request(command, payload, options)).payload
  }

  /** Sends a message and resolves with its whole result: payload, answering consumer, attempts. */
  async request (command: string = DEFAULT_COMMAND, payload?: unknown, options: SendOptions = {}): Promise<AnsweredResult> {
    const flags = PublishFlags.WantsAnswer | (options.transient !== false ? PublishFlags.Transient : 0)
    return await this.enqueue(command, payload, options, flags, options.timeout ?? this.timeout)
  }

  /**
   * Registers a message the broker publishes for this producer every `every` ms or on a `cron`
   * expression, kept in its store until removed; the same `id` replaces a schedule.
   */
  async schedule (command: string, payload: unknown, options: ScheduleOptions): Promise<ScheduleInfo> {
    return await this.adminClient().schedule(command, payload, options)
  }

  /** The broker's schedules (all of them, from any producer). */
  async schedules (): Promise<ScheduleInfo[]> {
    return await this.adminClient().schedules()
  }

  async unschedule (id: string): Promise<boolean> {
    return await this.adminClient().unschedule(id)
  }

  private adminClient (): Admin {
    if (this.stopped) throw new ClosedError('The producer is stopped')
    this.admin ??= new Admin(this.brokerOptions)
    return this.admin
  }

  /** A new unique message id, as `publish` and `send` make by default; pass it as `options.id`. */
  newId (): string {
    return this.idPrefix + (this.nextId++).toString(36)
  }

  /** Messages out now: unconfirmed or unanswered. */
  get pending (): number {
    return this.inUse
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    const err = new ClosedError('The producer was stopped')
    for (const o of [...this.publishes.values(), ...this.sends.values()]) this.settle(o, err)
    for (let w = this.waiters.shift(); w != null; w = this.waiters.shift()) w()
    await this.admin?.stop()
    await super.stop()
  }

  // Not async, and no await on the fast path: a publish costs one promise, not three.
  private enqueue (command: string, payload: unknown, options: PublishOptions, flags: number, timeout: number): Promise<any> {
    if (this.stopped) return Promise.reject(new ClosedError('The producer is stopped'))
    let encoded: { kind: number, bytes: Uint8Array }
    try {
      encoded = encodePayload(payload)
    } catch (err) {
      return Promise.reject(err)
    }
    if (encoded.bytes.byteLength > this.maxPayload) {
      return Promise.reject(new MessageTooLargeError(`Payload of ${encoded.bytes.byteLength} bytes exceeds the broker's limit of ${this.maxPayload}`))
    }
    if (this.inUse < this.window && this.waiters.length === 0) return this.start(command, encoded, options, flags, timeout)
    return new Promise<void>((resolve) => { this.waiters.push(resolve) }).then(async () => {
      if (this.stopped) throw new ClosedError('The producer is stopped')
      return await this.start(command, encoded, options, flags, timeout)
    })
  }

  /** Takes a window slot and writes the Publish frame (now, or when the stream opens). */
  private start (command: string, encoded: { kind: number, bytes: Uint8Array }, options: PublishOptions, flags: number, timeout: number): Promise<any> {
    this.inUse++
    const at = options.at instanceof Date ? options.at.getTime() : options.at
    const dueAt = at ?? (options.delay != null && options.delay > 0 ? Date.now() + options.delay : 0)
    const ttl = options.ttl ?? 0
    if (dueAt > 0) flags |= PublishFlags.Delayed
    if (ttl > 0) flags |= PublishFlags.Expires
    // Ids from newId() are unique by construction: only the caller's own are worth remembering.
    if (options.id != null && !options.id.startsWith(this.idPrefix)) flags |= PublishFlags.Dedup
    return new Promise((resolve, reject) => {
      const o: Outgoing = {
        seq: this.nextSeq = (this.nextSeq + 1) >>> 0,
        flags,
        dueAt,
        ttl,
        command,
        id: options.id ?? this.newId(),
        headers: options.headers,
        kind: encoded.kind,
        payload: encoded.bytes,
        done: false,
        deadline: Date.now() + timeout,
        resolve,
        reject
      }
      if ((flags & PublishFlags.WantsAnswer) !== 0) {
        this.sends.set(o.seq, o)
        this.awaiting.set(o.id, o)
        this.watchDeadline(o, timeout)
      } else {
        this.publishes.set(o.seq, o)
      }
      if (this.channel?.isOpen === true) this.write(this.channel, o)
    })
  }

  protected readFrame = readBrokerToProducerFrame

  protected onOpen (channel: FramedChannel<BrokerToProducerFrame>): void {
    writeHello(channel.writer, this.idPrefix)
    // In seq order: the broker takes a seq it has not seen and drops the rest as duplicates.
    const out = [...this.publishes.values(), ...this.sends.values()].sort((a, b) => a.seq - b.seq)
    for (const o of out) this.write(channel, o)
    this.events.safeDispatchEvent('connected')
  }

  /** The delay is what is left of it now, so a resend is not delayed twice. */
  private write (channel: FramedChannel<BrokerToProducerFrame>, o: Outgoing): void {
    const delay = o.dueAt > 0 ? Math.min(0xffffffff, Math.max(0, Math.ceil(o.dueAt - Date.now()))) : 0
    writePublish(channel.writer, o.seq, o.flags, o, delay, Math.min(o.ttl, 0xffffffff))
  }

  protected onDisconnect (): void {
    this.events.safeDispatchEvent('disconnected')
  }

  protected onFrame (f: BrokerToProducerFrame): void {
    switch (f.type) {
      case FrameType.Confirm: {
        // Cumulative: every publish up to f.seq that was not rejected is taken.
        for (const [seq, o] of this.publishes) {
          if (seq > f.seq) break
          this.settle(o, undefined, o.id)
        }
        break
      }
      case FrameType.Reject: {
        const o = this.publishes.get(f.seq) ?? this.sends.get(f.seq)
        if (o == null) return
        this.settle(o, rejection(f.code, f.reason))
        break
      }
      case FrameType.Result: this.onResult(f); break
      case FrameType.Welcome: {
        this.maxPayload = f.maxPayload
        // A message sent before the broker said its limit (a first publish, or one sent again on a
        // new stream) and past it ends each stream it is sent on: sent again, it looped for ever.
        for (const o of [...this.publishes.values(), ...this.sends.values()]) {
          if (o.payload.byteLength > f.maxPayload) this.settle(o, new MessageTooLargeError(`Payload of ${o.payload.byteLength} bytes exceeds the broker's limit of ${f.maxPayload}`))
        }
        break
      }
    }
  }

  private onResult (f: Result): void {
    const o = this.awaiting.get(f.id)
    const failed = f.status === ResultStatus.Failed
    if (o == null) {
      if (failed) {
        this.events.safeDispatchEvent('failed', { detail: { id: f.id, error: new TextDecoder().decode(f.payload), consumer: f.consumer, attempts: f.attempts } })
      } else if (f.id.startsWith(this.idPrefix)) {
        this.lateResults++
      } else {
        this.events.safeDispatchEvent('result', { detail: { id: f.id, payload: decodePayload(f.kind, f.payload), consumer: f.consumer, attempts: f.attempts } })
      }
      return
    }
    if (failed) {
      this.settle(o, new MessageFailedError(new TextDecoder().decode(f.payload), f.consumer, f.attempts))
      return
    }
    let payload: Payload
    try {
      payload = decodePayload(f.kind, f.payload)
    } catch (err) {
      this.settle(o, err as Error)
      return
    }
    this.settle(o, undefined, { id: f.id, payload, consumer: f.consumer, attempts: f.attempts } satisfies AnsweredResult)
  }

  /** Ends one outgoing message: frees its slot and resolves or rejects its caller, once. */
  private settle (o: Outgoing, err?: Error, value?: unknown): void {
    if (o.done) return
    o.done = true
    if ((o.flags & PublishFlags.WantsAnswer) === 0) {
      this.publishes.delete(o.seq)
    } else {
      this.sends.delete(o.seq)
      if (this.awaiting.get(o.id) === o) this.awaiting.delete(o.id)
    }
    this.inUse--
    this.waiters.shift()?.()
    if (err != null) o.reject(err)
    else o.resolve(value)
  }

  private watchDeadline (o: Outgoing, timeout: number): void {
    let list = this.deadlines.get(timeout)
    if (list == null) {
      list = new Deque()
      this.deadlines.set(timeout, list)
    }
    list.push(o)
    if (this.sweepTimer == null) {
      this.sweepTimer = setInterval(() => { this.sweep() }, 50)
      this.sweepTimer.unref?.()
    }
  }

  private sweep (): void {
    const now = Date.now()
    for (const [timeout, list] of this.deadlines) {
      for (let o = list.peek(); o != null; o = list.peek()) {
        if (o.done) {
          list.shift()
          continue
        }
        if (o.deadline > now) break
        list.shift()
        this.settle(o, new AnswerTimeoutError(`No answer to ${o.command} message ${o.id} within ${timeout} ms`))
      }
      if (list.length === 0) this.deadlines.delete(timeout)
    }
    if (this.deadlines.size === 0) {
      clearInterval(this.sweepTimer)
      this.sweepTimer = undefined
    }
  }
}

function randomId (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('')
}

/** The typed error of a Reject frame's code. */
function rejection (code: RejectCode, reason: string): Error {
  switch (code) {
    case RejectCode.TooLarge: return new MessageTooLargeError(reason)
    case RejectCode.Invalid: return new InvalidMessageError(reason)
    case RejectCode.Forbidden: return new PermissionDeniedError(reason)
    default: return new RejectedError(reason)
  }
}
