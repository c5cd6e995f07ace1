/**
 * What producer and consumer share: a libp2p node (their own, or one passed in), the link that
 * keeps one stream to the broker open, and the framed channel on the current stream.
 */
import { DEFAULT_MAX_PAYLOAD, FRAME_OVERHEAD_LIMIT } from '../constants.js'
import { FramedChannel } from '../protocol/channel.js'
import { BrokerLink, parseBrokerAddress, type BrokerLookup } from './broker-link.js'
import type { FrameReader } from '../protocol/codec.js'
import type { Libp2p, Stream } from '@libp2p/interface'

export interface ClientOptions {
  /** The broker: its peer ID (on this host) or a multiaddr ending in /p2p/<peerId>. */
  broker: string
  /** The libp2p node to use; by default the client builds and owns one. */
  node: Libp2p
  /** Finds a broker given by peer ID (on Node: the address book of this host). */
  lookup?: BrokerLookup
  /** Largest frame accepted from the broker, in bytes. */
  maxFrameLength?: number
  /** Told when a dial fails and will be retried. */
  onRetry?: (err: Error, retryIn: number) => void
  /** Stop the node too when the client stops (set when the client built the node). */
  ownsNode?: boolean
}

export abstract class ClientBase<In> {
  readonly node: Libp2p
  protected channel?: FramedChannel<In>
  protected stopped = false
  private readonly link: BrokerLink
  private readonly ownsNode: boolean
  private readonly maxFrameLength: number

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
      onRetry: options.onRetry,
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

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.link.stop()
    this.channel?.close()
    if (this.ownsNode) await this.node.stop()
  }

  private open (stream: Stream): void {
    const channel: FramedChannel<In> = new FramedChannel<In>(stream, {
      maxFrameLength: this.maxFrameLength,
      read: (type, reader) => this.readFrame(type, reader),
      onFrame: (frame) => { this.onFrame(frame) },
      onClose: () => {
        if (this.channel === channel) {
          this.channel = undefined
          if (!this.stopped) this.onDisconnect()
        }
      }
    })
    this.channel = channel
    this.onOpen(channel)
  }
}
