/**
 * The broker's side of one client stream: a producer session (publishes in, confirms and results
 * out) or a consumer session (subscriptions and settles in, deliveries out). Sessions translate
 * frames to engine calls and engine events to frames; the queue logic stays in the engine.
 */
import { FramedChannel, MAX_UNSENT_BYTES } from '../protocol/channel.js'
import {
  FrameType, NackFlags, PublishFlags, RejectCode, SubscribeFlags,
  readAdminFrame, readConsumerFrame, readProducerFrame, writeConfirm, writeResponse, writeDeliver, writeProducerRef, writeReject, writeResult,
  writeSubscribed, writeWelcome,
  type AdminFrame, type ConsumerFrame, type ProducerFrame, type Publish
} from '../protocol/frames.js'
import { ProtocolError } from '../errors.js'
import { MAX_SUBSCRIPTIONS_PER_STREAM } from '../constants.js'
import type { Stream } from '@libp2p/interface'
import type { InFlight, QueueEngine } from './engine.js'
import type { KeptResult } from './mailbox.js'
import type { Subscription } from './queue.js'

export const BROKER_VERSION = '0.1.0'

/**
 * A producer session's highest seq taken. A producer resends its unconfirmed messages in seq
 * order on a new stream, so a Publish whose seq is not above this one is a resent duplicate.
 */
export interface ProducerSeq {
  readonly peer: string
  readonly session: string
  lastSeq: number
  /** The lastSeq the store has (so resends are dropped after a broker restart too). */
  storedSeq: number
  /** Producer streams of this session open now; the record is kept while any is. */
  streams: number
  /** When the last of them closed. */
  closedAt: number
}

/** What a session needs from the broker service. */
export interface SessionContext {
  readonly engine: QueueEngine<ConsumerSession>
  readonly maxPayload: number
  readonly maxFrameLength: number
  /** Why `command` is not a valid command name, or undefined (cached: called per publish). */
  commandError: (command: string) => string | undefined
  /** The record of a producer session's highest seq, shared by its streams over reconnects; counts the caller as one of them. */
  producerSession: (peer: string, session: string) => ProducerSeq
  /** The session holds confirms for congested queues; call its `unblock()` when one is relieved. */
  blocked: (session: ProducerSession) => void
  /** True when this producer-supplied id was seen for this command within the dedup window. */
  seenId: (command: string, id: string) => boolean
  /** Remembers a producer-supplied id of a message the broker took. */
  rememberId: (command: string, id: string) => void
  /** Writes `seq.lastSeq` to the store. */
  storeSeq: (seq: ProducerSeq) => void
  /** Calls `done` once everything the broker wrote so far is on disk, or with the error that kept it off. */
  whenDurable: (done: (err?: Error) => void) => void
  /** Why the store cannot write now (a full disk): publishes are refused meanwhile. */
  storeFailure: () => Error | undefined
  /** The broker's stats now (for `watch`). */
  stats: () => unknown
  /** Runs an admin request; throws with a message for the client on a bad one. */
  admin: (peer: string, method: string, params: unknown) => Promise<unknown>
  closed: (session: AnySession, err?: Error) => void
  protocolError: (session: AnySession, err: Error) => void
}

abstract class Session<In> {
  readonly channel: FramedChannel<In>

  constructor (readonly peer: string, stream: Stream, protected readonly ctx: SessionContext, read: (type: number, r: any) => In, pauseReadingAbove?: number) {
    this.channel = new FramedChannel<In>(stream, {
      maxFrameLength: ctx.maxFrameLength,
      pauseReadingAbove,
      read,
      onFrame: (frame) => { this.onFrame(frame) },
      onBatchEnd: () => { this.onBatchEnd() },
      onClose: (err) => {
        if (err != null && isProtocolFault(err)) ctx.protocolError(this as any, err)
        this.onClose()
        ctx.closed(this as any, err)
      }
    })
    writeWelcome(this.channel.writer, ctx.maxPayload, BROKER_VERSION)
  }

