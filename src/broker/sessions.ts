/**
 * The broker's side of one client stream: a producer session (publishes in, confirms and results
 * out) or a consumer session (subscriptions and settles in, deliveries out); the admin session is
 * in admin-session.ts. Sessions translate frames to engine calls and engine events to frames; the
 * queue logic stays in the engine.
 */
import { FramedChannel, MAX_UNSENT_BYTES } from '../protocol/channel.js'
import {
  FrameType, NackFlags, PublishFlags, RejectCode, SubscribeFlags,
  readConsumerFrame, readProducerFrame, writeConfirm, writeDeliver, writeProducerRef, writeReject, writeResult,
  writeSubscribed, writeWelcome,
  type ConsumerFrame, type ProducerFrame, type Publish
} from '../protocol/frames.js'
import { ErrorCode, FrameError } from '../errors.js'
import { errorCodeOf } from '../protocol/error-codes.js'
import { DEFAULT_MAX_PARTIAL_FRAME_BYTES, FRAME_OVERHEAD_LIMIT, MAX_NAME_BYTES, MAX_PATTERNS_PER_SUBSCRIPTION, MAX_PREFETCH, MAX_SUBSCRIPTIONS_PER_STREAM } from '../constants.js'
import { PartialFrameBudget } from '../protocol/codec.js'
import { commandError, groupError, patternError, utf8Length } from '../names.js'
import type { Stream } from '@libp2p/interface'
import type { InFlight, QueueEngine } from './engine.js'
import type { KeptResult } from './mailbox.js'
import type { AdminSession } from './admin-session.js'
import type { Subscription } from './queue.js'
import { isResend, type ProducerRegistry, type ProducerSeq } from './producers.js'
import type { BrokerStats, ClientRole } from './api.js'
import type { Rights } from './acl.js'
import type { FlightHolder, PeerFlight, PeerLimits } from './peer-limits.js'

export const BROKER_VERSION = '0.1.0'

/** What a session checks a publish against: sizes, and command names (valid ones cached: checked per publish). */
export class SessionLimits {
  /** The longest frame read: the largest payload and the fields around it. */
  readonly maxFrameLength: number
  /** Bytes of partly received frames over every stream (at least one largest frame). */
  readonly partialFrames: PartialFrameBudget
  private readonly validCommands = new Set<string>()

  constructor (readonly maxPayload: number, maxPartialFrameBytes = DEFAULT_MAX_PARTIAL_FRAME_BYTES) {
    this.maxFrameLength = maxPayload + FRAME_OVERHEAD_LIMIT
    this.partialFrames = new PartialFrameBudget(Math.max(maxPartialFrameBytes, this.maxFrameLength))
  }

  /** Why `command` is not a valid command name, or undefined. */
  commandError (command: string): string | undefined {
    if (this.validCommands.has(command)) return undefined
    const error = commandError(command)
    if (error == null && this.validCommands.size < 10_000) this.validCommands.add(command)
    return error
  }
}

/** The store's side of a publish: when a write is on disk, and whether it can write now. */
export interface Durability {
  /** Calls `done` once everything the broker wrote so far is on disk, or with the error that kept it off. */
  whenDurable: (done: (err?: Error) => void) => void
  /** Why the store cannot write now (a full disk): publishes are refused meanwhile. */
  readonly failure: Error | undefined
}

/** What an admin session serves. */
export interface AdminService {
  /** Runs an admin request of a peer with `rights`; throws (an AdminError or PermissionDeniedError, with its code) to refuse it. */
  run: (peer: string, method: string, params: unknown, rights: Rights) => Promise<unknown>
  /** The broker's stats now (for `watch`). */
  stats: () => BrokerStats
}

/** Refusals of the access control list, told (rate-limited) in the broker's log and events. */
export interface Denials {
  denied: (peer: string, reason: string, role: ClientRole) => void
}

/** The broker's list of open sessions. */
export interface SessionRegistry {
  closed: (session: AnySession, err?: Error) => void
  /** The session's client sent a bad frame; its stream is ending. */
  badFrame: (session: AnySession, err: Error) => void
}

