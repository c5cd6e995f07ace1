/**
 * The node's datastore (the keychain, the WebRTC certificate, and libp2p's peer store), in its own
 * module so that only nodes that keep one load LevelDB for it.
 */
import { LevelDatastore } from 'datastore-level'
import type { AbortOptions } from '@libp2p/interface'

export async function nodeDatastore (path: string): Promise<LevelDatastore> {
  return new NodeDatastore(path)
}

type Key = Parameters<LevelDatastore['put']>[0]

/**
 * The node's datastore (the keychain, the WebRTC certificate, and libp2p's peer store). The peer
 * store is a cache of what peers said: a write of it that fails (a full disk) is skipped, so it
 * neither refuses a peer's new stream nor fails a stop.
 */
class NodeDatastore extends LevelDatastore {
  async put (key: Key, value: Uint8Array, options?: AbortOptions): Promise<Key> {
    try {
      return await super.put(key, value, options)
    } catch (err) {
      if (isPeerRecord(key)) return key
      throw err
    }
  }

  async delete (key: Key, options?: AbortOptions): Promise<void> {
    try {
      await super.delete(key, options)
    } catch (err) {
      if (!isPeerRecord(key)) throw err
    }
  }
}

function isPeerRecord (key: Key): boolean {
  return key.toString().startsWith('/peers/')
}
