/**
 * The libp2p stack p2pmq runs on, with its three wrappers (src/tcp-cork.ts, src/yamux-window.ts,
 * src/noise-reader.ts): @libp2p/tcp writes the parts of a noise frame in one writev, @libp2p/yamux
 * sends a window update only once half the window is used (as Go's yamux does), not after every
 * data frame, and noise stops reading a chunk without throwing an Error at its end. Without the
 * first two, one small message each way costs 8 socket writes; with the cork alone 4; with both, 2.
 */
import { Socket } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createNode } from '../src/node.js'
import { onCleanup } from './helpers.js'

const ECHO = '/p2pmq-test/echo/1.0.0'

describe('transport', () => {
  it('sends one socket write per small message each way', async () => {
    const server = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const client = await createNode()
    await server.start()
    await client.start()
    onCleanup(async () => { await client.stop(); await server.stop() })
    await server.handle(ECHO, (stream) => {
      stream.addEventListener('message', (evt) => { stream.send(evt.data) })
    })
    const stream = await client.dialProtocol(multiaddr(server.getMultiaddrs()[0].toString()), ECHO)
    let echoed = 0
    let wake = (): void => {}
    stream.addEventListener('message', (evt) => {
      echoed += evt.data.byteLength
      wake()
    })
    const body = new Uint8Array(100)
    const roundTrip = async (): Promise<void> => {
      const want = echoed + body.byteLength
      const arrived = new Promise<void>((resolve) => { wake = () => { if (echoed >= want) resolve() } })
      stream.send(body)
      await arrived
    }
    await roundTrip() // the stream is set up (SYN/ACK flags) before counting

    // Count what reaches the sockets: one call of _write or _writev is one write(v) syscall.
    let writes = 0
    const proto = Socket.prototype as any
    const write = proto._write
    const writev = proto._writev
    proto._write = function (...args: unknown[]) { writes++; return write.apply(this, args) }
    proto._writev = function (...args: unknown[]) { writes++; return writev.apply(this, args) }
    const trips = 200
    try {
      for (let i = 0; i < trips; i++) await roundTrip()
    } finally {
      proto._write = write
      proto._writev = writev
    }
    expect(writes).toBeGreaterThanOrEqual(2 * trips)
    // A few more for libp2p's own traffic (identify) that may overlap; unpatched it is 8 per trip.
    expect(writes).toBeLessThanOrEqual(2 * trips + trips / 10)
  })

  it('reads each chunk of a connection to its end without an Error (noise\'s length reader throws on an empty buffer)', async () => {
    const server = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const client = await createNode()
    onCleanup(async () => { await client.stop(); await server.stop() })
    await server.handle(ECHO, (stream) => {
      stream.addEventListener('message', (evt) => { stream.send(evt.data) })
    })
    const conn = await client.dial(multiaddr(server.getMultiaddrs()[0].toString()))
    // The connection's noise stream, under its muxer (internals: this test says when they move).
    const decoder = (conn as any).muxer?.maConn?.decoder as { lengthDecoder: (data: { byteLength: number }) => number }
    expect(typeof decoder?.lengthDecoder).toBe('function')
    const read = decoder.lengthDecoder
    const calls = { atEnd: 0, thrown: 0 }
    decoder.lengthDecoder = (data) => {
      if (data.byteLength === 0) calls.atEnd++
      try {
        return read(data)
      } catch (err) {
        calls.thrown++
        throw err
      }
    }
    const stream = await conn.newStream(ECHO)
    for (let i = 0; i < 20; i++) {
      const echoed = new Promise((resolve) => { stream.addEventListener('message', resolve, { once: true }) })
      stream.send(new Uint8Array(100))
      await echoed
    }
    expect(calls.atEnd).toBeGreaterThanOrEqual(20)
    expect(calls.thrown).toBe(0)
  })
})
