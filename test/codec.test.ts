import { describe, expect, it } from 'vitest'
import { FrameSplitter, FrameWriter, type FrameReader } from '../src/protocol/codec.js'
import {
  FrameType, readBrokerToConsumerFrame, readBrokerToProducerFrame, readConsumerFrame, readProducerFrame,
  writeAck, writeAnswer, writeConfirm, writeDeliver, writeHello, writeNack, writeProducerRef, writePublish, writeReject, writeResult,
  writeSubscribe, writeSubscribed, writeUnsubscribe, writeWelcome
} from '../src/protocol/frames.js'
import { ErrorCode, MessageTooLargeError, FrameError } from '../src/errors.js'
import { decodePayload, encodePayload } from '../src/payload.js'

type Read = (type: number, r: FrameReader) => unknown

const payload = new Uint8Array([0, 1, 2, 254, 255])
const message = { command: 'users.created', id: 'id-ü-1', headers: { trace: 'abc', ключ: '✓ 🎉' }, kind: 3, payload }

const cases: Array<{ name: string, write: (w: FrameWriter) => void, read: Read, expected: unknown }> = [
  {
    name: 'Publish',
    write: (w) => writePublish(w, 7, 1, message),
    read: readProducerFrame,
    expected: { type: FrameType.Publish, seq: 7, flags: 1, delay: 0, ttl: 0, ...message }
  },
  {
    name: 'Publish with a delay and a ttl',
    write: (w) => writePublish(w, 8, 1 | 2 | 4, message, 1500, 0xffffffff),
    read: readProducerFrame,
    expected: { type: FrameType.Publish, seq: 8, flags: 7, delay: 1500, ttl: 0xffffffff, ...message }
  },
  {
    name: 'Publish with a ttl only',
    write: (w) => writePublish(w, 9, 4, message, 1500, 60_000),
    read: readProducerFrame,
    expected: { type: FrameType.Publish, seq: 9, flags: 4, delay: 0, ttl: 60_000, ...message }
  },
  {
    name: 'Publish without headers',
    write: (w) => writePublish(w, 0xffffffff, 0, { ...message, headers: undefined, payload: new Uint8Array(0) }),
    read: readProducerFrame,
    expected: { type: FrameType.Publish, seq: 0xffffffff, flags: 0, delay: 0, ttl: 0, ...message, headers: undefined, payload: new Uint8Array(0) }
  },
  { name: 'Hello', write: (w) => writeHello(w, 'session-ü'), read: readProducerFrame, expected: { type: FrameType.Hello, session: 'session-ü' } },
  { name: 'Confirm', write: (w) => writeConfirm(w, 42), read: readBrokerToProducerFrame, expected: { type: FrameType.Confirm, seq: 42 } },
  { name: 'Reject', write: (w) => writeReject(w, 3, 2, 'broker full'), read: readBrokerToProducerFrame, expected: { type: FrameType.Reject, seq: 3, code: 2, reason: 'broker full' } },
  {
    name: 'Result',
    write: (w) => writeResult(w, 'id-1', 'consumer-peer', 1, 65535, 2, payload),
    read: readBrokerToProducerFrame,
    expected: { type: FrameType.Result, id: 'id-1', consumer: 'consumer-peer', status: 1, attempts: 65535, kind: 2, payload }
  },
  { name: 'Welcome (producer)', write: (w) => writeWelcome(w, 1048576, '1.0.0'), read: readBrokerToProducerFrame, expected: { type: FrameType.Welcome, maxPayload: 1048576, version: '1.0.0' } },
  {
    name: 'Subscribe',
    write: (w) => writeSubscribe(w, 5, 1000, 1, 'billing', ['users.*', 'orders.#']),
    read: readConsumerFrame,
    expected: { type: FrameType.Subscribe, subId: 5, prefetch: 1000, flags: 1, expires: 0, group: 'billing', patterns: ['users.*', 'orders.#'] }
  },
  {
    name: 'Subscribe with an expiry',
    write: (w) => writeSubscribe(w, 6, 10, 1, 'tab', ['#'], 600_000),
    read: readConsumerFrame,
    expected: { type: FrameType.Subscribe, subId: 6, prefetch: 10, flags: 3, expires: 600_000, group: 'tab', patterns: ['#'] }
  },
  { name: 'Unsubscribe', write: (w) => writeUnsubscribe(w, 5), read: readConsumerFrame, expected: { type: FrameType.Unsubscribe, subId: 5 } },
  { name: 'Ack', write: (w) => writeAck(w, 123456), read: readConsumerFrame, expected: { type: FrameType.Ack, tag: 123456 } },
  { name: 'Answer', write: (w) => writeAnswer(w, 9, 3, payload), read: readConsumerFrame, expected: { type: FrameType.Answer, tag: 9, kind: 3, payload } },
  { name: 'Nack', write: (w) => writeNack(w, 9, 1, 'handler threw'), read: readConsumerFrame, expected: { type: FrameType.Nack, tag: 9, flags: 1, error: 'handler threw' } },
  { name: 'Subscribed', write: (w) => writeSubscribed(w, 5, ''), read: readBrokerToConsumerFrame, expected: { type: FrameType.Subscribed, subId: 5, error: '', code: ErrorCode.Unspecified } },
  { name: 'Subscribed with a code', write: (w) => writeSubscribed(w, 6, 'taken', ErrorCode.Conflict), read: readBrokerToConsumerFrame, expected: { type: FrameType.Subscribed, subId: 6, error: 'taken', code: ErrorCode.Conflict } },
  {
    name: 'Deliver',
    write: (w) => writeDeliver(w, 5, 77, 3, 1, 1712345678901.5, 4096, message),
    read: readBrokerToConsumerFrame,
    expected: { type: FrameType.Deliver, subId: 5, tag: 77, attempt: 3, flags: 1, timestamp: 1712345678901.5, producer: 4096, ...message }
  },
  { name: 'ProducerRef', write: (w) => writeProducerRef(w, 4096, 'producer-peer'), read: readBrokerToConsumerFrame, expected: { type: FrameType.ProducerRef, ref: 4096, peer: 'producer-peer' } },
  { name: 'Welcome (consumer)', write: (w) => writeWelcome(w, 1, 'v'), read: readBrokerToConsumerFrame, expected: { type: FrameType.Welcome, maxPayload: 1, version: 'v' } }
]

