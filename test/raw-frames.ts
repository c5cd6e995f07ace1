/**
 * Frames as bytes, written with the project's own writer (the wire format is public): what a raw
 * attacker sends in test/hostile.test.ts and bench scenario i (compiled beside the bench).
 */
import { FrameWriter } from '../src/protocol/codec.js'

export function frames (write: (w: FrameWriter) => void): Uint8Array {
  const parts: Uint8Array[] = []
  const w = new FrameWriter((bytes) => { parts.push(bytes) })
  write(w)
  w.flush()
  return Buffer.concat(parts)
}