  get isOpen (): boolean {
    return this.channel.isOpen
  }

  close (reason?: Error): void {
    this.channel.close(reason)
  }

  protected abstract onFrame (frame: In): void
  protected onBatchEnd (): void {}
  protected abstract onClose (): void
}

/**
 * Confirms are cumulative ("every seq up to N that was not rejected is taken"), one per batch of
 * incoming frames, sent once the store has synced the batch. A send (wants an answer) is not
 * confirmed: its result confirms it. While a publish went to a congested queue the confirm is
 * held, so the producer's window fills and it waits (publisher flow control).
 */
export class ProducerSession extends Session<ProducerFrame> {
  readonly role = 'producer'
  private seq?: ProducerSeq
  /** Seqs up to these are taken, waited for on disk, on disk, and confirmed. */
  private takenUpTo = 0
  private syncingUpTo = 0
  /** Seqs of the publishes taken (new, not resent) since the last batch went to the store. */
  private newlyTaken: number[] = []
  private durableUpTo = 0
  private confirmedUpTo = 0
  /** Commands whose congested queues hold this session's confirms. */
  private readonly blockedOn = new Set<string>()

  constructor (peer: string, stream: Stream, ctx: SessionContext) {
    // Confirms, rejects and results answer publishes: a producer that does not read them is not read.
    super(peer, stream, ctx, readProducerFrame, MAX_UNSENT_BYTES + ctx.maxFrameLength)
  }

  protected onFrame (f: ProducerFrame): void {
    if (f.type === FrameType.Hello) {
      if (this.seq != null) throw new ProtocolError('A second Hello on one producer stream')
      this.seq = this.ctx.producerSession(this.peer, f.session)
      return
    }
    if (this.seq == null) throw new ProtocolError('Publish before Hello')
    this.publish(f, this.seq)
  }

  private publish (f: Publish, seq: ProducerSeq): void {
    const w = this.channel.writer
    const wantsAnswer = (f.flags & PublishFlags.WantsAnswer) !== 0
    if (f.seq <= seq.lastSeq) {
      // A resend of a message the broker already has: confirm it again, keep one copy.
      if (!wantsAnswer && f.seq > this.takenUpTo) this.takenUpTo = f.seq
      return
    }
    seq.lastSeq = f.seq
    const invalid = this.ctx.commandError(f.command)
    if (invalid != null) {
      writeReject(w, f.seq, RejectCode.Invalid, invalid)
      return
    }
    if (f.id.length === 0) {
      writeReject(w, f.seq, RejectCode.Invalid, 'A message needs an id')
      return
    }
    if (f.payload.byteLength > this.ctx.maxPayload) {
      writeReject(w, f.seq, RejectCode.TooLarge, `Payload of ${f.payload.byteLength} bytes exceeds the broker's limit of ${this.ctx.maxPayload}`)
      return
    }
    const dedup = (f.flags & PublishFlags.Dedup) !== 0
    if (dedup && this.ctx.seenId(f.command, f.id)) {
      // Taken already: confirmed again, not queued again.
      if (!wantsAnswer) this.takenUpTo = f.seq
      return
    }
    const failure = this.ctx.storeFailure()
    if (failure != null) {
      writeReject(w, f.seq, RejectCode.Unavailable, `The broker could not store the message: ${failure.message}`)
      return
    }
    const now = Date.now()
    const taken = this.ctx.engine.publish({
      command: f.command,
      id: f.id,
      headers: f.headers,
      kind: f.kind,
      payload: f.payload,
      producer: this.peer,
      origin: this,
      timestamp: now,
      wantsAnswer,
      attempts: 0,
      dueAt: f.delay > 0 ? now + f.delay : undefined,
      expiresAt: f.ttl > 0 ? now + f.ttl : undefined
    })
    if (!taken) {
      writeReject(w, f.seq, RejectCode.Full, 'The broker is full: too many messages are waiting')
      return
    }
    if (dedup) this.ctx.rememberId(f.command, f.id)
    if (wantsAnswer) return
    this.takenUpTo = f.seq
    this.newlyTaken.push(f.seq)
    if (this.ctx.engine.congested(f.command)) {
      if (this.blockedOn.size === 0) this.ctx.blocked(this)
      this.blockedOn.add(f.command)
    }
  }

