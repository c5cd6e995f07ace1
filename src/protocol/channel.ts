/**
 * A framed channel over one long-lived libp2p stream: frames in, decoded and validated with a size
 * limit; frames out, coalesced into one `send` per tick. Any decoding error ends the stream with
 * the reason (never an uncaught throw), and `onClose` tells the owner once.
 *
 * Nothing here waits for `drain` (and `stream.onDrain()` is broken in @libp2p/utils 7.4 anyway):
 * the bytes written are bounded by the protocol itself, consumer credit and the producer window.
 */
import type { Stream } from '@libp2p/interface'
import { FrameSplitter, FrameWriter, type FrameReader } from './codec.js'

export interface ChannelInit<In> {
  /** Largest frame accepted, in bytes; a larger one ends the stream. */
  maxFrameLength: number
  /** Decodes one frame of the kinds this side accepts; throws FrameError on anything else. */
  read: (type: number, reader: FrameReader) => In
  onFrame: (frame: In) => void
  /** Called after the frames of one incoming chunk, to answer a batch with one frame. */
  onBatchEnd?: () => void
  /** Called once when the stream ends, with the reason if it was not an orderly close. */
  onClose: (err?: Error) => void
}

export class FramedChannel<In> {
  readonly writer: FrameWriter
  private readonly splitter: FrameSplitter
  private closed = false

  constructor (readonly stream: Stream, private readonly init: ChannelInit<In>) {
    this.writer = new FrameWriter(this.send)
    this.splitter = new FrameSplitter(init.maxFrameLength, (type, reader) => {
      init.onFrame(init.read(type, reader))
    })
    stream.addEventListener('message', (evt) => {
      if (this.closed) return
      try {
        this.splitter.push(evt.data)
        this.init.onBatchEnd?.()
      } catch (err) {
        this.close(err as Error)
      }
    })
    stream.addEventListener('close', (evt) => { this.ended(evt.error) })
    stream.addEventListener('remoteCloseWrite', () => { this.close() })
    // libp2p hands a stream over after protocol negotiation and a peer store update: one that was
    // reset, closed, or half-closed by the remote meanwhile has fired its events already, so its
    // state is all that says so. Its buffered frames are dropped unanswered (a consumer that closed
    // its side could never settle a delivery; a producer resends what was not confirmed). The
    // owner is told on the next microtask, once it holds this channel.
    const gone = stream.status !== 'open' || stream.remoteWriteStatus !== 'writable'
    if (gone) {
      this.closed = true
      queueMicrotask(() => {
        if (stream.status === 'open') stream.abort(new Error('The stream ended while it was set up'))
        this.init.onClose()
      })
    }
  }

  get isOpen (): boolean {
    return !this.closed
  }

  /** Ends the stream: orderly (unsent frames are flushed first) or, with a reason, at once. */
  close (reason?: Error): void {
    if (this.closed) return
    if (reason != null) {
      this.stream.abort(reason)
      this.ended(reason)
      return
    }
    this.writer.flush()
    this.stream.close().catch((err: Error) => { this.stream.abort(err) })
    this.ended()
  }

  private ended (err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.init.onClose(err)
  }

  private readonly send = (bytes: Uint8Array): void => {
    if (this.closed) return
    if (this.stream.writeStatus !== 'writable') {
      // Closed under us without an event this channel saw: it is gone all the same.
      this.ended(new Error(`The stream is ${this.stream.status}`))
      return
    }
    try {
      // A false return means the stream buffers the bytes until it drains. What is written is
      // bounded by the protocol (consumer credit, producer window), so there is no need to wait.
      this.stream.send(bytes)
    } catch (err) {
      this.close(err as Error)
    }
  }
}
