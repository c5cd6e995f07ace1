/**
 * The HTTP gateway: programs that cannot speak libp2p publish, send, consume and read the broker's
 * state over HTTP (docs/gateway.openapi.yaml). Each request carries a bearer token (tokens.ts);
 * the token's peer (gateway-peer.ts) does what the request asks over libp2p, so the broker's ACL
 * decides what it may do. One handler per request, in a table keyed by method and name, as the
 * broker's admin handlers are.
 *
 * Every reply is JSON unless it is a payload; a refusal is `{ "error": text, "code": name }` with
 * the status of its kind (`statusOf`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ClosedError, AnswerTimeoutError, ErrorCode, MessageFailedError, MessageTooLargeError, PermissionDeniedError, RejectMessage, RejectedError, SubscriptionError, AdminError, InvalidMessageError } from '../errors.js'
import { DEFAULT_GROUP, MAX_MESSAGES_OFFSET } from '../constants.js'
import { groupError, patternError } from '../names.js'
import { serverUrl, startHttpServer } from '../http-server.js'
import { GatewayPeer } from './gateway-peer.js'
import { TokenFileError, type TokenFile } from './tokens.js'
import type { Held } from './poller.js'
import type { Payload } from '../payload.js'
import type { PublishOptions } from '../client/producer.js'
import type { MessageQuery } from '../broker/api.js'

/** Longest long poll, and the default wait of one. */
const MAX_WAIT = 60_000
const DEFAULT_WAIT = 10_000
/** Deliveries one poll returns at most, and by default (the first poll of a consumption also sets its prefetch). */
const MAX_POLL = 1_000
const DEFAULT_POLL = 10
/** Longest wait for an answer to a send. */
const MAX_SEND_TIMEOUT = 300_000
const DEFAULT_SEND_TIMEOUT = 30_000
/** Node's longest timer. */
const MAX_TIMER = 2 ** 31 - 1
/** A consumption no one polled for this long is ended (its unpolled deliveries go back); a token's peer unused this long is stopped. */
const POLL_IDLE = 30_000
const PEER_IDLE = 300_000
const SWEEP_INTERVAL = 5_000
/**
 * Requests of one token that wait at once (long polls, sends): the gateway takes 256 connections,
 * and one token must not hold them all.
 */
const MAX_WAITING_PER_TOKEN = 64
/**
 * Characters of JSON one poll answers with at most (past it, the rest wait for the next poll): a
 * thousand 1 MB payloads in base64 would pass V8's longest string (~512 MB).
 */
const MAX_POLL_BYTES = 64 * 1024 * 1024
/** Message headers a request may set (P2PMQ-Header-<name>). */
const MAX_MESSAGE_HEADERS = 64

export interface GatewayOptions {
  port: number
  /** @default '127.0.0.1' */
  host?: string
  /** The broker: a multiaddr ending in /p2p/<peerId> (its loopback TCP address, when in the same process). */
  broker: string
  tokens: TokenFile
  /** The broker's largest payload: a larger body is refused (413) before it is read. */
  maxPayload: number
  /** ms a consumed message is held for its HTTP client (the broker's visibility timeout). */
  visibility: number
}

export interface HttpGateway {
  readonly url: string
  readonly port: number
  close: () => Promise<void>
}

/** A refusal of the gateway's own (not the broker's), with its HTTP status. */
class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly code: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

interface Reply {
  status: number
  /** JSON, unless `raw`. */
  body?: unknown
  raw?: { type: string, bytes: Uint8Array | string }
  headers?: Record<string, string>
}

interface Request {
  req: IncomingMessage
  /** The path's last part (a command, pattern or receipt), decoded; '' when there is none. */
  target: string
  query: URLSearchParams
  peer: GatewayPeer
  /**
   * Aborted when the client goes away. Made when first asked for, by the requests that wait: an
   * AbortSignal per request cost more than the rest of a publish's HTTP side (measured).
   */
  signal: () => AbortSignal
  /** Called with the deliveries the reply gives: they go back at once if the client goes before it has the reply. */
  handingOut: (held: Held[]) => void
}

