/**
 * noise whose frame reader does not throw at the end of each chunk it reads. @chainsafe/libp2p-noise
 * reads its frames with @libp2p/utils' LengthPrefixedDecoder, which reads lengths until one fails:
 * on an empty buffer its length reader throws a RangeError, which the decoder catches to stop. So
 * every chunk a connection receives ends in a new Error and its stack trace: 17% of a broker's
 * CPU in request/answer back to back (perf), more in each round trip at a slow pace. Reading no
 * length from an empty buffer ends the loop the same way, with no Error.
 */
import { noise, type NoiseInit } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface'

type NoiseFactory = ReturnType<typeof noise>
type LengthReader = (data: { byteLength: number }) => number

export function quietNoise (init?: NoiseInit): NoiseFactory {
  const factory = noise(init)
  return (components) => {
    const encrypter = factory(components)
    const secureInbound = encrypter.secureInbound.bind(encrypter)
    const secureOutbound = encrypter.secureOutbound.bind(encrypter)
    encrypter.secureInbound = async (...args) => quietAtEnd(await secureInbound(...args))
    encrypter.secureOutbound = async (...args) => quietAtEnd(await secureOutbound(...args))
    return encrypter as ConnectionEncrypter<any>
  }
}

/** The connection's decoder reads a length of 0 from an empty buffer: less than a frame's header, so it stops. */
function quietAtEnd<T extends SecuredConnection<any>> (secured: T): T {
  const decoder = (secured.connection as unknown as { decoder?: { lengthDecoder?: LengthReader } }).decoder
  const read = decoder?.lengthDecoder
  if (decoder == null || typeof read !== 'function') return secured // not the noise this was written for
  decoder.lengthDecoder = (data) => data.byteLength === 0 ? 0 : read(data)
  return secured
}
