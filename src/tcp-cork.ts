/**
 * TCP that sends the parts of one write together. @libp2p/tcp writes each buffer of a message
 * with its own socket.write(), so a noise frame (a length, then a ciphertext) leaves as two
 * writes and, with no-delay, two TCP segments. Corking the socket around one message's writes
 * makes them one writev.
 */
import { Socket } from 'node:net'
import { tcp, type TCPOptions } from '@libp2p/tcp'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'

type TCPComponents = Parameters<ReturnType<typeof tcp>>[0]

export function corkedTcp (init?: TCPOptions): (components: TCPComponents) => Transport {
  const factory = tcp(init)
  return (components) => {
    const transport = factory(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = async (ma, options) => await dial(ma, { ...options, upgrader: corking(options.upgrader) })
    transport.createListener = (options) => createListener({ ...options, upgrader: corking(options.upgrader) })
    return transport
  }
}

/** The same upgrader, except that a connection it upgrades is corked first. */
function corking (upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get (target, key) {
      if (key === 'upgradeInbound' || key === 'upgradeOutbound') {
        return async (maConn: MultiaddrConnection, options: any) => await target[key](cork(maConn), options)
      }
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

interface SocketConnection { socket?: unknown, sendData?: (data: unknown) => unknown }

function cork (maConn: MultiaddrConnection): MultiaddrConnection {
  const conn = maConn as unknown as SocketConnection
  const socket = conn.socket
  const sendData = conn.sendData
  if (!(socket instanceof Socket) || typeof sendData !== 'function') return maConn
  conn.sendData = (data) => {
    socket.cork()
    try {
      return sendData.call(conn, data)
    } finally {
      socket.uncork()
    }
  }
  return maConn
}
