/**
 * The typed admin protocol's refusals: each admin refusal and refused (or ended) subscription
 * carries an ErrorCode, raised on the client as its typed error; an old client, which asks for no
 * codes, gets Subscribed frames as before.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  AdminError, AnswerTimeoutError, BrokerAddressError, CONSUMER_PROTOCOL, ConflictError, ErrorCode, FrameError, InvalidArgumentError, NotFoundError,
  LimitReachedError, SubscriptionError, UnknownMethodError, createAdmin, createNode, parseBrokerAddress, type Admin
} from '../src/index.js'
import * as p2pmq from '../src/index.js'
import { type FrameReader, FrameSplitter, FrameWriter } from '../src/protocol/codec.js'
import { FrameType, SubscribeFlags, writeSubscribe } from '../src/protocol/frames.js'
import { consumer, onCleanup, producer, sleep, startBroker, until, type BrokerRef } from './helpers.js'

async function adminOf (broker: BrokerRef): Promise<Admin> {
  const a = await createAdmin({ broker: broker.address, home: broker.home })
  onCleanup(async () => { await a.stop() })
  return a
}

/** Rejects with an error of `Class` and `code`, which is still an AdminError (older callers match on it). */
async function refusedWith (call: Promise<unknown>, Class: typeof AdminError, code: ErrorCode): Promise<AdminError> {
  const err = await call.then(() => { throw new Error('not refused') }, (e: unknown) => e)
  expect(err).toBeInstanceOf(Class)
  expect(err).toBeInstanceOf(AdminError)
  expect((err as AdminError).code).toBe(code)
  return err as AdminError
}

describe('admin error codes', () => {
  it('raises each refusal as its typed error with its code', async () => {
    const broker = await startBroker({ memory: true })
    const admin = await adminOf(broker)
    const bad = await refusedWith(admin.request('purge', {}), InvalidArgumentError, ErrorCode.InvalidArgument)
    expect(bad.message).toMatch(/refused "purge": purge needs a command/)
    await refusedWith(admin.messages({ limit: -1 }), InvalidArgumentError, ErrorCode.InvalidArgument)
    await refusedWith(admin.schedule('tick', 'x', { every: 1 }), InvalidArgumentError, ErrorCode.InvalidArgument)
    await refusedWith(admin.request('drop-everything'), UnknownMethodError, ErrorCode.UnknownMethod)
    await refusedWith(admin.deleteQueue('jobs', 'nobody'), NotFoundError, ErrorCode.NotFound)
    await refusedWith(admin.deleteGroup('nobody'), NotFoundError, ErrorCode.NotFound)

    const c = await consumer(broker)
    await c.subscribe('jobs', async () => { await new Promise(() => {}) }, { group: 'busy', prefetch: 1 })
    const p = await producer(broker)
    await p.publish('jobs', 'held')
    await refusedWith(admin.deleteGroup('busy'), ConflictError, ErrorCode.Conflict)
    await refusedWith(admin.request('delete-queue', { command: 'jobs', group: 'busy' }), ConflictError, ErrorCode.Conflict)
    // Typed results, no casts.
    const { queues }: { queues: number } = await admin.request('delete-group', { group: 'busy', force: true })
    expect(queues).toBe(1)
  })
})

