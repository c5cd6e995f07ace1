/**
 * yamux that answers received data with a window update only once half the stream's window is
 * used, as Go's yamux does. @libp2p/yamux sends one after every data frame it receives, so a
 * stream of small messages costs a window-update frame (and a write) per message.
 */
import { yamux, type YamuxMuxerInit } from '@libp2p/yamux'
import { StreamState, type YamuxStream } from '@libp2p/yamux/stream'
import type { StreamMuxerFactory } from '@libp2p/interface'

/** What a YamuxStream keeps for its receive window (private in its type). */
interface ReceiveWindow { state: StreamState, recvWindow: number, recvWindowCapacity: number }

type NewStream = (streamId: number, state: StreamState, direction: string) => YamuxStream

export function halfWindowYamux (init?: YamuxMuxerInit): () => StreamMuxerFactory {
  const factory = yamux(init)
  return () => {
    const muxers = factory()
    const createStreamMuxer = muxers.createStreamMuxer.bind(muxers)
    muxers.createStreamMuxer = (maConn) => {
      const muxer = createStreamMuxer(maConn)
      const streams = muxer as unknown as { _newStream?: NewStream }
      if (typeof streams._newStream !== 'function') return muxer // not the yamux this was written for
      const newStream = streams._newStream.bind(muxer)
      streams._newStream = (...args) => updateAtHalfWindow(newStream(...args))
      return muxer
    }
    return muxers
  }
}

function updateAtHalfWindow (stream: YamuxStream): YamuxStream {
  const sendWindowUpdate = stream.sendWindowUpdate.bind(stream)
  const window = stream as unknown as ReceiveWindow
  stream.sendWindowUpdate = () => {
    // Opening or accepting a stream (its SYN or ACK flag) and a paused stream go through.
    const flagsOrPaused = window.state === StreamState.Init || window.state === StreamState.SYNReceived || window.state === StreamState.Paused
    const used = window.recvWindow - window.recvWindowCapacity // NaN (so no skip) if they are gone
    if (!flagsOrPaused && used < window.recvWindow / 2) return
    sendWindowUpdate()
  }
  return stream
}