/** The broker's parts a session works with, built once by the service. */
export interface SessionParts {
  readonly engine: QueueEngine<ConsumerSession>
  readonly limits: SessionLimits
  /** Limits per peer (subscriptions, watches, publish rate). */
  readonly peers: PeerLimits
  readonly producers: ProducerRegistry
  readonly durability: Durability
  readonly admin: AdminService
  readonly registry: SessionRegistry
  readonly denials: Denials
}

/** One client stream: its framed channel, the Welcome sent first, and the broker told when it ends. */
export abstract class Session<In> {
  readonly channel: FramedChannel<In>
  abstract readonly role: ClientRole

  /** @param rights what the peer may do (the broker gives new ones on each ACL change: `regrant`) */
  constructor (readonly peer: string, stream: Stream, protected readonly parts: SessionParts, read: (type: number, r: any) => In, protected rights: Rights, pauseReadingAbove?: number) {
    this.channel = new FramedChannel<In>(stream, {
      maxFrameLength: parts.limits.maxFrameLength,
      partialFrames: parts.limits.partialFrames,
      pauseReadingAbove,
      read,
      onFrame: (frame) => { this.onFrame(frame) },
      onBatchEnd: () => { this.onBatchEnd() },
      onCongestion: (congested) => { this.onCongestion(congested) },
      onClose: (err) => {
        if (err != null && isBadFrame(err)) parts.registry.badFrame(this as any, err)
        this.onClose()
        parts.registry.closed(this as any, err)
      }
    })
    writeWelcome(this.channel.writer, parts.limits.maxPayload, BROKER_VERSION)
  }

  get isOpen (): boolean {
    return this.channel.isOpen
  }

  close (reason?: Error): void {
    this.channel.close(reason)
  }

  /** The ACL changed: from now on the peer may do what `rights` says; what it holds and may no longer is ended. */
  regrant (rights: Rights): void {
    this.rights = rights
  }

  /** Tells the broker a refusal of the ACL (its log line and event, rate-limited per peer). */
  protected denied (reason: string): void {
    this.parts.denials.denied(this.peer, reason, this.role)
  }

  protected abstract onFrame (frame: In): void
  protected onBatchEnd (): void {}
  protected onCongestion (_congested: boolean): void {}
  protected abstract onClose (): void
}

/**
 * Confirms are cumulative ("every seq up to N that was not rejected is taken"), one per batch of
 * incoming frames, sent once the store has synced the batch. A send (wants an answer) is not
 * confirmed: its result confirms it. While a publish went to a congested queue the confirm is
 * held, so the producer's window fills and it waits (publisher flow control).
 */
export class ProducerSession extends Session<ProducerFrame> implements FlightHolder {
  readonly role = 'producer'
  private seq?: ProducerSeq
  /** Seqs up to these are taken, waited for on disk, on disk, and confirmed. */
  private takenUpTo = 0
  private syncingUpTo = 0
  /**
   * The publishes taken (new, not resent) since the last batch went to the store: the seqs of
   * those the store keeps (rejected if it cannot write them), and the count and payload bytes of all.
   */
  private newlyStored: number[] = []
  private readonly newlyTaken = { messages: 0, bytes: 0 }
  /** Publishes taken and not confirmed (counted in the peer's flight), and those of them on disk. */
  private unconfirmed = { messages: 0, bytes: 0 }
  private durableUnconfirmed = { messages: 0, bytes: 0 }
  /** This batch took a message the store keeps: the session's seq is written at its end. */
  private seqToStore = false
  /** This batch confirms a message the store keeps (taken now, or before and resent): its confirm waits for the disk. */
  private confirmsStored = false
  private durableUpTo = 0
  private confirmedUpTo = 0
  /** Commands whose congested queues hold this session's confirms. */
  private readonly blockedOn = new Set<string>()
  /** The peer's publish rate (shared by its producer streams), when the broker limits it. */
  private readonly rate?: ReturnType<PeerLimits['publishBucket']>
  /** What the peer has in flight (shared by its producer streams). */
  private readonly flight: PeerFlight
  /** Why the stream is not read now: a publish waits for the rate's token, the peer is over its in-flight limits. */
  private waitingForRate = false
  private heldForFlight = false

