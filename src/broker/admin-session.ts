/**
 * The broker's side of an admin stream: requests in, one response each out (JSON bodies), run by
 * the admin handler table (admin-handlers.ts); `watch`/`unwatch`, the standing request, is this
 * session's own.
 */
import { MAX_UNSENT_BYTES } from '../protocol/channel.js'
import { readAdminFrame, writeResponse, type AdminFrame } from '../protocol/frames.js'
import { ErrorCode, InvalidArgumentError, LimitReachedError, PermissionDeniedError } from '../errors.js'
import { checkAdmin } from './admin-handlers.js'
import type { Rights } from './acl.js'
import { errorCodeOf } from '../protocol/error-codes.js'
import { Session, type SessionParts } from './sessions.js'
import type { Stream } from '@libp2p/interface'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Shortest and longest interval of a `watch` (Node fires a longer timer at once, every ms). */
const MIN_WATCH_INTERVAL = 250
const MAX_WATCH_INTERVAL = 3_600_000
/** Standing `watch` requests on one stream at most: each costs a timer and a stats reply per tick. */
const MAX_WATCHES_PER_STREAM = 4
/**
 * Requests one stream has running at once; while that many run, or their responses wait to be
 * sent, the stream is not read (its next requests wait in the peer, not in the broker's memory).
 */
export const MAX_ADMIN_REQUESTS_PER_STREAM = 8

/**
 * An admin client's stream: requests in, one response each out (JSON bodies). `watch` is the one
 * standing request: the broker's stats as a response now and every `interval` ms after, with the
 * same reqId, until the stream closes, an `unwatch` names it, or the peer loses admin read (the
 * live dashboard). Watches are counted per stream and per peer (PeerLimits).
 */
export class AdminSession extends Session<AdminFrame> {
  readonly role = 'admin'
  /** The standing `watch` requests, by reqId. */
  private readonly watches = new Map<number, ReturnType<typeof setInterval>>()
  /** Requests running now. */
  private running = 0

  constructor (peer: string, stream: Stream, parts: SessionParts, rights: Rights) {
    super(peer, stream, parts, readAdminFrame, rights, MAX_UNSENT_BYTES + parts.limits.maxFrameLength)
  }

  /** The ACL changed: a peer no longer allowed admin read gets no more stats from its watches. */
  regrant (rights: Rights): void {
    super.regrant(rights)
    if (rights.mayAdmin('read')) return
    for (const timer of this.watches.values()) clearInterval(timer)
    if (this.watches.size > 0) this.denied(`${this.peer} may no longer watch the broker's stats (admin read): the broker's ACL changed`)
    this.parts.peers.releaseWatches(this.peer, this.watches.size)
    this.watches.clear()
  }

  protected onFrame (f: AdminFrame): void {
    const respond = (ok: boolean, value: unknown): void => {
      if (this.isOpen) writeResponse(this.channel.writer, f.reqId, ok, encoder.encode(JSON.stringify(value)))
    }
    const refuse = (err: Error): void => {
      if (err instanceof PermissionDeniedError) this.denied(err.message)
      respond(false, { error: err.message, code: errorCodeOf(err) })
    }
    let params: unknown
    try {
      params = f.body.byteLength === 0 ? undefined : JSON.parse(decoder.decode(f.body))
    } catch {
      respond(false, { error: 'The request body is not JSON', code: ErrorCode.InvalidArgument })
      return
    }
    if (f.method === 'watch') {
      try {
        checkAdmin(this.rights, 'watch')
      } catch (err) {
        refuse(err as Error)
        return
      }
      if (this.watches.size >= MAX_WATCHES_PER_STREAM && !this.watches.has(f.reqId)) {
        refuse(new LimitReachedError(`A stream holds at most ${MAX_WATCHES_PER_STREAM} watches`))
        return
      }
      const asked = (params as { interval?: unknown } | undefined)?.interval ?? 1000
      if (typeof asked !== 'number' || !Number.isFinite(asked)) {
        refuse(new InvalidArgumentError('interval must be a number of ms'))
        return
      }
      if (!this.watches.has(f.reqId)) {
        const overPeerLimit = this.parts.peers.takeWatch(this.peer)
        if (overPeerLimit != null) {
          refuse(new LimitReachedError(overPeerLimit))
          return
        }
      }
      const interval = Math.min(MAX_WATCH_INTERVAL, Math.max(MIN_WATCH_INTERVAL, asked))
      respond(true, this.parts.admin.stats())
      // A tick the client has not taken the last one of is skipped: the next carries newer stats.
      clearInterval(this.watches.get(f.reqId))
      this.watches.set(f.reqId, setInterval(() => { if (!this.channel.congested) respond(true, this.parts.admin.stats()) }, interval))
      return
    }
    if (f.method === 'unwatch') {
      const reqId = (params as { reqId?: unknown } | undefined)?.reqId
      const timer = typeof reqId === 'number' ? this.watches.get(reqId) : undefined
      clearInterval(timer)
      if (timer != null) {
        this.watches.delete(reqId as number)
        this.parts.peers.releaseWatches(this.peer)
      }
      respond(true, { stopped: timer != null })
      return
    }
    if (++this.running >= MAX_ADMIN_REQUESTS_PER_STREAM) this.channel.holdReading()
    const done = (): void => {
      this.running--
      // Read on once the responses went out, not while they pile up unsent.
      if (!this.channel.congested) this.channel.resumeReading()
    }
    this.parts.admin.run(this.peer, f.method, params, this.rights).then((result) => { respond(true, result); done() }, (err: Error) => { refuse(err); done() })
  }

  protected onCongestion (congested: boolean): void {
    if (congested) this.channel.holdReading()
    else if (this.running < MAX_ADMIN_REQUESTS_PER_STREAM) this.channel.resumeReading()
  }

  protected onClose (): void {
    for (const timer of this.watches.values()) clearInterval(timer)
    this.parts.peers.releaseWatches(this.peer, this.watches.size)
    this.watches.clear()
  }
}