type Handler = (r: Request, gateway: Gateway) => Promise<Reply>

/** `<METHOD> <name>`: the handlers, for /v1/<name>[/<target>]. `target` says whether the path names one. */
const HANDLERS: Record<string, { target: boolean, handle: Handler }> = {
  'POST publish': { target: true, handle: publish },
  'POST send': { target: true, handle: async (r, g) => await waiting(r, async () => await send(r, g)) },
  'GET consume': { target: true, handle: async (r) => await waiting(r, async () => await consume(r)) },
  'POST ack': { target: true, handle: async (r) => settle(r, (held) => { held.settle(undefined) }) },
  'POST answer': {
    target: true,
    handle: async (r, g) => {
      const answer = await g.payload(r.req)
      return settle(r, (held) => { held.settle(answer) })
    }
  },
  'POST nack': {
    target: true,
    handle: async (r, g) => {
      const requeue = flag(r.query, 'requeue', true)
      const text = await g.text(r.req)
      const reason = text !== '' ? text : 'nacked through the HTTP gateway'
      return settle(r, (held) => { held.fail(requeue ? new Error(reason) : new RejectMessage(reason)) })
    }
  },
  'GET stats': { target: false, handle: async (r) => ({ status: 200, body: await (await r.peer.admin()).stats() }) },
  'GET messages': {
    target: false,
    handle: async (r) => {
      const q = r.query
      const query = {
        state: q.get('state') ?? undefined,
        command: q.get('command') ?? undefined,
        limit: q.has('limit') ? integer(q, 'limit', 1, 100_000, 100) : undefined,
        offset: q.has('offset') ? integer(q, 'offset', 0, MAX_MESSAGES_OFFSET, 0) : undefined,
        bodies: q.has('bodies') ? flag(q, 'bodies', false) : undefined
      }
      return { status: 200, body: await (await r.peer.admin()).messages(query as MessageQuery) }
    }
  },
  'GET acl': { target: false, handle: async (r) => ({ status: 200, body: await (await r.peer.admin()).acl() }) },
  'GET whoami': { target: false, handle: async (r) => ({ status: 200, body: { token: r.peer.entry.name, ...await (await r.peer.admin()).whoami() } }) }
}

/** Runs a request that may wait long, counted against its token's MAX_WAITING_PER_TOKEN. */
async function waiting (r: Request, handle: () => Promise<Reply>): Promise<Reply> {
  if (r.peer.waiting >= MAX_WAITING_PER_TOKEN) throw new HttpError(429, `A token has at most ${MAX_WAITING_PER_TOKEN} long polls and sends waiting at once`, 'LimitReachedError')
  r.peer.waiting++
  try {
    return await handle()
  } finally {
    r.peer.waiting--
  }
}

async function publish (r: Request, g: Gateway): Promise<Reply> {
  const options = publishOptions(r.req)
  const payload = await g.payload(r.req)
  const producer = await r.peer.producer()
  // Not abandoned when the client goes (it is confirmed within ms): what it was given to publish is published.
  const id = await producer.publish(r.target, payload, options)
  return { status: 202, body: { id } }
}

async function send (r: Request, g: Gateway): Promise<Reply> {
  const options = { ...publishOptions(r.req), timeout: integer(r.query, 'timeout', 1, MAX_SEND_TIMEOUT, DEFAULT_SEND_TIMEOUT) }
  const payload = await g.payload(r.req)
  const producer = await r.peer.producer()
  try {
    const result = await withAbort(producer.request(r.target, payload, options), r.signal())
    return { status: 200, raw: payloadBody(result.payload), headers: { 'p2pmq-id': result.id, 'p2pmq-consumer': result.consumer, 'p2pmq-attempts': String(result.attempts) } }
  } catch (err) {
    if (!(err instanceof MessageFailedError)) throw err
    return { status: 422, body: { error: err.message, code: err.name, consumer: err.consumer, attempts: err.attempts } }
  }
}

