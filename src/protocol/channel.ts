/**
 * A framed channel over one long-lived libp2p stream: frames in, decoded and validated with a size
 * limit; frames out, coalesced into one `send` per tick. Any decoding error ends the stream with
 * the reason (never an uncaught throw), and `onClose` tells the owner once.
 *
 * Backpressure: once `stream.send()` returns false the channel holds what the writer flushes and
 * sends it in one piece on the stream's `drain` event (listened for directly: `stream.onDrain()`
 * resolves at once after its first use in @libp2p/utils 7.4). A channel built with
 * `pauseReadingAbove` also stops reading its stream while more than that many bytes wait to go
 * out, for streams whose incoming frames each ask for an outgoing one: a peer that does not read
 * then cannot make this side buffer without bound. Its owner can also hold reading (`holdReading`),
 * e.g. while it runs as many requests as it allows at once: the frames of the chunk being cut wait
 * in the splitter, and the stream is paused.
 */
import type { Stream } from '@libp2p/interface'
import { concat } from 'uint8arrays/concat'
import { FrameSplitter, FrameWriter, type FrameReader, type PartialFrameBudget } from './codec.js'

/** Unsent bytes (beyond one largest frame) above which a stream that answers what it reads stops reading. */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024

export interface ChannelInit<In> {
  /** Largest frame accepted, in bytes; a larger one ends the stream. */
  maxFrameLength: number
  /** Decodes one frame of the kinds this side accepts; throws FrameError on anything else. */
  read: (type: number, reader: FrameReader) => In
  onFrame: (frame: In) => void
  /**
   * The broker-wide budget for bytes of partly received frames; a stream that would pass it is ended.
   * @default undefined (no budget but maxFrameLength)
   */
  partialFrames?: PartialFrameBudget
  /** Called after the frames of one incoming chunk, to answer a batch with one frame. */
  onBatchEnd?: () => void
  /** Called once when the stream ends, with the reason if it was not an orderly close. */
  onClose: (err?: Error) => void
  /**
   * Stop reading the stream while more bytes than this wait to be sent, and read again once they
   * are sent. For a stream whose incoming frames each cause an outgoing one (requests, publishes);
   * never for one whose incoming frames free what is outgoing (settles free a consumer's credit).
   * @default undefined (always read)
   */
  pauseReadingAbove?: number
  /**
   * Told when the stream starts waiting for `drain` (true) and once it has drained (false), so a
   * sender that can hold back (the broker's deliveries) stops and starts again.
   */
  onCongestion?: (congested: boolean) => void
}

export class FramedChannel<In> {
  readonly writer: FrameWriter
  private readonly splitter: FrameSplitter
  private closed = false
  /** Set while the stream waits for `drain`: flushed bytes are held here meanwhile. */
  private waitingForDrain = false
  private held: Uint8Array[] = []
  private heldBytes = 0
  /** Reading stopped because too much waits to be sent, or because the owner holds it. */
  private readingPaused = false
  private readingHeld = false

  constructor (readonly stream: Stream, private readonly init: ChannelInit<In>) {
    this.writer = new FrameWriter(this.send)
    this.splitter = new FrameSplitter(init.maxFrameLength, (type, reader) => {
      init.onFrame(init.read(type, reader))
    }, init.partialFrames)
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
    stream.addEventListener('drain', this.drained)
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

  /** Bytes written to this channel that the peer has not taken yet (held here or in the stream). */
  get buffered (): number {
    return this.heldBytes + this.stream.writeBufferLength + this.writer.pending
  }

  /** True while the stream waits for `drain`: an owner may skip frames it can drop (a stats tick). */
  get congested (): boolean {
    return this.waitingForDrain
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
    // What is held goes to the stream's own buffer, which an orderly close sends before it ends.
    if (this.heldBytes > 0 && this.stream.writeStatus === 'writable') this.stream.send(this.takeHeld())
    this.stream.close().catch((err: Error) => { this.stream.abort(err) })
    this.ended()
  }

  private ended (err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.splitter.clear()
    this.init.onClose(err)
  }

  private readonly send = (bytes: Uint8Array): void => {
    if (this.closed) return
    if (this.waitingForDrain) {
      this.held.push(bytes)
      this.heldBytes += bytes.byteLength
      this.applyPressure()
      return
    }
    if (this.stream.writeStatus !== 'writable') {
      // Closed under us without an event this channel saw: it is gone all the same.
      this.ended(new Error(`The stream is ${this.stream.status}`))
      return
    }
    try {
      // False: the stream keeps these bytes but wants no more until it drains.
      if (!this.stream.send(bytes)) {
        this.waitingForDrain = true
        this.applyPressure()
        this.init.onCongestion?.(true)
      }
    } catch (err) {
      this.close(err as Error)
    }
  }

  private readonly drained = (): void => {
    if (this.closed || !this.waitingForDrain) return
    this.waitingForDrain = false
    try {
      if (this.heldBytes > 0 && !this.stream.send(this.takeHeld())) this.waitingForDrain = true
    } catch (err) {
      this.close(err as Error)
      return
    }
    if (this.waitingForDrain) return
    if (this.readingPaused) {
      this.readingPaused = false
      this.updateReading()
    }
    this.init.onCongestion?.(false)
  }

  /** Stops reading (after the frame being handled) until `resumeReading`. */
  holdReading (): void {
    if (this.readingHeld) return
    this.readingHeld = true
    this.updateReading()
  }

  /** Reads again (unless too much waits to be sent): the frames kept meanwhile first. */
  resumeReading (): void {
    if (!this.readingHeld) return
    this.readingHeld = false
    this.updateReading()
  }

  /** Pauses or resumes the splitter and the stream to match why reading should stop, if at all. */
  private updateReading (): void {
    if (this.closed) return
    if (this.readingPaused || this.readingHeld) {
      this.splitter.pause()
      if (this.stream.readStatus === 'readable') this.stream.pause()
      return
    }
    if (this.splitter.isPaused) {
      try {
        this.splitter.resume()
        this.init.onBatchEnd?.()
      } catch (err) {
        this.close(err as Error)
        return
      }
      // A frame handled there may have stopped reading again.
      if (this.readingPaused || this.readingHeld || this.closed) return
    }
    if (this.stream.status === 'open' && this.stream.readStatus === 'paused') this.stream.resume()
  }

  private takeHeld (): Uint8Array {
    const bytes = this.held.length === 1 ? this.held[0] : concat(this.held, this.heldBytes)
    this.held = []
    this.heldBytes = 0
    return bytes
  }

  private applyPressure (): void {
    const limit = this.init.pauseReadingAbove
    if (limit == null || this.readingPaused || this.buffered <= limit) return
    this.readingPaused = true
    this.updateReading()
  }
}
