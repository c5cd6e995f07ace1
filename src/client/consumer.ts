/**
 * A consumer: subscribes to commands and processes the messages the broker delivers.
 *
 * A handler's return value is the answer (relayed to the producer); a throw is a nack that the
 * broker retries on another attempt, and a throw of `RejectMessage` fails the message at once.
 * A handler that runs past `timeout` is nacked so a hung handler cannot hold its credit forever.
 * After a reconnect every subscription is made again; a delivery from the old connection is
 * never settled on the new one (the broker has already given it to another consumer).
 */
import { CONSUMER_PROTOCOL, DEFAULT_COMMAND, DEFAULT_GROUP, DEFAULT_PREFETCH, DEFAULT_VISIBILITY_TIMEOUT } from '../constants.js'
import { ClosedError, ErrorCode, FrameError, PermissionDeniedError, RejectMessage, SubscriptionError } from '../errors.js'
import { decodePayload, encodePayload, type Payload } from '../payload.js'
import { type FramedChannel } from '../protocol/channel.js'
import {
  FrameType, NackFlags, PublishFlags, readBrokerToConsumerFrame, writeAck, writeAnswer, writeNack,
  SubscribeFlags, writeSubscribe, writeUnsubscribe, type BrokerToConsumerFrame, type Deliver
} from '../protocol/frames.js'
import { ClientBase, type ClientOptions, type ReadyOptions } from './client-base.js'
import type { SubscriptionTerms } from '../subscription.js'
import { TypedEventEmitter } from '@libp2p/interface'

/** How long close() waits for running handlers by default: under the 10 s `docker stop` gives before SIGKILL. */
export const DEFAULT_CLOSE_GRACE = 5_000

/** A message as a handler gets it. */
export interface Message {
  id: string
  command: string
  payload: Payload
  headers: Record<string, string>
  /** 1 on the first delivery, higher when earlier attempts failed. */
  attempt: number
  /** The producer's peer ID, authenticated by its connection to the broker. */
  producer: string
  /** When the broker took the message (ms since the epoch). */
  timestamp: number
}

/** Returns the answer; throws to nack. */
export type Handler = (message: Message) => unknown

export interface SubscribeOptions {
  /**
   * Consumers in the same group share the messages; each group gets its own copy.
   * @default 'default'
   */
  group?: string
  /**
   * Deliveries this subscription holds unsettled at most.
   * @default 1000
   */
  prefetch?: number
  /**
   * ms a handler may run before its message is nacked for another attempt.
   * @default 30000
   */
  timeout?: number
  /**
   * Single-active consumer: the group's queues give one message at a time, in order, to one
   * consumer; the next subscriber takes over when it leaves (serialized work).
   * @default false
   */
  singleActive?: boolean
  /**
   * ms the group may stay idle (no subscriptions, no admin use) before the broker deletes it with
   * its queues and bindings (RabbitMQ's x-expires). Stored with the group; the latest subscription
   * that gives one sets it.
   * @default undefined (the group is kept, or keeps the expiry an earlier subscription set)
   */
  expires?: number
}

export interface CloseOptions {
  /**
   * ms to wait for the running handlers to settle their messages before stopping.
   * @default 5000
   */
  grace?: number
}

export interface ConsumerEvents {
  connected: CustomEvent<void>
  disconnected: CustomEvent<void>
  /** A handler threw or timed out; the message was nacked. */
  'handler:error': CustomEvent<{ message: Message, error: Error }>
  /**
   * The broker ended a subscription it had accepted (its group was deleted), or refused it again
   * after a reconnect (e.g. its broker now holds too many groups). It is gone from this consumer.
   */
  'subscription:ended': CustomEvent<{ subId: number, group: string, patterns: string[], error: SubscriptionError | PermissionDeniedError }>
}

/** The consumer's record of one of its subscriptions. */
interface SubscriptionState extends SubscriptionTerms {
  readonly patterns: string[]
  readonly timeout: number
  readonly expires: number
  readonly handler: Handler
  /** The broker accepted it once (a refusal after that ends it instead of failing `subscribe`). */
  accepted: boolean
  /**
   * Sent and not yet answered by the broker on the current stream. Resolves when it is answered
   * (or, once accepted, when the stream ends: it is sent again on the next); rejects when the
   * broker refuses it before accepting it, which fails `subscribe()`.
   */
  unanswered?: PromiseWithResolvers<void>
}

/** A subscription the broker accepted, as `subscribe()` gives it. */
export class Subscription implements SubscriptionTerms {
  readonly subId: number
  readonly group: string
  readonly patterns: readonly string[]
  readonly prefetch: number
  readonly singleActive: boolean

  constructor (private readonly consumer: Consumer, terms: SubscriptionTerms) {
    this.subId = terms.subId
    this.group = terms.group
    this.patterns = [...terms.patterns]
    this.prefetch = terms.prefetch
    this.singleActive = terms.singleActive
  }

  async unsubscribe (): Promise<void> {
    this.consumer.unsubscribe(this.subId)
  }
}

