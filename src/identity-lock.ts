/**
 * The lock on an identity's data directory, held while a process uses that identity.
 *
 * It is the LOCK file of a tiny LevelDB (`<dir>/lock`) that stores nothing: LevelDB locks it with
 * fcntl, which the kernel releases when the holder dies however it dies (kill -9, a zombie, PID 1
 * of a container's PID namespace), so a restart after a crash always finds it free. A second live
 * process is refused by the kernel; a second node on the same directory in this process is refused
 * here, before LevelDB is asked: LevelDB's own same-process check closes a descriptor of the LOCK
 * file, and closing any descriptor drops the process's fcntl locks on that file.
 */
import { constants } from 'node:fs'
import { access, realpath, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { IdentityInUseError } from './errors.js'

const LOCK_DB = 'lock'
/** The PID file earlier versions used; it means nothing now and is removed. */
const LEGACY_LOCK_FILE = 'identity.lock'

/** Data directories (real paths) locked by this process, shared by every copy of this module. */
const heldHere: Set<string> = (globalThis as any)[Symbol.for('p2pmq.identityLocks')] ??= new Set<string>()

/** Locks the existing directory `dir`; resolves to its release (which is done once it resolves). */
export async function lockIdentityDir (dir: string): Promise<() => Promise<void>> {
  const key = await realpath(dir)
  if (heldHere.has(key)) {
    throw new IdentityInUseError(`The identity in ${dir} is already in use by this process; give the second node another -name or -data`)
  }
  heldHere.add(key)
  const db = new ClassicLevel(join(dir, LOCK_DB))
  try {
    await db.open()
  } catch (err) {
    heldHere.delete(key)
    if (hasCode(err, 'LEVEL_LOCKED')) {
      throw new IdentityInUseError(`The identity in ${dir} is in use by another running process; give this one another -name or -data`)
    }
    // Say why in the file system's words (EROFS: read-only file system, …) when it can tell.
    await access(dir, constants.W_OK)
    throw new Error(`Cannot lock the identity in ${dir}: ${rootCause(err).message}`, { cause: err })
  }
  await rm(join(dir, LEGACY_LOCK_FILE), { force: true }).catch(() => {})
  let released: Promise<void> | undefined
  return async () => {
    released ??= db.close().catch(() => {}).finally(() => { heldHere.delete(key) })
    await released
  }
}

function rootCause (err: unknown): Error {
  let e: any = err
  while (e?.cause != null) e = e.cause
  return e instanceof Error ? e : new Error(String(e))
}

function hasCode (err: unknown, code: string): boolean {
  for (let e: any = err; e != null; e = e.cause) {
    if (e.code === code) return true
  }
  return false
}