describe('subscription error codes', () => {
  it('tells a refused and an ended subscription apart by code', async () => {
    const broker = await startBroker({ memory: true, maxGroups: 1 })
    const c = await consumer(broker)
    const invalid = await c.subscribe('bad..pattern', () => {}).catch((e: unknown) => e)
    expect(invalid).toBeInstanceOf(SubscriptionError)
    expect((invalid as SubscriptionError).code).toBe(ErrorCode.InvalidArgument)

    await c.subscribe('jobs', () => {}, { group: 'first' })
    const full = await c.subscribe('jobs', () => {}, { group: 'second' }).catch((e: unknown) => e)
    expect(full).toBeInstanceOf(SubscriptionError)
    expect((full as SubscriptionError).code).toBe(ErrorCode.LimitReached)

    const ended: SubscriptionError[] = []
    c.events.addEventListener('subscription:ended', (e) => { ended.push(e.detail.error) })
    const admin = await adminOf(broker)
    await admin.deleteGroup('first', { force: true })
    await until(() => ended.length === 1, 5_000, 'subscription:ended')
    expect(ended[0].code).toBe(ErrorCode.NotFound)
  })

  it('sends the code only to a client that asks for it, so an old client reads its Subscribed frames as before', async () => {
    const broker = await startBroker({ memory: true })
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    const s = await node.dialProtocol(multiaddr(broker.address), CONSUMER_PROTOCOL)
    // Subscribed frames as they come: subId, error, and the bytes after the error.
    const got = new Map<number, { error: string, rest: number[] }>()
    const splitter = new FrameSplitter(1 << 20, (type: number, r: FrameReader) => {
      if (type !== FrameType.Subscribed) return
      const subId = r.u32()
      const error = r.str()
      const rest: number[] = []
      while (r.remaining > 0) rest.push(r.u8())
      got.set(subId, { error, rest })
    })
    s.addEventListener('message', (e) => { splitter.push(e.data) })
    const w = new FrameWriter((bytes) => { s.send(bytes) })
    // An old client: no ErrorCodes flag. A refusal, then an accepted subscription.
    writeSubscribe(w, 1, 10, 0, 'old', ['bad..pattern'])
    writeSubscribe(w, 2, 10, 0, 'old', ['jobs'])
    w.flush()
    await until(() => got.size === 2, 5_000, 'two Subscribed frames')
    expect(got.get(1)?.rest).toEqual([])
    expect(got.get(1)?.error).toMatch(/./)
    expect(got.get(2)).toEqual({ error: '', rest: [] })
    // The same stream asks for codes: a refusal now has one; an acceptance still has none.
    writeSubscribe(w, 3, 10, SubscribeFlags.ErrorCodes, 'new', ['bad..pattern'])
    writeSubscribe(w, 2, 10, SubscribeFlags.ErrorCodes, 'new', ['jobs'])
    writeSubscribe(w, 4, 10, SubscribeFlags.ErrorCodes, 'new', ['jobs'])
    w.flush()
    await until(() => got.size === 4 && got.get(2)?.error !== '', 5_000, 'three more Subscribed frames')
    expect(got.get(3)?.rest).toEqual([ErrorCode.InvalidArgument])
    expect(got.get(2)?.rest).toEqual([ErrorCode.Conflict])
    expect(got.get(4)).toEqual({ error: '', rest: [] })
    await sleep(50)
  })
})

describe('error classes', () => {
  it('forward their cause, and do not take libp2p\'s names', () => {
    const cause = new TypeError('underneath')
    expect(new ConflictError('on top', { cause }).cause).toBe(cause)
    for (const address of ['/ip4/999.0.0.1/tcp/1/p2p/x', 'not-a-peer-id']) {
      const err = (() => { try { return parseBrokerAddress(address) } catch (e) { return e } })()
      expect(err).toBeInstanceOf(BrokerAddressError)
      expect((err as BrokerAddressError).cause).toBeInstanceOf(Error)
    }
    expect(new AnswerTimeoutError('late').name).toBe('AnswerTimeoutError')
    expect(new FrameError('bad').name).toBe('FrameError')
    const exported = Object.keys(p2pmq)
    expect(exported).not.toContain('TimeoutError')
    expect(exported).not.toContain('ProtocolError')
  })
})

describe('watch', () => {
  it('keeps a huge interval a long one (not a timer that fires every ms), stops on unwatch, and holds at most 4 per stream', async () => {
    const broker = await startBroker({ memory: true })
    const admin = await adminOf(broker)
    let ticks = 0
    const stop = admin.watch(() => { ticks++ }, 1e12)
    await until(() => ticks > 0)
    await sleep(500)
    expect(ticks).toBe(1)
    await refusedWith(admin.request('watch', { interval: 'soon' as unknown as number }), InvalidArgumentError, ErrorCode.InvalidArgument)
    // Three more fill the stream's four; a fifth is refused until one is stopped.
    for (let i = 0; i < 3; i++) await admin.request('watch', { interval: 60_000 })
    await refusedWith(admin.request('watch', { interval: 60_000 }), LimitReachedError, ErrorCode.LimitReached)
    stop()
    // The unwatch goes before this request on the same stream, so its slot is free by then.
    await admin.request('watch', { interval: 60_000 })
  })
})
