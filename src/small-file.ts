/**
 * Reading a small file a user or operator names (an ACL, a key, a config) without trusting what is
 * there: opened non-blocking, so a FIFO in its place does not hang the process in open() (a broker
 * so hung is killed only by SIGKILL); refused unless a regular file (a symbolic link to /dev/zero
 * has no size to check, and would fill the memory); its size checked before reading, and no more
 * than one byte past the limit read (it may grow meanwhile). And writing one, owner-only, so a
 * reader never sees a part of it.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs'
import { open, rename, unlink } from 'node:fs/promises'

/** A file that is not a small regular file; `reason` completes "<the file> …". */
export class NotSmallFileError extends Error {
  constructor (readonly reason: string) {
    super(reason)
  }
}

/** The bytes of the regular file at `path` (at most `max`), and its mode. File system errors (ENOENT, EACCES) are thrown as they are. */
export function readSmallFile (path: string, max: number): { bytes: Buffer, mode: number } {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
  try {
    const stats = fstatSync(fd)
    if (!stats.isFile()) throw new NotSmallFileError('is not a regular file')
    if (stats.size > max) throw new NotSmallFileError(`is ${stats.size} bytes, at most ${max}`)
    const bytes = Buffer.alloc(max + 1)
    let read = 0
    for (let n = 1; n > 0 && read < bytes.length; read += n) n = readSync(fd, bytes, read, bytes.length - read, read)
    if (read > max) throw new NotSmallFileError(`is over ${max} bytes`)
    return { bytes: bytes.subarray(0, read), mode: stats.mode }
  } finally {
    closeSync(fd)
  }
}

/**
 * A config file's text as a JSON object (a UTF-8 byte order mark, which some editors write, is
 * allowed); otherwise `fail` is called with why, completing "<the file> …" (`example` shows the form).
 */
export function jsonObject (text: string, example: string, fail: (why: string) => never): Record<string, unknown> {
  let json: unknown
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (err) {
    return fail(`is not valid JSON (${(err as Error).message})`)
  }
  if (typeof json !== 'object' || json == null || Array.isArray(json)) return fail(`must be a JSON object, e.g. ${example}`)
  return json as Record<string, unknown>
}

let tmpCounter = 0

/**
 * Writes `data` to `path` atomically (a temporary file, synced, renamed over it: readers see the
 * old file or the new one, never a part), readable by its owner only.
 */
export async function writePrivateFile (path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`
  const file = await open(tmp, 'w', 0o600)
  try {
    await file.writeFile(data)
    await file.sync()
  } catch (err) {
    await file.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await file.close()
  await rename(tmp, path)
}