async function consume (r: Request): Promise<Reply> {
  const q = r.query
  const group = q.get('group') ?? DEFAULT_GROUP
  const bad = patternError(r.target) ?? groupError(group)
  if (bad != null) throw new HttpError(400, bad, 'InvalidArgument')
  const max = integer(q, 'max', 1, MAX_POLL, DEFAULT_POLL)
  const wait = integer(q, 'wait', 0, MAX_WAIT, DEFAULT_WAIT)
  const poller = await r.peer.poller(r.target, group, max)
  const signal = r.signal()
  const held = await poller.poll(max, wait, signal)
  if (signal.aborted) {
    for (const h of held) h.fail(new Error('The HTTP client went away before it had the message'))
    return { status: 204 }
  }
  // Each message is made JSON on its own: one the gateway cannot give (a payload nested too deep
  // to write out again) fails alone, and past MAX_POLL_BYTES the rest go back for the next poll.
  const parts: string[] = []
  const given: Held[] = []
  let bytes = 2
  for (const [i, h] of held.entries()) {
    let json: string
    try {
      json = JSON.stringify(messageJson(h))
    } catch (err) {
      h.fail(new RejectMessage(`The HTTP gateway cannot give this message: ${(err as Error).message}`))
      continue
    }
    if (given.length > 0 && bytes + json.length > MAX_POLL_BYTES) {
      poller.giveBack(held.slice(i))
      break
    }
    bytes += json.length + 1
    parts.push(json)
    given.push(h)
  }
  if (given.length === 0) return { status: 204 }
  r.handingOut(given)
  return { status: 200, raw: { type: 'application/json', bytes: `[${parts.join(',')}]` } }
}

function messageJson (h: Held): Record<string, unknown> {
  const m = h.message
  return { receipt: h.receipt, deadline: h.deadline, id: m.id, command: m.command, headers: m.headers, attempt: m.attempt, producer: m.producer, timestamp: m.timestamp, ...payloadJson(m.payload) }
}

function settle (r: Request, act: (held: Held) => void): Reply {
  const held = r.peer.receipts.get(r.target)
  if (held == null) throw new HttpError(410, 'No such receipt: it was settled, its visibility timeout passed (the message went to another consumer), or it is not this token\'s', 'ReceiptExpired')
  act(held)
  return { status: 204 }
}

/** The publish options a request's P2PMQ-* headers give. */
function publishOptions (req: IncomingMessage): PublishOptions {
  const options: PublishOptions = {}
  const h = req.headers
  const ms = (name: string): number | undefined => {
    const v = h[name]
    return v == null ? undefined : whole(String(v), name, 0, MAX_TIMER)
  }
  options.delay = ms('p2pmq-delay')
  options.ttl = ms('p2pmq-ttl')
  const ids = req.headersDistinct['p2pmq-id']
  if (ids != null) {
    if (ids.length > 1) throw new HttpError(400, 'A message has one p2pmq-id', 'InvalidArgument')
    options.id = utf8(ids[0])
  }
  const transient = h['p2pmq-transient']
  if (transient != null) options.transient = bool(String(transient), 'p2pmq-transient')
  const headers: Record<string, string> = {}
  let count = 0
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith('p2pmq-header-') || typeof value !== 'string') continue
    if (++count > MAX_MESSAGE_HEADERS) throw new HttpError(400, `A message takes at most ${MAX_MESSAGE_HEADERS} headers`, 'InvalidArgument')
    const key = utf8(name.slice('p2pmq-header-'.length))
    if (key === '__proto__') throw new HttpError(400, '__proto__ is not a header name', 'InvalidArgument')
    headers[key] = utf8(value)
  }
  if (count > 0) options.headers = headers
  return options
}

