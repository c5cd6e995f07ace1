/**
 * The ACL on disk: `<dataDir>/acl.json`, read and checked at start (an unreadable or invalid file
 * stops the broker with one line naming the file and the key) and written atomically on each change
 * (a temporary file, synced, renamed over it; mode 0600).
 */
import { open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { P2PMQError } from '../errors.js'
import { Acl } from './acl.js'
import type { AclFile } from './api.js'

/** The largest ACL file read: ~10,000 peers with a few grants each fit in 1 MiB. */
export const MAX_ACL_FILE_BYTES = 1024 * 1024

/** An ACL file that cannot be read, is not JSON or is not a valid ACL; the message names the file and the key. */
export class AclFileError extends P2PMQError {
  static name = 'AclFileError'
}

/** The ACL in the file at `path`, or undefined when there is none. Throws AclFileError. */
export async function readAclFile (path: string): Promise<Acl | undefined> {
  let text: string
  try {
    const size = (await stat(path)).size
    if (size > MAX_ACL_FILE_BYTES) throw new AclFileError(`${path}: the ACL file is ${size} bytes, at most ${MAX_ACL_FILE_BYTES}`)
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (err instanceof AclFileError) throw err
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new AclFileError(`${path}: cannot read the ACL file: ${(err as Error).message}`, { cause: err })
  }
  return aclOf(text, path)
}

/** The ACL a file's text holds; throws AclFileError naming `source`. */
export function aclOf (text: string, source: string): Acl {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new AclFileError(`${source}: not JSON (${(err as Error).message})`, { cause: err })
  }
  try {
    return Acl.of(raw)
  } catch (err) {
    throw new AclFileError(`${source}: ${(err as Error).message}`, { cause: err })
  }
}

let tmpCounter = 0

/** Writes `acl` to `path` atomically: readers see the old file or the new one, never a part. */
export async function writeAclFile (path: string, acl: AclFile): Promise<void> {
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`
  const file = await open(tmp, 'w', 0o600)
  try {
    await file.writeFile(`${JSON.stringify(acl, null, 2)}\n`)
    await file.sync()
  } catch (err) {
    await file.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await file.close()
  await rename(tmp, path)
}