  protected onBatchEnd (): void {
    if (this.seq != null && this.seq.lastSeq > this.seq.storedSeq) this.ctx.storeSeq(this.seq)
    if (this.takenUpTo <= this.syncingUpTo) return
    const upTo = this.syncingUpTo = this.takenUpTo
    const taken = this.newlyTaken
    this.newlyTaken = []
    this.ctx.whenDurable((err) => { this.durable(taken, upTo, err) })
  }

  /**
   * Seqs up to `upTo` are on disk, or the publishes `taken` among them could not be written: those
   * are rejected (a resend or a send in the range was stored before, and is not).
   */
  private durable (taken: number[], upTo: number, err?: Error): void {
    if (err != null && this.isOpen) {
      for (const seq of taken) {
        writeReject(this.channel.writer, seq, RejectCode.Unavailable, `The broker could not store the message: ${err.message}`)
      }
    }
    this.durableUpTo = upTo
    this.flushConfirm()
  }

  /** Forgets commands no longer congested; true (and the held confirm sent) once none is. */
  unblock (): boolean {
    for (const command of this.blockedOn) {
      if (!this.ctx.engine.congested(command)) this.blockedOn.delete(command)
    }
    if (this.blockedOn.size > 0) return false
    this.flushConfirm()
    return true
  }

  private flushConfirm (): void {
    if (this.durableUpTo <= this.confirmedUpTo || this.blockedOn.size > 0 || !this.isOpen) return
    writeConfirm(this.channel.writer, this.durableUpTo)
    this.confirmedUpTo = this.durableUpTo
  }

  sendResult (r: KeptResult): void {
    writeResult(this.channel.writer, r.id, r.consumer, r.status, r.attempts, r.kind, r.payload)
  }

  protected onClose (): void {
    if (this.seq == null) return
    this.seq.streams--
    this.seq.closedAt = Date.now()
  }
}

/** Refs a consumer stream gives producer peer IDs before they are reused from 1. */
const MAX_PRODUCER_REFS = 4096

export class ConsumerSession extends Session<ConsumerFrame> {
  readonly role = 'consumer'
  private readonly subs = new Map<number, Subscription<ConsumerSession>>()
  /** Producer peer IDs named on this stream: a Deliver carries a 4-byte ref, not a 52-byte ID. */
  private readonly producerRefs = new Map<string, number>()

  constructor (peer: string, stream: Stream, ctx: SessionContext) {
    super(peer, stream, ctx, readConsumerFrame)
  }

  get subscriptions (): Array<Subscription<ConsumerSession>> {
    return [...this.subs.values()]
  }

  deliver (d: InFlight<ConsumerSession>): void {
    const m = d.message
    const w = this.channel.writer
    let ref = this.producerRefs.get(m.producer)
    if (ref == null) {
      if (this.producerRefs.size >= MAX_PRODUCER_REFS) this.producerRefs.clear()
      ref = this.producerRefs.size + 1
      this.producerRefs.set(m.producer, ref)
      writeProducerRef(w, ref, m.producer)
    }
    writeDeliver(w, d.sub.subId, d.tag, m.attempts, m.wantsAnswer ? PublishFlags.WantsAnswer : 0, m.timestamp, ref, m)
  }