/** A header's value as UTF-8 (Node reads header bytes as Latin-1). */
function utf8 (value: string): string {
  return Buffer.from(value, 'latin1').toString('utf8')
}

/** A payload as a reply's body: bytes as they are, a string as text, anything else as JSON. */
function payloadBody (payload: Payload): { type: string, bytes: Uint8Array | string } {
  if (payload instanceof Uint8Array) return { type: 'application/octet-stream', bytes: payload }
  if (typeof payload === 'string') return { type: 'text/plain; charset=utf-8', bytes: payload }
  return { type: 'application/json', bytes: payload === undefined ? '' : JSON.stringify(payload) }
}

/** A payload as fields of a consumed message: bytes in base64 (with `encoding`), none left out. */
function payloadJson (payload: Payload): { payload?: unknown, encoding?: 'base64' } {
  if (payload === undefined) return {}
  if (payload instanceof Uint8Array) return { payload: Buffer.from(payload).toString('base64'), encoding: 'base64' }
  return { payload }
}

/** A query parameter's whole number, `fallback` when it is absent. */
function integer (q: URLSearchParams, name: string, min: number, max: number, fallback: number): number {
  const v = q.get(name)
  return v == null ? fallback : whole(v, name, min, max)
}

function flag (q: URLSearchParams, name: string, fallback: boolean): boolean {
  const v = q.get(name)
  return v == null ? fallback : bool(v, name)
}

/** `v` (of a query parameter or a header) as a whole number from `min` to `max`; a 400 otherwise. */
function whole (v: string, name: string, min: number, max: number): number {
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw new HttpError(400, `${name} takes a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`, 'InvalidArgument')
  return Number(v)
}

function bool (v: string, name: string): boolean {
  if (v !== 'true' && v !== 'false') throw new HttpError(400, `${name} takes true or false, not ${JSON.stringify(v)}`, 'InvalidArgument')
  return v === 'true'
}

async function withAbort<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw new ClosedError('The HTTP client went away')
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(new ClosedError('The HTTP client went away')) }
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    if (onAbort != null) signal.removeEventListener('abort', onAbort)
  }
}

/** The HTTP status of an error a request ended with, and its code. */
function statusOf (err: Error): { status: number, code: string } {
  if (err instanceof HttpError) return { status: err.status, code: err.code }
  if (err instanceof PermissionDeniedError) return { status: 403, code: err.name }
  if (err instanceof MessageTooLargeError) return { status: 413, code: err.name }
  if (err instanceof InvalidMessageError || err instanceof TypeError || err instanceof RangeError) return { status: 400, code: err.name }
  if (err instanceof AnswerTimeoutError) return { status: 504, code: err.name }
  if (err instanceof RejectedError) return { status: 503, code: err.name }
  if (err instanceof AdminError || err instanceof SubscriptionError) {
    const byCode: Partial<Record<ErrorCode, number>> = { [ErrorCode.InvalidArgument]: 400, [ErrorCode.UnknownMethod]: 404, [ErrorCode.NotFound]: 404, [ErrorCode.Conflict]: 409, [ErrorCode.LimitReached]: 429 }
    return { status: byCode[err.code] ?? 500, code: err.name }
  }
  if (err.name === 'TimeoutError' || err instanceof ClosedError) return { status: 503, code: 'Unavailable' }
  return { status: 500, code: 'Internal' }
}

class Gateway {
  private readonly peers = new Map<string, Promise<GatewayPeer>>()
  private readonly sweeper: ReturnType<typeof setInterval>

  constructor (private readonly options: GatewayOptions) {
    this.sweeper = setInterval(() => { this.sweep() }, SWEEP_INTERVAL)
    this.sweeper.unref?.()
  }