  /** The producer session (named in Hello) this stream belongs to; a reconnect opens another stream of it. */
  get producerSeq (): ProducerSeq | undefined {
    return this.seq
  }

  constructor (peer: string, stream: Stream, parts: SessionParts, rights: Rights) {
    // Confirms, rejects and results answer publishes: a producer that does not read them is not read.
    super(peer, stream, parts, readProducerFrame, rights, MAX_UNSENT_BYTES + parts.limits.maxFrameLength)
    if (parts.peers.rateLimited) this.rate = parts.peers.publishBucket(peer)
    this.flight = parts.peers.openFlight(peer, this)
  }

  protected onFrame (f: ProducerFrame): void {
    if (f.type === FrameType.Hello) {
      if (this.seq != null) throw new FrameError('A second Hello on one producer stream')
      // Each session is kept for the dedup window after its last stream: a long name a stream would keep 64 KB.
      if (utf8Length(f.session) > MAX_NAME_BYTES) throw new FrameError(`A producer session's name is at most ${MAX_NAME_BYTES} bytes`)
      this.seq = this.parts.producers.hello(this, f.session)
      return
    }
    if (this.seq == null) throw new FrameError('Publish before Hello')
    if (this.rate != null && this.overRate(f, this.seq)) return
    this.publish(f, this.seq)
  }

  /**
   * Over the peer's publish rate: the publish waits for its token, and the stream is not read
   * meanwhile (backpressure; nothing is dropped). False when it may go now.
   */
  private overRate (f: Publish, seq: ProducerSeq): boolean {
    const wait = this.rate?.take() ?? 0
    if (wait === 0) return false
    this.waitingForRate = true
    this.channel.holdReading()
    setTimeout(() => {
      if (!this.isOpen || this.overRate(f, seq)) return
      this.waitingForRate = false
      this.publish(f, seq)
      this.onBatchEnd()
      this.updateReading()
    }, wait)
    return true
  }

  holdForFlight (): void {
    this.heldForFlight = true
    this.channel.holdReading()
  }

  resumeForFlight (): void {
    this.heldForFlight = false
    // Not on the releasing caller's stack (an engine event, a purge between its two halves): the
    // frames kept meanwhile publish again, which that caller does not expect.
    queueMicrotask(() => { this.updateReading() })
  }

  private updateReading (): void {
    if (this.waitingForRate || this.heldForFlight) this.channel.holdReading()
    else this.channel.resumeReading()
  }

