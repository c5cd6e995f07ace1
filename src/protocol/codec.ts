/**
 * Byte-level primitives of the wire format (see PROTOCOL.md): a writer that gathers the frames
 * made in one tick and hands them over in as few `send`s as possible (one per filled buffer of at
 * least 64 KiB), a bounds-checked reader, and a
 * splitter that cuts a byte stream into frames with a size limit.
 *
 * Every frame is `length: u32 BE` (bytes that follow) then `type: u8` then the body. Integers are
 * big-endian; a string is `u16 length` + UTF-8; bytes are `u32 length` + raw bytes.
 */
import { MessageTooLargeError, FrameError, LimitReachedError } from '../errors.js'

const encoder = new TextEncoder()
// ignoreBOM: a string that begins with U+FEFF must arrive as it was sent.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const MIN_BUFFER = 64 * 1024
/** Below this many free bytes a fresh buffer is taken for the next frames. */
const MIN_FREE = 4 * 1024
const MAX_STRING = 0xffff
/** Most items in a list field (its length is a u16). */
const MAX_COUNT = 0xffff
/** Longest name (in UTF-8 bytes) that `name()` remembers. */
const MAX_CACHED_NAME = 64

export class FrameWriter {
  private buf = new Uint8Array(MIN_BUFFER)
  private view = new DataView(this.buf.buffer)
  /** Start of the bytes not yet handed to `flush`. */
  private start = 0
  private pos = 0
  private frameStart = -1
  private scheduled = false
  /** Where the last `str` field began, and the last `name` with its encoded field. */
  private lastStrAt = 0
  private lastName: string | undefined
  private lastNameField = new Uint8Array(0)

  /**
   * @param onFlush receives the gathered frames; it owns the bytes from then on
   */
  constructor (private readonly onFlush: (bytes: Uint8Array) => void) {}

  /** Bytes written but not flushed yet. */
  get pending (): number {
    return this.pos - this.start
  }

  begin (type: number): this {
    this.dropUnfinished()
    this.ensure(5)
    this.frameStart = this.pos
    this.pos += 4
    this.buf[this.pos++] = type
    return this
  }

  end (): void {
    this.view.setUint32(this.frameStart, this.pos - this.frameStart - 4)
    this.frameStart = -1
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.flush)
    }
  }

  u8 (n: number): this {
    this.ensure(1)
    this.buf[this.pos++] = n
    return this
  }

  u16 (n: number): this {
    this.ensure(2)
    this.view.setUint16(this.pos, n)
    this.pos += 2
    return this
  }

  /** A list's length as a u16, which would wrap silently past 65,535. */
  private count (n: number, what: string): this {
    if (n > MAX_COUNT) throw new MessageTooLargeError(`${n} ${what} exceed the limit of ${MAX_COUNT}`)
    return this.u16(n)
  }

  u32 (n: number): this {
    this.ensure(4)
    this.view.setUint32(this.pos, n)
    this.pos += 4
    return this
  }

  f64 (n: number): this {
    this.ensure(8)
    this.view.setFloat64(this.pos, n)
    this.pos += 8
    return this
  }

  str (s: string): this {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    this.ensure(2 + s.length * 3)
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + 2))
    if (written > MAX_STRING) throw new MessageTooLargeError(`A string field of ${written} bytes exceeds ${MAX_STRING}`)
    this.view.setUint16(this.pos, written)
    this.lastStrAt = this.pos
    this.pos += 2 + written
    return this
  }

  /** `str` for a string that is likely the same as the last one written this way (a command name). */
  name (s: string): this {
    if (s === this.lastName) {
      const field = this.lastNameField
      this.ensure(field.byteLength)
      this.buf.set(field, this.pos)
      this.pos += field.byteLength
      return this
    }
    this.str(s)
    // The field as just written, length prefix included.
    const length = 2 + this.view.getUint16(this.lastStrAt)
    if (length <= 2 + MAX_CACHED_NAME) {
      this.lastName = s
      this.lastNameField = this.buf.slice(this.pos - length, this.pos)
    }
    return this
  }

  bytes (b: Uint8Array): this {
    this.ensure(4 + b.byteLength)
    this.view.setUint32(this.pos, b.byteLength)
    this.buf.set(b, this.pos + 4)
    this.pos += 4 + b.byteLength
    return this
  }

  strings (list: readonly string[]): this {
    this.count(list.length, 'strings')
    for (const s of list) this.str(s)
    return this
  }

  headers (h: Readonly<Record<string, string>> | undefined): this {
    if (h == null) return this.u16(0)
    const keys = Object.keys(h)
    this.count(keys.length, 'headers')
    for (const k of keys) this.str(k).str(h[k])
    return this
  }

  readonly flush = (): void => {
    this.scheduled = false
    this.dropUnfinished()
    if (this.pos === this.start) return
    const out = this.buf.subarray(this.start, this.pos)
    this.start = this.pos
    if (this.buf.byteLength - this.pos < MIN_FREE) this.replace(MIN_BUFFER)
    this.onFlush(out)
  }

  /**
   * Frames are written whole in one synchronous call: one begun and not ended here was abandoned
   * by a field that threw (a string too long). Its bytes go, or the peer would read them as a frame.
   */
  private dropUnfinished (): void {
    if (this.frameStart < 0) return
    this.pos = this.frameStart
    this.frameStart = -1
  }

  private ensure (n: number): void {
    if (this.pos + n <= this.buf.byteLength) return
    // Hand over the frames already complete, so only a frame in progress moves to the new buffer.
    const complete = this.frameStart >= 0 ? this.frameStart : this.pos
    if (complete > this.start) {
      const out = this.buf.subarray(this.start, complete)
      this.start = complete
      this.onFlush(out)
    }
    this.replace(Math.max(MIN_BUFFER, 2 * (this.pos - this.start + n)))
  }

  private replace (size: number): void {
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(this.start, this.pos))
    if (this.frameStart >= 0) this.frameStart -= this.start
    this.pos -= this.start
    this.start = 0
    this.buf = next
    this.view = new DataView(next.buffer)
  }
}

