/**
 * What producer and consumer share: a libp2p node (their own, or one passed in), the link that
 * keeps one stream to the broker open, and the framed channel on the current stream.
 */
import { DEFAULT_MAX_PAYLOAD, FRAME_OVERHEAD_LIMIT } from '../constants.js'
import { ClosedError, PermissionDeniedError } from '../errors.js'
import { FramedChannel } from '../protocol/channel.js'
import { FrameType } from '../protocol/frames.js'
import { BrokerLink, parseBrokerAddress, type BrokerLookup } from './broker-link.js'
import type { FrameReader } from '../protocol/codec.js'
import type { Libp2p, Stream } from '@libp2p/interface'

export interface ClientOptions {
  /** The broker: its peer ID (on this host) or a multiaddr ending in /p2p/<peerId>. */
  broker: string
  /** The libp2p node to use (`createProducer` and the like build one when given none). */
  node: Libp2p
  /**
   * Finds a broker given by peer ID (on Node: the address book of this host).
   * @default undefined (`broker` must then be a multiaddr ending in /p2p/<peerId>)
   */
  lookup?: BrokerLookup
  /**
   * Relays (`p2pmq relay`) a broker given by peer ID is reached through, each a multiaddr ending
   * in /p2p/<relay peer ID>: after the address book, the broker is dialed at
   * `<relay>/p2p-circuit/p2p/<broker>`, then looked up in the relays' DHT.
   * @default [] (the address book only)
   */
  relays?: string[]
  /**
   * Largest frame accepted from the broker, in bytes.
   * @default 67174400 (64 MiB, the largest payload a broker takes, plus 64 KiB)
   */
  maxFrameLength?: number
  /**
   * Told when a dial fails and will be retried.
   * @default undefined (retries silently)
   */
  onRetry?: (err: Error, retryIn: number) => void
  /**
   * Stop the node too when the client stops (set when the client built the node).
   * @default false
   */
  ownsNode?: boolean
}

/** The options of `ready()`. */
export interface ReadyOptions {
  /**
   * Stops the wait: `ready()` rejects with the signal's reason.
   * @default undefined (waits until ready, or until the client stops)
   */
  signal?: AbortSignal
}

/** `In`: the frames the broker sends this client; each names its type, so Welcome is spotted without a cast. */
export abstract class ClientBase<In extends { type: FrameType }> {
  readonly node: Libp2p
  protected channel?: FramedChannel<In>
  protected stopped = false
  private readonly link: BrokerLink
  private readonly ownsNode: boolean
  private readonly maxFrameLength: number
  /** The broker has greeted the current stream (its first frame, Welcome). */
  private welcomed = false
  private readonly readyWaiters = new Set<{ resolve: () => void, reject: (err: Error) => void }>()

  protected abstract readFrame: (type: number, reader: FrameReader) => In
  protected abstract onFrame (frame: In): void
  protected abstract onOpen (channel: FramedChannel<In>): void
  protected abstract onDisconnect (): void

  constructor (options: ClientOptions, protocol: string) {
    this.node = options.node
    this.ownsNode = options.ownsNode ?? false
    this.maxFrameLength = options.maxFrameLength ?? DEFAULT_MAX_PAYLOAD * 64 + FRAME_OVERHEAD_LIMIT
    this.link = new BrokerLink({
      node: options.node,
      broker: parseBrokerAddress(options.broker),
      protocol,
      lookup: options.lookup,
      relays: options.relays,
      onRetry: (err, retryIn) => {
        // Refused by the broker's ACL: waiting would only hide it.
        if (err instanceof PermissionDeniedError) for (const w of [...this.readyWaiters]) w.reject(err)
        options.onRetry?.(err, retryIn)
      },
      onStream: (stream) => { this.open(stream) }
    })
  }

  /** The peer ID of this client. */
  get peerId (): string {
    return this.node.peerId.toString()
  }

  get connected (): boolean {
    return this.channel?.isOpen === true
  }

  /**
   * Resolves once a stream to the broker is open and the broker has greeted it (so the broker's
   * limits are known); at once while that is so. After a disconnect it waits for the reconnect.
   * Rejects with ClosedError if the client stops first, with PermissionDeniedError when the broker
   * refuses this peer ID at connection time (the client keeps trying: a later `ready()` waits
   * again), or with the signal's reason.
   */
  async ready (options: ReadyOptions = {}): Promise<void> {
    if (this.stopped) throw new ClosedError('The client is stopped')
    if (this.welcomed && this.connected) return
    const { signal } = options
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { waiter.reject(signal?.reason as Error) }
      const waiter = {
        resolve: () => { this.readyWaiters.delete(waiter); signal?.removeEventListener('abort', onAbort); resolve() },
        reject: (err: Error) => { this.readyWaiters.delete(waiter); signal?.removeEventListener('abort', onAbort); reject(err) }
      }
      this.readyWaiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const w of [...this.readyWaiters]) w.reject(new ClosedError('The client was stopped'))
    this.link.stop()
    this.channel?.close()
    if (this.ownsNode) await this.node.stop()
  }

  private open (stream: Stream): void {
    const channel: FramedChannel<In> = new FramedChannel<In>(stream, {
      maxFrameLength: this.maxFrameLength,
      read: (type, reader) => this.readFrame(type, reader),
      onFrame: (frame) => {
        this.onFrame(frame)
        if (frame.type === FrameType.Welcome && this.channel === channel) {
          this.welcomed = true
          for (const w of [...this.readyWaiters]) w.resolve()
        }
      },
      onClose: () => {
        if (this.channel === channel) {
          this.channel = undefined
          this.welcomed = false
          if (!this.stopped) this.onDisconnect()
        }
      }
    })
    this.channel = channel
    this.welcomed = false
    this.onOpen(channel)
  }
}