export class Consumer extends ClientBase<BrokerToConsumerFrame> {
  readonly events = new TypedEventEmitter<ConsumerEvents>()
  private readonly subs = new Map<number, SubscriptionState>()
  /** Producer peer IDs by the refs the broker gave them on the current stream. */
  private readonly producers = new Map<number, string>()
  private nextSubId = 0
  /** Messages being handled now. */
  active = 0
  processed = 0
  /** The broker's largest payload (its Welcome): a larger answer would end the stream, so it fails the message instead. */
  private maxPayload = Infinity
  /** Set by close(): deliveries that arrive now are not handled (the stream's end gives them back). */
  private closing = false
  /** Resolves close()'s wait once the last running handler settled. */
  private idle?: () => void

  constructor (options: ClientOptions) {
    super(options, CONSUMER_PROTOCOL)
  }

  /**
   * Subscribes `handler` to one or more commands (exact names or patterns like `users.*`,
   * `users.#`). Resolves once the broker has accepted the subscription; rejects if it refuses.
   */
  async subscribe (commands: string | string[] = DEFAULT_COMMAND, handler: Handler, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.stopped) throw new ClosedError('The consumer is stopped')
    const patterns = Array.isArray(commands) ? commands : [commands]
    if (options.expires != null && !(Number.isInteger(options.expires) && options.expires > 0 && options.expires <= 0xffffffff)) throw new RangeError('expires must be a positive number of ms')
    const sub: SubscriptionState = {
      subId: ++this.nextSubId,
      patterns,
      group: options.group ?? DEFAULT_GROUP,
      prefetch: options.prefetch ?? DEFAULT_PREFETCH,
      timeout: options.timeout ?? DEFAULT_VISIBILITY_TIMEOUT,
      singleActive: options.singleActive ?? false,
      expires: options.expires ?? 0,
      handler,
      accepted: false,
      // Made now, not when sent: an unaccepted subscription is waited for across reconnects.
      unanswered: Promise.withResolvers<void>()
    }
    const accepted = sub.unanswered?.promise
    this.subs.set(sub.subId, sub)
    if (this.channel?.isOpen === true) this.sendSubscribe(this.channel, sub)
    try {
      await accepted
    } catch (err) {
      this.subs.delete(sub.subId)
      throw err
    }
    return new Subscription(this, sub)
  }

  unsubscribe (subId: number): void {
    this.subs.get(subId)?.unanswered?.resolve()
    if (!this.subs.delete(subId)) return
    if (this.channel?.isOpen === true) writeUnsubscribe(this.channel.writer, subId)
  }

  /** As the other clients', and every subscription made so far answered by the broker on this stream. */
  async ready (options: ReadyOptions = {}): Promise<void> {
    for (;;) {
      await super.ready(options)
      const unanswered = [...this.subs.values()].flatMap((s) => s.unanswered != null ? [s.unanswered.promise.catch(() => {})] : [])
      if (unanswered.length === 0) return
      // Answered (accepted or refused), or the stream closed (then wait for the next one).
      await Promise.all(unanswered)
      options.signal?.throwIfAborted()
    }
  }

  /**
   * Stops gracefully (BullMQ's `worker.close()`): handles no new deliveries, waits up to `grace` ms
   * for the handlers running now to settle their messages, then stops. What is unsettled then (a
   * handler still running, a delivery not started) goes back to the broker with the stream, which
   * puts it at the head of its queue for another consumer at once.
   */
  async close (options: CloseOptions = {}): Promise<void> {
    if (this.stopped) return
    this.closing = true
    const grace = options.grace ?? DEFAULT_CLOSE_GRACE
    if (this.active > 0 && grace > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await new Promise<void>((resolve) => {
        this.idle = resolve
        timer = setTimeout(resolve, grace)
      })
      clearTimeout(timer)
    }
    await this.stop()
  }

  async stop (): Promise<void> {
    this.closing = true
    this.answerAll()
    for (const sub of this.subs.values()) sub.unanswered?.reject(new ClosedError('The consumer was stopped'))
    this.subs.clear()
    await super.stop()
  }

  protected readFrame = readBrokerToConsumerFrame

  protected onOpen (channel: FramedChannel<BrokerToConsumerFrame>): void {
    this.producers.clear()
    for (const sub of this.subs.values()) this.sendSubscribe(channel, sub)
    this.events.safeDispatchEvent('connected')
  }

  protected onDisconnect (): void {
    this.answerAll()
    this.events.safeDispatchEvent('disconnected')
  }

  protected onFrame (f: BrokerToConsumerFrame): void {
    switch (f.type) {
      case FrameType.Deliver: {
        const producer = this.producers.get(f.producer)
        if (producer == null) throw new FrameError(`Deliver names producer ref ${f.producer}, which the broker has not given`)
        this.handle(f, producer, this.channel as FramedChannel<BrokerToConsumerFrame>)
        break
      }
      case FrameType.ProducerRef: this.producers.set(f.ref, f.peer); break
      case FrameType.Subscribed: {
        const sub = this.subs.get(f.subId)
        if (sub == null) return
        const answer = sub.unanswered
        sub.unanswered = undefined
        if (f.error === '') {
          sub.accepted = true
          answer?.resolve()
        } else if (!sub.accepted) {
          answer?.reject(subscriptionError(`The broker refused the subscription: ${f.error}`, f.code))
        } else {
          answer?.resolve()
          this.subs.delete(f.subId)
          const error = subscriptionError(`The broker ended the subscription: ${f.error}`, f.code)
          this.events.safeDispatchEvent('subscription:ended', { detail: { subId: sub.subId, group: sub.group, patterns: sub.patterns, error } })
        }
        break
      }
      case FrameType.Welcome: this.maxPayload = f.maxPayload; break
    }
  }

  /** The stream ended: what was accepted is sent again on the next; what was not is still awaited. */
  private answerAll (): void {
    for (const sub of this.subs.values()) {
      if (!sub.accepted) continue
      sub.unanswered?.resolve()
      sub.unanswered = undefined
    }
  }

  private sendSubscribe (channel: FramedChannel<BrokerToConsumerFrame>, sub: SubscriptionState): void {
    sub.unanswered ??= Promise.withResolvers<void>()
    writeSubscribe(channel.writer, sub.subId, sub.prefetch, (sub.singleActive ? SubscribeFlags.SingleActive : 0) | SubscribeFlags.ErrorCodes, sub.group, sub.patterns, sub.expires)
  }

  /** Runs the handler; a synchronous one is settled at once, without a promise. */
  private handle (f: Deliver, producer: string, channel: FramedChannel<BrokerToConsumerFrame>): void {
    if (this.closing) return
    const sub = this.subs.get(f.subId)
    if (sub == null) {
      // Unsubscribed while this was on its way: give it back at once.
      writeNack(channel.writer, f.tag, NackFlags.Requeue, 'unsubscribed')
      return
    }
    let message: Message | undefined
    let result: unknown
    try {
      message = {
        id: f.id,
        command: f.command,
        payload: decodePayload(f.kind, f.payload),
        headers: f.headers ?? {},
        attempt: f.attempt,
        producer,
        timestamp: f.timestamp
      }
      result = sub.handler(message)
    } catch (err) {
      this.failed(f, channel, message, err)
      return
    }
    if (result instanceof Promise) {
      void this.settleLater(f, channel, message, result, sub.timeout)
    } else {
      this.settle(f, channel, message, result)
    }
  }

  private async settleLater (f: Deliver, channel: FramedChannel<BrokerToConsumerFrame>, message: Message, result: Promise<unknown>, timeout: number): Promise<void> {
    this.active++
    let answer: unknown
    try {
      answer = await withTimeout(result, timeout)
    } catch (err) {
      this.failed(f, channel, message, err)
      return
    } finally {
      this.active--
      if (this.active === 0) this.idle?.()
    }
    this.settle(f, channel, message, answer)
  }

  /** Acks the delivery, or answers it when the producer wants the answer. */
  private settle (f: Deliver, channel: FramedChannel<BrokerToConsumerFrame>, message: Message, answer: unknown): void {
    if (!channel.isOpen) return
    if ((f.flags & PublishFlags.WantsAnswer) !== 0) {
      let encoded: { kind: number, bytes: Uint8Array }
      try {
        encoded = encodePayload(answer)
      } catch (err) {
        this.failed(f, channel, message, err)
        return
      }
      if (encoded.bytes.byteLength > this.maxPayload) {
        // The broker would drop the connection (and every message on it) for the frame, and the
        // same answer would come again on every attempt: reject it, with the reason.
        this.failed(f, channel, message, new RejectMessage(`The answer of ${encoded.bytes.byteLength} bytes exceeds the broker's limit of ${this.maxPayload}`))
        return
      }
      writeAnswer(channel.writer, f.tag, encoded.kind, encoded.bytes)
    } else {
      writeAck(channel.writer, f.tag)
    }
    this.processed++
  }

  /** The handler threw, timed out or gave an answer that cannot be sent: nack, and tell listeners. */
  private failed (f: Deliver, channel: FramedChannel<BrokerToConsumerFrame>, message: Message | undefined, err: unknown): void {
    if (this.stopped) return // given back with the stream; a handler stopped with the consumer is no news
    const error = err instanceof Error ? err : new Error(String(err))
    if (message != null) this.events.safeDispatchEvent('handler:error', { detail: { message, error } })
    if (channel.isOpen) writeNack(channel.writer, f.tag, error instanceof RejectMessage ? 0 : NackFlags.Requeue, error.message)
  }
}

class HandlerTimeoutError extends Error {
  name = 'HandlerTimeoutError'
}

async function withTimeout<T> (value: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      value,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new HandlerTimeoutError(`The handler did not finish within ${ms} ms`)) }, ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** The typed error of a refused or ended subscription: PermissionDeniedError for the ACL's refusals. */
function subscriptionError (message: string, code: ErrorCode | undefined): SubscriptionError | PermissionDeniedError {
  return code === ErrorCode.PermissionDenied ? new PermissionDeniedError(message) : new SubscriptionError(message, { code })
}