/**
 * Reads the fields of one frame. The splitter keeps one reader and points it at each frame in
 * turn (`reset`), so a frame costs no reader or DataView of its own.
 */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0)
  private view = new DataView(this.buf.buffer)
  private end = 0
  pos = 0
  /** The last string read by `name()`, and its bytes: commands repeat, so most are not decoded again. */
  private lastName = ''
  private lastNameBytes = new Uint8Array(0)

  reset (buf: Uint8Array, start: number, end: number, view?: DataView): this {
    if (buf !== this.buf) {
      this.buf = buf
      this.view = view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    }
    this.pos = start
    this.end = end
    return this
  }

  get remaining (): number {
    return this.end - this.pos
  }

  private need (n: number): void {
    if (this.pos + n > this.end) throw new FrameError('Frame is shorter than its fields')
  }

  u8 (): number {
    this.need(1)
    return this.buf[this.pos++]
  }

  u16 (): number {
    this.need(2)
    const n = this.view.getUint16(this.pos)
    this.pos += 2
    return n
  }

  u32 (): number {
    this.need(4)
    const n = this.view.getUint32(this.pos)
    this.pos += 4
    return n
  }

  f64 (): number {
    this.need(8)
    const n = this.view.getFloat64(this.pos)
    this.pos += 8
    return n
  }

  str (): string {
    const len = this.u16()
    this.need(len)
    let s: string
    try {
      s = decoder.decode(this.buf.subarray(this.pos, this.pos + len))
    } catch {
      throw new FrameError('A string field is not valid UTF-8')
    }
    this.pos += len
    return s
  }

  /** A string that is likely the same as the last one read this way (a command name). */
  name (): string {
    const len = this.u16()
    this.need(len)
    const last = this.lastNameBytes
    if (len === last.byteLength) {
      let same = true
      for (let i = 0; i < len; i++) {
        if (this.buf[this.pos + i] !== last[i]) {
          same = false
          break
        }
      }
      if (same) {
        this.pos += len
        return this.lastName
      }
    }
    this.pos -= 2
    const s = this.str()
    if (len <= MAX_CACHED_NAME) {
      this.lastName = s
      this.lastNameBytes = this.buf.slice(this.pos - len, this.pos)
    }
    return s
  }

  /**
   * A copy, so a queued message never pins the (possibly large) chunk it arrived in; but the bytes
   * themselves when they fill at least half of that chunk (a large payload, whose frame was joined
   * into a buffer of its own): a copy of a megabyte per message is garbage the broker's RSS
   * carried until V8 collected it.
   */
  bytes (): Uint8Array {
    const len = this.u32()
    this.need(len)
    const b = len * 2 >= this.buf.buffer.byteLength ? this.buf.subarray(this.pos, this.pos + len) : this.buf.slice(this.pos, this.pos + len)
    this.pos += len
    return b
  }

  strings (): string[] {
    const n = this.u16()
    const list = new Array<string>(n)
    for (let i = 0; i < n; i++) list[i] = this.str()
    return list
  }

  headers (): Record<string, string> | undefined {
    const n = this.u16()
    if (n === 0) return undefined
    const h: Record<string, string> = {}
    for (let i = 0; i < n; i++) {
      const k = this.str()
      // Assigning "__proto__" would set the object's prototype (a string: ignored), not a header.
      if (k === '__proto__') Object.defineProperty(h, k, { value: this.str(), enumerable: true, writable: true, configurable: true })
      else h[k] = this.str()
    }
    return h
  }

  /** A frame's body must be used up exactly: trailing bytes mean a malformed or foreign frame. */
  done (): void {
    if (this.pos !== this.end) throw new FrameError(`Frame has ${this.end - this.pos} unexpected trailing bytes`)
  }
}