  private publish (f: Publish, seq: ProducerSeq): void {
    const w = this.channel.writer
    const wantsAnswer = (f.flags & PublishFlags.WantsAnswer) !== 0
    const transient = (f.flags & PublishFlags.Transient) !== 0 || this.parts.engine.transientByPolicy(f.command)
    if (isResend(seq, f.seq, transient)) {
      // A resend of a message the broker already took: confirm it again, keep one copy. A request
      // answered lately had its answer lost on the way (the producer moved): answer it again.
      if (!wantsAnswer && f.seq > this.takenUpTo) {
        this.takenUpTo = f.seq
        if (!transient) this.confirmsStored = true
      }
      const answer = wantsAnswer ? seq.answered.get(f.id, Date.now()) : undefined
      if (answer != null) this.sendResult(answer)
      return
    }
    if (f.seq > seq.lastSeq) seq.lastSeq = f.seq
    const invalid = this.parts.limits.commandError(f.command)
    if (invalid != null) {
      writeReject(w, f.seq, RejectCode.Invalid, invalid)
      return
    }
    if (f.id.length === 0) {
      writeReject(w, f.seq, RejectCode.Invalid, 'A message needs an id')
      return
    }
    if (!this.rights.mayProduce(f.command)) {
      const reason = `${this.peer} may not ${wantsAnswer ? 'send' : 'publish'} to "${f.command}": no produce grant of the broker's ACL covers it`
      writeReject(w, f.seq, RejectCode.Forbidden, reason)
      this.denied(reason)
      return
    }
    if (f.payload.byteLength > this.parts.limits.maxPayload) {
      writeReject(w, f.seq, RejectCode.TooLarge, `Payload of ${f.payload.byteLength} bytes exceeds the broker's limit of ${this.parts.limits.maxPayload}`)
      return
    }
    const dedup = (f.flags & PublishFlags.Dedup) !== 0
    if (dedup && this.parts.producers.seenId(f.command, f.id)) {
      // Taken already: confirmed again, not queued again.
      if (!wantsAnswer) {
        this.takenUpTo = f.seq
        if (!transient) this.confirmsStored = true
      }
      return
    }
    const failure = this.parts.durability.failure
    if (failure != null && !transient) {
      writeReject(w, f.seq, RejectCode.Unavailable, `The broker could not store the message: ${failure.message}`)
      return
    }
    // Counted before it is taken: a request may fail (and be released) before publish returns.
    const bytes = f.payload.byteLength
    const peers = this.parts.peers
    peers.addInFlight(this.flight, 1, bytes)
    const now = Date.now()
    const copies = this.parts.engine.publish({
      command: f.command,
      id: f.id,
      headers: f.headers,
      kind: f.kind,
      payload: f.payload,
      producer: this.peer,
      session: seq.session,
      timestamp: now,
      wantsAnswer,
      transient,
      attempts: 0,
      dueAt: f.delay > 0 ? now + f.delay : undefined,
      expiresAt: f.ttl > 0 ? now + f.ttl : undefined
    })
    if (copies === 0) {
      peers.releaseInFlight(this.peer, 1, bytes)
      writeReject(w, f.seq, RejectCode.Full, 'The broker is full: too many messages are waiting')
      return
    }
    if (dedup) this.parts.producers.rememberId(f.command, f.id, transient)
    // Its seq is written at the batch's end so a resend after a restart is dropped: only for a
    // message the store keeps (a transient one resent then is taken again).
    if (!transient) this.seqToStore = true
    // Each group's copy of a request is answered, and released, on its own.
    if (wantsAnswer && copies > 1) peers.addInFlight(this.flight, copies - 1, (copies - 1) * bytes)
    peers.holdIfOver(this.peer, this.flight, this)
    if (wantsAnswer) return
    this.unconfirmed.messages++
    this.unconfirmed.bytes += bytes
    this.takenUpTo = f.seq
    if (!transient) {
      this.newlyStored.push(f.seq)
      this.confirmsStored = true
    }
    this.newlyTaken.messages++
    this.newlyTaken.bytes += bytes
    if (this.parts.engine.congested(f.command)) {
      if (this.blockedOn.size === 0) this.parts.producers.block(this)
      this.blockedOn.add(f.command)
    }
  }

  protected onBatchEnd (): void {
    if (this.seq != null && this.seqToStore && this.seq.lastSeq > this.seq.storedSeq) this.parts.producers.storeSeq(this.seq)
    this.seqToStore = false
    const confirmsStored = this.confirmsStored
    this.confirmsStored = false
    if (this.takenUpTo <= this.syncingUpTo) return
    // Transient publishes alone, with nothing before them waiting for the disk: confirmed at once.
    const waiting = this.durableUpTo < this.syncingUpTo
    const upTo = this.syncingUpTo = this.takenUpTo
    const stored = this.newlyStored
    const { messages, bytes } = this.newlyTaken
    this.newlyStored = []
    this.newlyTaken.messages = 0
    this.newlyTaken.bytes = 0
    if (!confirmsStored && !waiting) this.durable(stored, messages, bytes, upTo)
    else this.parts.durability.whenDurable((err) => { this.durable(stored, messages, bytes, upTo, err) })
  }

  /**
   * Seqs up to `upTo` are on disk, or the publishes `stored` among them could not be written: those
   * are rejected (a resend or a send in the range was stored before, and is not; a transient
   * publish needs no disk). `messages` and `bytes`: the publishes taken in the range.
   */
  private durable (stored: number[], messages: number, bytes: number, upTo: number, err?: Error): void {
    if (!this.isOpen) return
    if (err != null) {
      for (const seq of stored) {
        writeReject(this.channel.writer, seq, RejectCode.Unavailable, `The broker could not store the message: ${err.message}`)
      }
    }
    this.durableUnconfirmed.messages += messages
    this.durableUnconfirmed.bytes += bytes
    this.durableUpTo = upTo
    this.flushConfirm()
  }