  handle (req: IncomingMessage, res: ServerResponse): void {
    let abort: AbortController | undefined
    let gone = false
    const signal = (): AbortSignal => {
      abort ??= new AbortController()
      if (gone) abort.abort()
      return abort.signal
    }
    let sent: Held[] = []
    // The client went before it had the whole reply: what waits for it stops, and what it was
    // given goes back now, not at its deadline. (A request pipelined behind another gets no 'close'
    // of its response when the client goes: its socket's close says so.)
    const left = (): void => {
      if (gone || res.writableFinished) return
      gone = true
      abort?.abort()
      for (const h of sent) h.fail(new Error('The HTTP client went away before it had the message'))
    }
    const socket = req.socket
    res.once('close', left)
    socket.once('close', left)
    res.once('finish', () => { socket.off('close', left) })
    this.route(req, signal, (held) => { sent = held }).then((reply) => { this.reply(res, reply, sent) }, (err: Error) => {
      const { status, code } = statusOf(err)
      this.reply(res, { status, body: { error: status === 500 ? 'Internal error' : err.message, code }, headers: err instanceof HttpError ? err.headers : {} }, [])
    })
  }

  private async route (req: IncomingMessage, signal: () => AbortSignal, handingOut: (held: Held[]) => void): Promise<Reply> {
    let url: URL
    try {
      url = new URL(req.url ?? '', 'http://gateway')
    } catch {
      throw new HttpError(400, 'Malformed URL', 'InvalidArgument')
    }
    const parts = url.pathname.split('/')
    if (parts[1] !== 'v1' || parts.length < 3 || parts.length > 4) throw new HttpError(404, 'Not found: the gateway serves /v1/… (see docs/gateway.openapi.yaml)', 'NotFound')
    const name = parts[2]
    const entry = HANDLERS[`${req.method ?? ''} ${name}`]
    if (entry == null) {
      const allowed = Object.keys(HANDLERS).filter((k) => k.endsWith(` ${name}`)).map((k) => k.split(' ')[0])
      if (allowed.length > 0) throw new HttpError(405, `${name} takes ${allowed.join(', ')}`, 'MethodNotAllowed', { allow: allowed.join(', ') })
      throw new HttpError(404, `No such request: /v1/${name}`, 'NotFound')
    }
    if (entry.target !== (parts.length === 4)) throw new HttpError(404, entry.target ? `/v1/${name} takes /v1/${name}/<name>` : `/v1/${name} takes nothing after it`, 'NotFound')
    let target = ''
    try {
      target = decodeURIComponent(parts[3] ?? '')
    } catch {
      throw new HttpError(400, 'Malformed URL', 'InvalidArgument')
    }
    const peer = await this.peer(req)
    return await entry.handle({ req, target, query: url.searchParams, peer, signal, handingOut }, this)
  }