/**
 * Bytes of partly received frames, shared by every stream of a broker: what a peer sending large
 * frames but for their last bytes makes the broker hold. A stream whose partial frame would take
 * the total past `limit` is ended; the first `free` bytes of each stream's partial frame are not
 * counted (every frame arrives in pieces; small ones must never be refused).
 */
export class PartialFrameBudget {
  used = 0

  constructor (readonly limit: number, readonly free = 64 * 1024) {}

  /** Takes `bytes` more; false (and nothing taken) when that would pass the limit. */
  take (bytes: number): boolean {
    if (this.used + bytes > this.limit) return false
    this.used += bytes
    return true
  }

  give (bytes: number): void {
    this.used -= bytes
  }
}

/**
 * Cuts incoming chunks into frames. Partial frames are kept as a list of chunks and joined once,
 * when the whole frame is there, so a large frame arriving in many pieces costs one copy. A
 * paused splitter keeps what it is given (and the rest of the chunk it was cutting) until resumed.
 */
export class FrameSplitter {
  private parts: Uint8Array[] = []
  private partsLength = 0
  /** Bytes of the kept parts counted in the budget. */
  private charged = 0
  private paused = false
  private readonly reader = new FrameReader()

  constructor (
    private readonly maxFrameLength: number,
    private readonly onFrame: (type: number, reader: FrameReader) => void,
    private readonly budget?: PartialFrameBudget
  ) {}

  /** Throws FrameError or MessageTooLargeError (LimitReachedError past the budget); the caller ends the stream. */
  push (chunk: Uint8Array | { subarray: () => Uint8Array }): void {
    let buf = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    if (this.partsLength > 0 || this.paused) {
      this.parts.push(buf)
      this.partsLength += buf.byteLength
      this.charge()
      if (this.paused || this.partsLength < 4 || this.partsLength < 4 + this.checkedLength()) return
      buf = this.takeParts()
    }
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    let pos = 0
    while (buf.byteLength - pos >= 4 && !this.paused) {
      const length = view.getUint32(pos)
      this.check(length)
      if (buf.byteLength - pos - 4 < length) break
      const start = pos + 4
      pos = start + length
      this.onFrame(buf[start], this.reader.reset(buf, start + 1, pos, view))
    }
    if (pos < buf.byteLength) {
      const rest = buf.subarray(pos)
      this.parts.push(rest)
      this.partsLength = rest.byteLength
      if (rest.byteLength >= 4) this.checkedLength()
      this.charge()
    }
  }

  /** Stops cutting frames (after the one being handled) until `resume`. */
  pause (): void {
    this.paused = true
  }

  /** Cuts the frames kept while paused (which may pause it again). Throws as `push` does. */
  resume (): void {
    if (!this.paused) return
    this.paused = false
    if (this.partsLength > 0) this.push(this.takeParts())
  }

  get isPaused (): boolean {
    return this.paused
  }

  /** True when a frame has begun but not all of it has arrived. */
  get midFrame (): boolean {
    return this.partsLength > 0
  }

  /** Drops what is kept (the stream ended) and gives its bytes back to the budget. */
  clear (): void {
    this.parts = []
    this.partsLength = 0
    this.budget?.give(this.charged)
    this.charged = 0
  }

  private takeParts (): Uint8Array {
    const buf = join(this.parts, this.partsLength)
    this.clear()
    return buf
  }

  /**
   * Counts the kept bytes past the free allowance in the budget; throws past the budget. Not while
   * paused: what a paused stream keeps is whole frames waiting their turn (bounded by its yamux
   * window), counted again, as a partial frame, once it is cut on.
   */
  private charge (): void {
    const budget = this.budget
    if (budget == null || this.paused) return
    const due = Math.max(0, this.partsLength - budget.free)
    if (due <= this.charged) return
    if (!budget.take(due - this.charged)) {
      throw new LimitReachedError(`The broker holds ${budget.used} bytes of partly received frames, its limit (maxPartialFrameBytes): this stream's ${this.partsLength} bytes of unfinished frames are dropped; send them again`)
    }
    this.charged = due
  }

  /** The length of the frame that the kept parts begin, checked against the limit. */
  private checkedLength (): number {
    // Join the parts once while the header is split, not again at every chunk.
    if (this.parts[0].byteLength < 4) this.parts = [join(this.parts, this.partsLength)]
    const head = this.parts[0]
    const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0)
    this.check(length)
    return length
  }

  private check (length: number): void {
    if (length === 0) throw new FrameError('Empty frame')
    if (length > this.maxFrameLength) {
      throw new MessageTooLargeError(`Frame of ${length} bytes exceeds the limit of ${this.maxFrameLength}`)
    }
  }
}

/** The parts as one array (the part itself when there is one). */
export function join (parts: Uint8Array[], length = parts.reduce((n, p) => n + p.byteLength, 0)): Uint8Array {
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}
