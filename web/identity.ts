/**
 * The page's libp2p identity. Its Ed25519 key is made by the browser's WebCrypto as
 * non-extractable and kept in IndexedDB: the page signs with it (the noise handshake, peer
 * records), so a reload is the same peer, but no script, not even one injected into the page, can
 * read the key's bytes and be this peer elsewhere or later. Where WebCrypto has no Ed25519 or
 * IndexedDB is unavailable, the page gets a key of its own that lives as long as the tab.
 */
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { get, update } from 'idb-keyval'
import type { Ed25519PrivateKey, Ed25519PublicKey, PrivateKey } from '@libp2p/interface'

const KEPT = 'p2pmq-identity'
/** Where earlier versions kept the key, readable by any script on the page: removed. */
const LEGACY_LOCAL_STORAGE_KEY = 'p2pmq-private-key'

export async function pageIdentity (): Promise<PrivateKey> {
  localStorage.removeItem(LEGACY_LOCAL_STORAGE_KEY)
  try {
    let pair = await get<CryptoKeyPair>(KEPT)
    if (pair == null) {
      const made = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])
      // Two tabs opening at once keep one key: the first stored wins.
      await update<CryptoKeyPair>(KEPT, (kept) => kept ?? made)
      pair = await get<CryptoKeyPair>(KEPT) as CryptoKeyPair
    }
    const publicKey = publicKeyFromRaw(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey))) as Ed25519PublicKey
    return new NonExtractableEd25519Key(pair.privateKey, publicKey)
  } catch (err) {
    console.warn(`p2pmq: no kept identity (${(err as Error).message}); this tab has one of its own`)
    return await generateKeyPair('Ed25519')
  }
}

/** A libp2p private key whose signing is done by WebCrypto; its bytes never leave the browser's key store. */
class NonExtractableEd25519Key implements Ed25519PrivateKey {
  readonly type = 'Ed25519'

  constructor (private readonly key: CryptoKey, readonly publicKey: Ed25519PublicKey) {}

  get raw (): Uint8Array {
    throw new Error('The page\'s private key is not extractable')
  }

  equals (other?: any): boolean {
    return other === this
  }

  async sign (data: Parameters<PrivateKey['sign']>[0]): Promise<Uint8Array> {
    const bytes = data instanceof Uint8Array ? data : data.subarray()
    return new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, this.key, bytes as Uint8Array<ArrayBuffer>))
  }
}