  /** Forgets commands no longer congested; true (and the held confirm sent) once none is. */
  unblock (): boolean {
    for (const command of this.blockedOn) {
      if (!this.parts.engine.congested(command)) this.blockedOn.delete(command)
    }
    if (this.blockedOn.size > 0) return false
    this.flushConfirm()
    return true
  }

  private flushConfirm (): void {
    if (this.durableUpTo <= this.confirmedUpTo || this.blockedOn.size > 0 || !this.isOpen) return
    writeConfirm(this.channel.writer, this.durableUpTo)
    this.confirmedUpTo = this.durableUpTo
    const { messages, bytes } = this.durableUnconfirmed
    if (messages === 0) return
    this.durableUnconfirmed = { messages: 0, bytes: 0 }
    this.unconfirmed.messages -= messages
    this.unconfirmed.bytes -= bytes
    this.parts.peers.releaseInFlight(this.peer, messages, bytes)
  }

  sendResult (r: KeptResult): void {
    writeResult(this.channel.writer, r.id, r.consumer, r.status, r.attempts, r.kind, r.payload)
  }

  protected onCongestion (congested: boolean): void {
    if (!congested) this.parts.producers.drained(this)
  }

  protected onClose (): void {
    this.rate?.release()
    this.parts.peers.closeFlight(this.peer, this.flight, this)
    // Its unconfirmed publishes are no longer waited for here: the producer sends them again on a new stream.
    this.parts.peers.releaseInFlight(this.peer, this.unconfirmed.messages, this.unconfirmed.bytes)
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
  /** The client reads a code in Subscribed frames (it said so in a Subscribe's flags). */
  private sendsCodes = false
  /** Producer peer IDs named on this stream: a Deliver carries a 4-byte ref, not a 52-byte ID. */
  private readonly producerRefs = new Map<string, number>()

  constructor (peer: string, stream: Stream, parts: SessionParts, rights: Rights) {
    super(peer, stream, parts, readConsumerFrame, rights)
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
    const engine = this.parts.engine
    switch (f.type) {
      case FrameType.Ack: if (!engine.ack(this, f.tag)) this.lateSettle(); break
      case FrameType.Answer: if (!engine.answer(this, f.tag, f.kind, f.payload)) this.lateSettle(); break
      case FrameType.Nack: if (!engine.nack(this, f.tag, (f.flags & NackFlags.Requeue) !== 0, f.error)) this.lateSettle(); break
      case FrameType.Subscribe: {
        if ((f.flags & SubscribeFlags.ErrorCodes) !== 0) this.sendsCodes = true
        if (this.subs.has(f.subId)) {
          this.subscribed(f.subId, `Subscription ${f.subId} already exists`, ErrorCode.Conflict)
          return
        }
        if (this.subs.size >= MAX_SUBSCRIPTIONS_PER_STREAM) {
          this.subscribed(f.subId, `A consumer stream holds at most ${MAX_SUBSCRIPTIONS_PER_STREAM} subscriptions`, ErrorCode.LimitReached)
          return
        }
        if (validSubscription(f.patterns, f.group) && !this.rights.mayConsume(f.patterns, f.group)) {
          const reason = `${this.peer} may not consume ${f.patterns.map((p) => `"${p}"`).join(', ')} in group "${f.group}": no consume grant of the broker's ACL covers it`
          this.subscribed(f.subId, reason, ErrorCode.PermissionDenied)
          this.denied(reason)
          return
        }
        const overPeerLimit = this.parts.peers.takeSubscription(this.peer, Math.min(f.prefetch, MAX_PREFETCH))
        if (overPeerLimit != null) {
          this.subscribed(f.subId, overPeerLimit, ErrorCode.LimitReached)
          return
        }
        // subscribe() may deliver at once, before the Subscribed frame: the client already knows
        // the subId, so it takes those deliveries.
        try {
          const sub = engine.subscribe(this, f.subId, f.group, f.patterns, f.prefetch, (f.flags & SubscribeFlags.SingleActive) !== 0, f.expires > 0 ? f.expires : undefined)
          this.subs.set(f.subId, sub)
          if (!this.isOpen) {
            // The stream ended while subscribe() delivered (a failed write): onClose ran before this subscription was in `subs`.
            this.subs.delete(f.subId)
            this.parts.peers.releaseSubscription(this.peer, sub.prefetch)
            engine.unsubscribe(sub)
            return
          }
          if (this.channel.congested) engine.pause(sub)
        } catch (err) {
          this.parts.peers.releaseSubscription(this.peer, Math.min(f.prefetch, MAX_PREFETCH))
          // The engine refuses bad names, patterns and settings (TypeError), and limits (LimitReachedError).
          this.subscribed(f.subId, (err as Error).message, errorCodeOf(err))
          return
        }
        this.subscribed(f.subId, '')
        break
      }
      case FrameType.Unsubscribe: {
        const sub = this.subs.get(f.subId)
        if (sub == null) return
        this.subs.delete(f.subId)
        this.parts.peers.releaseSubscription(this.peer, sub.prefetch)
        engine.unsubscribe(sub)
        break
      }
    }
  }

  /** A settle of a delivery that timed out: too late for it, but the consumer is alive. */
  private lateSettle (): void {
    for (const sub of this.subs.values()) this.parts.engine.resume(sub)
  }

  /** The broker ended a subscription (its group was deleted): a Subscribed with the reason tells the client. */
  ended (sub: Subscription<ConsumerSession>, reason: string): void {
    if (this.subs.get(sub.subId) !== sub) return
    this.subs.delete(sub.subId)
    this.parts.peers.releaseSubscription(this.peer, sub.prefetch)
    if (this.isOpen) this.subscribed(sub.subId, reason, ErrorCode.NotFound)
  }

  /**
   * The ACL changed: a subscription no longer allowed is ended (the client gets a Subscribed with
   * PermissionDenied) and its deliveries in flight go back to their queues for others.
   */
  regrant (rights: Rights): void {
    super.regrant(rights)
    for (const sub of [...this.subs.values()]) {
      if (rights.mayConsume(sub.patterns, sub.group)) continue
      this.subs.delete(sub.subId)
      this.parts.peers.releaseSubscription(this.peer, sub.prefetch)
      this.parts.engine.unsubscribe(sub)
      const reason = `${this.peer} may no longer consume ${sub.patterns.map((p) => `"${p}"`).join(', ')} in group "${sub.group}": the broker's ACL changed`
      if (this.isOpen) this.subscribed(sub.subId, reason, ErrorCode.PermissionDenied)
      this.denied(reason)
    }
  }

  /** A Subscribed frame: accepted (no error), refused or ended; with the code when the client asked for codes. */
  private subscribed (subId: number, error: string, code?: ErrorCode): void {
    writeSubscribed(this.channel.writer, subId, error, this.sendsCodes ? code : undefined)
  }

  /** Deliveries wait while the consumer's stream does not take bytes. */
  protected onCongestion (congested: boolean): void {
    for (const sub of this.subs.values()) {
      if (congested) this.parts.engine.pause(sub)
      else this.parts.engine.unpause(sub)
    }
  }

  protected onClose (): void {
    for (const sub of this.subs.values()) {
      this.parts.peers.releaseSubscription(this.peer, sub.prefetch)
      this.parts.engine.unsubscribe(sub)
    }
    this.subs.clear()
  }
}

/** Whether the engine would take these names (else it refuses them with InvalidArgument, not the ACL). */
function validSubscription (patterns: readonly string[], group: string): boolean {
  return patterns.length > 0 && patterns.length <= MAX_PATTERNS_PER_SUBSCRIPTION && groupError(group) == null && patterns.every((p) => patternError(p) == null)
}

/** A stream ended by its client's fault: a malformed, unknown or oversized frame. */
function isBadFrame (err: Error): boolean {
  return err.name === 'FrameError' || err.name === 'MessageTooLargeError'
}

export type AnySession = ProducerSession | ConsumerSession | AdminSession
