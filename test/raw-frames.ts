/**
 * Frames as bytes, written with the project's own writer (the wire format is public), and sent on
 * a raw stream: what a raw attacker sends in test/hostile.test.ts and bench scenario i (compiled
 * beside the bench).
 */
import type { Stream } from '@libp2p/interface'
import { FrameWriter } from '../src/protocol/codec.js'

export function frames (write: (w: FrameWriter) => void): Uint8Array {
  const parts: Uint8Array[] = []
  const w = new FrameWriter((bytes) => { parts.push(bytes) })
  write(w)
  w.flush()
  return Buffer.concat(parts)
}

/** Sends `bytes`, waiting for `drain` (at most `ms`) when the stream wants no more; false when it closed or did not drain. */
export async function sendAll (stream: Stream, bytes: Uint8Array, ms = 5_000): Promise<boolean> {
  try {
    if (stream.send(bytes)) return true
  } catch { return false }
  return await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, ms)
    stream.addEventListener('drain', () => { clearTimeout(timer); resolve(true) }, { once: true })
    stream.addEventListener('close', () => { clearTimeout(timer); resolve(false) }, { once: true })
  })
}
