/**
 * The ACL on disk: `<dataDir>/acl.json`, read and checked at start (an unreadable or invalid file
 * stops the broker with one line naming the file and the key) and written atomically on each change
 * (a temporary file, synced, renamed over it; mode 0600).
 */
import { NotSmallFileError, readSmallFile, writePrivateFile } from '../small-file.js'
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
    text = readSmallFile(path, MAX_ACL_FILE_BYTES).bytes.toString('utf8')
  } catch (err) {
    if (err instanceof NotSmallFileError) throw new AclFileError(`${path}: the ACL file ${err.reason}`)
    // None there (a file in the way of its directory is the data directory's error, told when the node takes it).
    if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined
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
  const twice = duplicateKey(text)
  if (twice != null) throw new AclFileError(`${source}: ${twice.at === '' ? '' : `${twice.at}: `}the key ${JSON.stringify(twice.key.length > 80 ? `${twice.key.slice(0, 77)}...` : twice.key)} is given twice (JSON keeps the last, so the first would be ignored silently)`)
  try {
    return Acl.of(raw)
  } catch (err) {
    throw new AclFileError(`${source}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The first key given twice in one object of `text` (valid JSON), and where: JSON.parse keeps the
 * last silently, so an entry such as a peer's `"blocked": true` could be undone further down.
 */
export function duplicateKey (text: string): { at: string, key: string } | undefined {
  // Per open object or array: its keys (undefined for an array), whether a key comes next, and its path.
  const stack: Array<{ keys?: Set<string>, expectKey: boolean, at: string, last?: string }> = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    const top = stack[stack.length - 1]
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      if (top?.keys != null && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string
        if (top.keys.has(key)) return { at: top.at, key }
        top.keys.add(key)
        top.last = key
        top.expectKey = false
      }
      i = j
    } else if (c === '{' || c === '[') {
      const at = top == null ? '' : top.keys != null ? `${top.at}${top.at === '' ? '' : '.'}${top.last ?? ''}` : `${top.at}[]`
      stack.push({ keys: c === '{' ? new Set() : undefined, expectKey: c === '{', at })
    } else if (c === '}' || c === ']') {
      stack.pop()
    } else if (c === ',' && top?.keys != null) {
      top.expectKey = true
    }
  }
  return undefined
}

/** Writes `acl` to `path` atomically: readers see the old file or the new one, never a part. */
export async function writeAclFile (path: string, acl: AclFile): Promise<void> {
  await writePrivateFile(path, `${JSON.stringify(acl, null, 2)}\n`)
}