function concat (chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

/** Runs `write` on a fresh writer, flushes, and returns the flushed chunks. */
function flushed (write: (w: FrameWriter) => void): Uint8Array[] {
  const chunks: Uint8Array[] = []
  const w = new FrameWriter((b) => chunks.push(b))
  write(w)
  w.flush()
  expect(w.pending).toBe(0)
  return chunks
}

/** Pushes `bytes` in chunks of `size` and reads every frame with `read` (or the next of `reads`). */
function split (bytes: Uint8Array, size: number, reads: Read[], max = 16 * 1024 * 1024): unknown[] {
  const frames: unknown[] = []
  const splitter = new FrameSplitter(max, (type, r) => frames.push(reads[frames.length % reads.length](type, r)))
  for (let i = 0; i < bytes.byteLength; i += size) splitter.push(bytes.subarray(i, i + size))
  expect(splitter.midFrame).toBe(false)
  return frames
}

const frame = (...bytes: number[]): Uint8Array => new Uint8Array(bytes)

describe('FrameWriter + FrameSplitter', () => {
  it.each(cases)('round-trips $name', ({ write, read, expected }) => {
    const chunks = flushed(write)
    expect(chunks).toHaveLength(1)
    expect(split(chunks[0], chunks[0].byteLength, [read])).toEqual([expected])
  })

  it('drops a frame a field threw in, so the frames around it still read (a header over 64 KiB, more than 65,535 headers)', () => {
    const many: Record<string, string> = {}
    for (let i = 0; i < 65_536; i++) many[`h${i}`] = ''
    const chunks = flushed((w) => {
      cases[0].write(w)
      expect(() => { writePublish(w, 8, 0, { ...message, headers: { big: 'x'.repeat(70_000) } }) }).toThrow(MessageTooLargeError)
      expect(() => { writePublish(w, 9, 0, { ...message, headers: many }) }).toThrow(MessageTooLargeError)
      expect(() => { writeSubscribe(w, 1, 10, 0, 'g', new Array<string>(65_536).fill('p')) }).toThrow(MessageTooLargeError)
      cases[0].write(w)
    })
    const bytes = concat(chunks)
    expect(split(bytes, bytes.byteLength, [cases[0].read])).toEqual([cases[0].expected, cases[0].expected])
  })

  it('keeps a header named __proto__ as a header', () => {
    const headers = JSON.parse('{"__proto__":"x","constructor":"y"}') as Record<string, string>
    const chunks = flushed((w) => { writePublish(w, 1, 0, { ...message, headers }) })
    const [frame] = split(chunks[0], chunks[0].byteLength, [readProducerFrame]) as Array<{ headers: Record<string, string> }>
    expect(Object.entries(frame.headers)).toEqual([['__proto__', 'x'], ['constructor', 'y']])
    expect(Object.getPrototypeOf(frame.headers)).toBe(Object.prototype)
  })

  it('drops a frame a field threw in when nothing follows it', () => {
    const chunks = flushed((w) => {
      cases[0].write(w)
      expect(() => { writeHello(w, 'x'.repeat(70_000)) }).toThrow(MessageTooLargeError)
    })
    const bytes = concat(chunks)
    expect(split(bytes, bytes.byteLength, [cases[0].read])).toEqual([cases[0].expected])
  })

  it('coalesces many frames into one flush and splits them back', () => {
    const chunks = flushed((w) => { for (const c of cases) c.write(w) })
    expect(chunks).toHaveLength(1)
    expect(split(chunks[0], chunks[0].byteLength, cases.map((c) => c.read))).toEqual(cases.map((c) => c.expected))
  })

  it('reassembles frames arriving in 1-byte chunks', () => {
    const bytes = concat(flushed((w) => { for (const c of cases) c.write(w) }))
    expect(split(bytes, 1, cases.map((c) => c.read))).toEqual(cases.map((c) => c.expected))
  })

  it('carries a 2 MiB payload across many chunks', () => {
    const big = new Uint8Array(2 * 1024 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff
    const bytes = concat(flushed((w) => {
      writeConfirm(w, 1)
      writePublish(w, 2, 0, { ...message, payload: big })
      writeConfirm(w, 3)
    }))
    const frames = split(bytes, 65_537, [readBrokerToProducerFrame, readProducerFrame, readBrokerToProducerFrame]) as any[]
    expect(frames.map((f) => f.seq)).toEqual([1, 2, 3])
    expect(frames[1].payload.byteLength).toBe(big.byteLength)
    expect(Buffer.from(frames[1].payload).equals(Buffer.from(big))).toBe(true)
  })

  // When a chunk ends inside a 4-byte length header, every later chunk of that frame re-joins all
  // parts so far (checkedLength): quadratic in the frame size, so a peer sending a large frame in
  // small pieces burns seconds of CPU per frame.
  it('stays linear when a chunk boundary falls inside the length header', () => {
    const bytes = concat(flushed((w) => writeAnswer(w, 1, 1, new Uint8Array(2 * 1024 * 1024))))
    let frames = 0
    const splitter = new FrameSplitter(4 * 1024 * 1024, () => { frames++ })
    const started = performance.now()
    splitter.push(bytes.subarray(0, 3))
    for (let i = 3; i < bytes.byteLength; i += 256) splitter.push(bytes.subarray(i, i + 256))
    const elapsed = performance.now() - started
    expect(frames).toBe(1)
    // Linear: ~15 ms; quadratic: many seconds. The bound is generous for a busy machine.
    expect(elapsed).toBeLessThan(1000)
  })

  it('accepts a frame of exactly the limit and refuses one byte more', () => {
    const bytes = concat(flushed((w) => writeAnswer(w, 1, 1, new Uint8Array(90))))
    const length = bytes.byteLength - 4
    expect(split(bytes, bytes.byteLength, [readConsumerFrame], length)).toHaveLength(1)
    expect(() => split(bytes, bytes.byteLength, [readConsumerFrame], length - 1)).toThrow(MessageTooLargeError)
  })

  it('throws MessageTooLargeError as soon as the 4-byte header has arrived', () => {
    const header = frame(0, 0, 1, 0)
    expect(() => new FrameSplitter(255, () => {}).push(header)).toThrow(MessageTooLargeError)

    const splitter = new FrameSplitter(255, () => {})
    for (let i = 0; i < 3; i++) splitter.push(header.subarray(i, i + 1))
    expect(() => splitter.push(header.subarray(3))).toThrow(MessageTooLargeError)

    const after = new FrameSplitter(255, () => {})
    expect(() => after.push(concat([frame(0, 0, 0, 5, FrameType.Confirm, 0, 0, 0, 1), frame(0, 0, 1, 0)]))).toThrow(MessageTooLargeError)
  })

  it('throws FrameError on malformed frames', () => {
    const producer = (bytes: Uint8Array) => () => split(bytes, bytes.byteLength, [readBrokerToProducerFrame])
    const consumer = (bytes: Uint8Array) => () => split(bytes, bytes.byteLength, [readConsumerFrame])
    // Confirm whose u32 seq is cut short
    expect(producer(frame(0, 0, 0, 3, FrameType.Confirm, 0, 0))).toThrow(/shorter than its fields/)
    // Answer whose payload claims 100 bytes but carries 2
    expect(consumer(frame(0, 0, 0, 12, FrameType.Answer, 0, 0, 0, 1, 1, 0, 0, 0, 100, 1, 2))).toThrow(FrameError)
    // Confirm with a trailing byte
    expect(producer(frame(0, 0, 0, 6, FrameType.Confirm, 0, 0, 0, 1, 0xff))).toThrow(/1 unexpected trailing bytes/)
    // unknown frame type, and a known one on the wrong stream
    expect(consumer(frame(0, 0, 0, 1, 0x7f))).toThrow(/0x7f/)
    expect(consumer(frame(0, 0, 0, 5, FrameType.Confirm, 0, 0, 0, 1))).toThrow(FrameError)
    // empty frame
    expect(producer(frame(0, 0, 0, 0))).toThrow(/Empty frame/)
    // a string field that is not UTF-8
    expect(() => split(frame(0, 0, 0, 9, FrameType.Subscribed, 0, 0, 0, 1, 0, 2, 0xff, 0xfe), 13, [readBrokerToConsumerFrame]))
      .toThrow(/not valid UTF-8/)
  })

  // TextDecoder strips a leading BOM unless told `ignoreBOM: true`: a message id '\uFEFFid' would
  // reach the broker as 'id', and its result would not match the producer's pending send.
  it('reads repeated and changing command names right (the reader reuses the last one)', () => {
    const commands = ['jobs.a', 'jobs.a', 'jobs.b', 'jobs.a', 'x', 'jobs.ü', 'jobs.ü', 'jobs.a']
    const chunks = flushed((w) => { for (const command of commands) writePublish(w, 1, 0, { ...message, command }) })
    const frames = split(concat(chunks), 7, [readProducerFrame]) as any[]
    expect(frames.map((f) => f.command)).toEqual(commands)
  })

  it('keeps a leading U+FEFF in string fields', () => {
    const chunks = flushed((w) => writePublish(w, 1, 0, { ...message, id: '\uFEFFid' }))
    const [f] = split(chunks[0], chunks[0].byteLength, [readProducerFrame]) as any[]
    expect(f.id).toBe('\uFEFFid')
  })
})

describe('payload encode/decode', () => {
  const roundTrip = (value: unknown): { kind: number, value: unknown } => {
    const { kind, bytes } = encodePayload(value)
    return { kind, value: decodePayload(kind, bytes) }
  }

  it('preserves the type of each kind of value', () => {
    const bytes = new Uint8Array([1, 2, 3])
    const b = roundTrip(bytes)
    expect(b.kind).toBe(1)
    expect(b.value).toBeInstanceOf(Uint8Array)
    expect(b.value).toEqual(bytes)

    expect(roundTrip('héllo {"a":1}')).toEqual({ kind: 2, value: 'héllo {"a":1}' })
    expect(roundTrip('')).toEqual({ kind: 2, value: '' })
    expect(roundTrip({ a: [1, 'x', null, true], b: { c: 1.5 } })).toEqual({ kind: 3, value: { a: [1, 'x', null, true], b: { c: 1.5 } } })
    expect(roundTrip(42)).toEqual({ kind: 3, value: 42 })
    expect(roundTrip(null)).toEqual({ kind: 3, value: null })
    expect(roundTrip(false)).toEqual({ kind: 3, value: false })
    expect(roundTrip(undefined)).toEqual({ kind: 0, value: undefined })
    expect(encodePayload(undefined).bytes.byteLength).toBe(0)
  })

  it('keeps a string that begins with U+FEFF', () => {
    expect(roundTrip('\uFEFFhello')).toEqual({ kind: 2, value: '\uFEFFhello' })
  })

  it('refuses what it cannot encode or decode', () => {
    expect(() => encodePayload(() => 1)).toThrow(TypeError)
    expect(() => decodePayload(9, new Uint8Array(0))).toThrow(/Unknown payload kind 9/)
  })
})
