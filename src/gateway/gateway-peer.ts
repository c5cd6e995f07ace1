/**
 * One token's side of the gateway: a libp2p node with the token's key, and the producer, consumer
 * and admin clients its HTTP requests use, made when first needed. They reach the broker over
 * libp2p like any peer, so the broker's ACL, limits and flow control apply to them unchanged.
 */
import { Admin } from '../client/admin.js'
import { Consumer } from '../client/consumer.js'
import { Producer } from '../client/producer.js'
import { createNode } from '../node.js'
import { LimitReachedError, PermissionDeniedError } from '../errors.js'
import { Poller, type Held } from './poller.js'
import type { ClientBase } from '../client/client-base.js'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { TokenEntry } from './tokens.js'

/** ms a request waits for its client to reach the broker before it is a 503. */
export const CONNECT_TIMEOUT = 5_000
/** Consumptions (pattern and group) one token may hold at once. */
export const MAX_POLLERS_PER_TOKEN = 64
/** A refusal by the broker's ACL is answered at once (403) for this long, not waited for again. */
const REFUSAL_MEMORY = 5_000

export class GatewayPeer {
  private clients: { producer?: Producer, consumer?: Consumer, admin?: Admin } = {}
  private readonly pollers = new Map<string, Promise<Poller>>()
  /** Receipts of the deliveries this token holds. */
  readonly receipts = new Map<string, Held>()
  /** Its requests that wait now (long polls, sends). */
  waiting = 0
  /** When a request last used it (the gateway stops a peer idle too long). */
  lastUsed = Date.now()
  private refused?: { at: number, error: PermissionDeniedError }

  private constructor (readonly entry: TokenEntry, private readonly node: Libp2p, private readonly broker: string, private readonly visibility: number) {}

  /** Starts the token's node. `broker`: a multiaddr of the broker ending in /p2p/<peerId>. */
  static async start (entry: TokenEntry, key: PrivateKey, broker: string, visibility: number): Promise<GatewayPeer> {
    const node = await createNode({ privateKey: key })
    await node.start()
    return new GatewayPeer(entry, node, broker, visibility)
  }

  async producer (): Promise<Producer> {
    this.clients.producer ??= new Producer({ ...this.clientOptions(), window: 1000 })
    return await this.ready(this.clients.producer)
  }

  async admin (): Promise<Admin> {
    this.clients.admin ??= new Admin(this.clientOptions())
    return await this.ready(this.clients.admin)
  }

  /**
   * The consumption of `pattern` in `group`, subscribed at its first poll with a prefetch of
   * `prefetch`. Throws the broker's refusal (PermissionDeniedError, SubscriptionError) or LimitReachedError.
   */
  async poller (pattern: string, group: string, prefetch: number): Promise<Poller> {
    const key = `${group}\n${pattern}`
    let poller = this.pollers.get(key)
    if (poller == null) {
      if (this.pollers.size >= MAX_POLLERS_PER_TOKEN) throw new LimitReachedError(`A token consumes at most ${MAX_POLLERS_PER_TOKEN} pattern and group pairs at once; poll the ones it has, or wait for them to go idle`)
      poller = this.subscribe(pattern, group, prefetch)
      this.pollers.set(key, poller)
      poller.catch(() => { if (this.pollers.get(key) === poller) this.pollers.delete(key) })
    }
    return await poller
  }

  private async subscribe (pattern: string, group: string, prefetch: number): Promise<Poller> {
    if (this.clients.consumer == null) {
      const consumer = this.clients.consumer = new Consumer(this.clientOptions())
      // Its deliveries went back to the broker with the stream: their receipts are void (410), not acked into nothing.
      consumer.events.addEventListener('disconnected', () => {
        for (const held of [...this.receipts.values()]) held.fail(new Error('The gateway\'s connection to the broker was lost'))
      })
    }
    const consumer = await this.ready(this.clients.consumer)
    const poller = new Poller(this.receipts, this.visibility)
    // The consumer's own handler timeout is later than the receipt's: the receipt decides.
    const sub = await consumer.subscribe(pattern, poller.handler, { group, prefetch, timeout: this.visibility + 1_000 })
    poller.onClose = () => { void sub.unsubscribe() }
    return poller
  }

  /** Ends the consumptions idle since `before` (no poll, nothing held by an HTTP client); their unpolled deliveries go back. */
  closeIdle (before: number): void {
    for (const [key, pending] of this.pollers) {
      void pending.then((poller) => {
        if (poller.busy || poller.lastPolled >= before || this.pollers.get(key) !== pending) return
        this.pollers.delete(key)
        poller.close()
      }, () => {})
    }
  }

  /** Whether it holds nothing an HTTP client uses: no consumption, no receipt, no request waiting. */
  get idle (): boolean {
    return this.pollers.size === 0 && this.receipts.size === 0 && this.waiting === 0
  }

  async stop (): Promise<void> {
    for (const pending of this.pollers.values()) void pending.then((p) => { p.close() }, () => {})
    this.pollers.clear()
    await Promise.all(Object.values(this.clients).map(async (c) => { await c.stop() }))
    this.clients = {}
    await this.node.stop()
  }

  private clientOptions (): { node: Libp2p, broker: string, onRetry: (err: Error) => void } {
    return {
      node: this.node,
      broker: this.broker,
      onRetry: (err) => { if (err instanceof PermissionDeniedError) this.refused = { at: Date.now(), error: err } }
    }
  }

  /** `client` once it is connected; a refusal of the ACL at once when one came lately. */
  private async ready<C extends ClientBase<any>> (client: C): Promise<C> {
    this.lastUsed = Date.now()
    if (this.refused != null && Date.now() - this.refused.at < REFUSAL_MEMORY && !client.connected) throw this.refused.error
    // (A timeout signal only when it may wait: one per request cost more than the rest of a publish's HTTP side.)
    await client.ready(client.connected ? {} : { signal: AbortSignal.timeout(CONNECT_TIMEOUT) })
    this.refused = undefined
    return client
  }
}