  protected onFrame (f: ConsumerFrame): void {
    const engine = this.ctx.engine
    switch (f.type) {
      case FrameType.Ack: if (!engine.ack(this, f.tag)) this.lateSettle(); break
      case FrameType.Answer: if (!engine.answer(this, f.tag, f.kind, f.payload)) this.lateSettle(); break
      case FrameType.Nack: if (!engine.nack(this, f.tag, (f.flags & NackFlags.Requeue) !== 0, f.error)) this.lateSettle(); break
      case FrameType.Subscribe: {
        if (this.subs.has(f.subId)) {
          writeSubscribed(this.channel.writer, f.subId, `Subscription ${f.subId} already exists`)
          return
        }
        if (this.subs.size >= MAX_SUBSCRIPTIONS_PER_STREAM) {
          writeSubscribed(this.channel.writer, f.subId, `A consumer stream holds at most ${MAX_SUBSCRIPTIONS_PER_STREAM} subscriptions`)
          return
        }
        // subscribe() may deliver at once, before the Subscribed frame: the client already knows
        // the subId, so it takes those deliveries.
        let error = ''
        try {
          this.subs.set(f.subId, engine.subscribe(this, f.subId, f.group, f.patterns, f.prefetch, (f.flags & SubscribeFlags.SingleActive) !== 0, f.expires > 0 ? f.expires : undefined))
        } catch (err) {
          error = (err as Error).message
        }
        writeSubscribed(this.channel.writer, f.subId, error)
        break
      }
      case FrameType.Unsubscribe: {
        const sub = this.subs.get(f.subId)
        if (sub == null) return
        this.subs.delete(f.subId)
        engine.unsubscribe(sub)
        break
      }
    }
  }

  /** A settle of a delivery that timed out: too late for it, but the consumer is alive. */
  private lateSettle (): void {
    for (const sub of this.subs.values()) this.ctx.engine.resume(sub)
  }

  /** The broker ended a subscription (its group was deleted): a Subscribed with the reason tells the client. */
  ended (sub: Subscription<ConsumerSession>, reason: string): void {
    if (this.subs.get(sub.subId) !== sub) return
    this.subs.delete(sub.subId)
    if (this.isOpen) writeSubscribed(this.channel.writer, sub.subId, reason)
  }

  protected onClose (): void {
    for (const sub of this.subs.values()) this.ctx.engine.unsubscribe(sub)
    this.subs.clear()
  }
}

function isProtocolFault (err: Error): boolean {
  return err.name === 'ProtocolError' || err.name === 'MessageTooLargeError'
}

/** Shortest interval of a `watch`. */
const MIN_WATCH_INTERVAL = 250

/**
 * An admin client's stream: requests in, one response each out (JSON bodies). `watch` is the one
 * standing request: the broker's stats as a response now and every `interval` ms after, with the
 * same reqId, until the stream closes (the live dashboard).
 */
export class AdminSession extends Session<AdminFrame> {
  readonly role = 'admin'
  private readonly watches: Array<ReturnType<typeof setInterval>> = []

  constructor (peer: string, stream: Stream, ctx: SessionContext) {
    super(peer, stream, ctx, readAdminFrame, MAX_UNSENT_BYTES + ctx.maxFrameLength)
  }

  protected onFrame (f: AdminFrame): void {
    const respond = (ok: boolean, value: unknown): void => {
      if (this.isOpen) writeResponse(this.channel.writer, f.reqId, ok, encoder.encode(JSON.stringify(value)))
    }
    let params: unknown
    try {
      params = f.body.byteLength === 0 ? undefined : JSON.parse(decoder.decode(f.body))
    } catch {
      respond(false, { error: 'The request body is not JSON' })
      return
    }
    if (f.method === 'watch') {
      const interval = Math.max(MIN_WATCH_INTERVAL, Number((params as { interval?: unknown } | undefined)?.interval ?? 1000) || 1000)
      respond(true, this.ctx.stats())
      // A tick the client has not taken the last one of is skipped: the next carries newer stats.
      this.watches.push(setInterval(() => { if (!this.channel.congested) respond(true, this.ctx.stats()) }, interval))
      return
    }
    this.ctx.admin(this.peer, f.method, params).then((result) => { respond(true, result) }, (err: Error) => { respond(false, { error: err.message }) })
  }

  protected onClose (): void {
    for (const timer of this.watches) clearInterval(timer)
  }
}

export type AnySession = ProducerSession | ConsumerSession | AdminSession

const encoder = new TextEncoder()
const decoder = new TextDecoder()