  /** The peer of the request's bearer token; a 401 without a known one. */
  private async peer (req: IncomingMessage): Promise<GatewayPeer> {
    const auth = req.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth)
    const challenge = { 'www-authenticate': 'Bearer realm="p2pmq"' }
    if (m == null) throw new HttpError(401, 'A request needs a token: Authorization: Bearer <token> (p2pmq token add <name> makes one)', 'Unauthorized', challenge)
    let entry
    try {
      entry = this.options.tokens.lookup(m[1])
    } catch (err) {
      // (Not why: the request is not authenticated yet, and the reason names the broker's files. Its log says.)
      if (err instanceof TokenFileError) throw new HttpError(503, 'The gateway cannot read its tokens (the broker\'s log says why)', 'Unavailable')
      throw err
    }
    if (entry == null) throw new HttpError(401, 'Unknown token', 'Unauthorized', challenge)
    const hash = entry.sha256
    let peer = this.peers.get(hash)
    if (peer == null) {
      peer = this.options.tokens.key(m[1]).then(async (key) => await GatewayPeer.start(entry, key, this.options.broker, this.options.visibility))
      this.peers.set(hash, peer)
      peer.catch(() => { this.peers.delete(hash) })
    }
    return await peer
  }

  /** The request's body as a payload: JSON for application/json, a string for text/*, bytes otherwise, none when empty. */
  async payload (req: IncomingMessage): Promise<Payload> {
    const [type = '', ...params] = (req.headers['content-type'] ?? '').split(';').map((p) => p.trim().toLowerCase())
    const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '')
    if (charset != null && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') throw new HttpError(415, `The gateway reads bodies in UTF-8, not ${charset}`, 'UnsupportedMediaType')
    const bytes = await this.body(req)
    if (bytes.length === 0 && (type === '' || type === 'application/x-www-form-urlencoded')) return undefined
    if (type === 'application/json' || type.endsWith('+json')) {
      try {
        return JSON.parse(bytes.toString('utf8'))
      } catch (err) {
        throw new HttpError(400, `The body is not valid JSON: ${(err as Error).message}`, 'InvalidArgument')
      }
    }
    if (type.startsWith('text/')) return bytes.toString('utf8')
    return new Uint8Array(bytes)
  }

  async text (req: IncomingMessage): Promise<string> {
    return (await this.body(req)).toString('utf8').slice(0, 1024)
  }

  /** The request's body, at most the broker's largest payload (413 past it, before reading it when its length says so). */
  private async body (req: IncomingMessage): Promise<Buffer> {
    const limit = this.options.maxPayload
    const tooLarge = (): HttpError => new HttpError(413, `The body is larger than the broker's largest payload, ${limit} bytes`, 'MessageTooLargeError', { connection: 'close' })
    if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge()
    const chunks: Buffer[] = []
    let length = 0
    for await (const chunk of req) {
      length += (chunk as Buffer).length
      if (length > limit) throw tooLarge()
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks)
  }

  /** Writes `reply`; whatever goes wrong ends this request only (with a 500), and what it gave goes back. */
  private reply (res: ServerResponse, reply: Reply, given: Held[]): void {
    if (res.headersSent || res.destroyed) return
    const headers: Record<string, string> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...reply.headers }
    let body: Uint8Array | string | undefined
    try {
      if (reply.raw != null) {
        headers['content-type'] = reply.raw.type
        body = reply.raw.bytes
      } else if (reply.body !== undefined) {
        headers['content-type'] = 'application/json'
        body = JSON.stringify(reply.body)
      }
      res.writeHead(reply.status, headers)
      res.end(body)
    } catch {
      for (const h of given) h.fail(new Error('The HTTP gateway could not write its reply'))
      if (res.headersSent) {
        res.destroy()
        return
      }
      res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end('{"error":"Internal error","code":"Internal"}')
    }
  }

  private sweep (): void {
    const now = Date.now()
    for (const [hash, pending] of this.peers) {
      void pending.then(async (peer) => {
        peer.closeIdle(now - POLL_IDLE)
        const removed = !this.tokenExists(hash)
        if (!removed && !(peer.idle && now - peer.lastUsed > PEER_IDLE)) return
        if (this.peers.get(hash) !== pending) return
        this.peers.delete(hash)
        await peer.stop()
      }, () => {}).catch(() => {})
    }
  }

  private tokenExists (hash: string): boolean {
    try {
      return this.options.tokens.list().some((e) => e.sha256 === hash)
    } catch {
      return true // unreadable now: nothing is stopped for it
    }
  }

  async close (): Promise<void> {
    clearInterval(this.sweeper)
    const peers = [...this.peers.values()]
    this.peers.clear()
    await Promise.all(peers.map(async (pending) => {
      try {
        await (await pending).stop()
      } catch {}
    }))
  }
}

/** Serves the gateway on `host`:`port`; throws WebPortError when it cannot listen. */
export async function startGateway (options: GatewayOptions): Promise<HttpGateway> {
  const host = options.host ?? '127.0.0.1'
  const gateway = new Gateway(options)
  const server = await startHttpServer(options.port, host, (req, res) => { gateway.handle(req, res) })
  return {
    url: serverUrl(host, server.port),
    port: server.port,
    close: async () => {
      await server.close()
      await gateway.close()
    }
  }
}
