/**
 * The identity lock: released by the kernel when its holder dies (kill -9 of a broker that is PID 1
 * of its own PID namespace, as in a container), and a clear refusal for a second live user.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBroker, IdentityInUseError } from '../src/index.js'
import { run, startBroker } from './cli-helpers.js'
import { startBroker as startBrokerHere, tempDir, until } from './helpers.js'

/** Why the PID-namespace test cannot run here, or undefined when it can. */
function noNamespaces (): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare -p)'
  try { execFileSync('unshare', ['-p', '-f', '--mount-proc', 'true'], { stdio: 'ignore' }) } catch { return 'unshare -p -f --mount-proc does not work here' }
  return undefined
}
const skipReason = noNamespaces()

/** /proc/<pid>/stat after the command name (which may hold spaces): state, ppid, … */
function statFields (pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

function processState (pid: number): string {
  return statFields(pid)[0]
}

/** The host PID of the child of `parent` (unshare forks the namespace's PID 1). */
function childOf (parent: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (Number(statFields(entry)[1]) === parent) return Number(entry)
    } catch {}
  }
  return undefined
}

describe('identity lock', () => {
  it.skipIf(skipReason != null)(`a broker that is PID 1 of its own PID namespace, killed with -9, starts again the same way${skipReason != null ? ` (skipped: ${skipReason})` : ''}`, async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    const wrap = ['unshare', '-p', '-f', '--mount-proc']
    const first = await startBroker(home, [`-data=${data}`, '-quiet'], wrap)
    const node = childOf(first.proc.child.pid as number)
    expect(node).toBeTypeOf('number')
    // It is PID 1 in its namespace, as in a container.
    expect(readFileSync(`/proc/${node as number}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m)
    process.kill(node as number, 'SIGKILL')
    await first.proc.exited

    const again = await startBroker(home, [`-data=${data}`, '-quiet'], wrap)
    expect(again.peerId).toBe(first.peerId)
  })

  it('a broker killed with -9 and left a zombie (its parent never reaps it) does not hold the identity', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    // sh starts the broker in the background and becomes `sleep`, which never waits for children.
    const first = await startBroker(home, [`-data=${data}`, '-quiet'], ['sh', '-c', '"$@" & exec sleep 60', 'sh'])
    const node = childOf(first.proc.child.pid as number) as number
    process.kill(node, 'SIGKILL')
    await until(() => processState(node) === 'Z', 5_000, 'a zombie')

    const again = await startBroker(home, [`-data=${data}`, '-quiet'])
    expect(again.peerId).toBe(first.peerId)
  })

  it('refuses a second live process on one identity with a clear one-line error (exit 2, no peer ID)', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    await startBroker(home, [`-data=${data}`, '-quiet'])
    const second = run(['broker', `-data=${data}`, '-http=0'], home)
    expect(await second.exited).toBe(2)
    expect(second.out.join('\n')).not.toMatch(/peer ID/)
    expect(second.err[0]).toBe(`p2pmq: The identity in ${data} is in use by another running process; give this one another -data`)

    // The same for a named client identity.
    const { peerId } = await startBroker(home, [`-data=${join(home, 'other-broker')}`, '-quiet'])
    const c1 = run(['consumer', `-broker=${peerId}`, '-name=worker'], home)
    await until(() => c1.out.some((l) => l.startsWith('Subscribed to')), 15_000, 'the first consumer')
    const c2 = run(['consumer', `-broker=${peerId}`, '-name=worker'], home)
    expect(await c2.exited).toBe(2)
    expect(c2.err.join('\n')).toMatch(/p2pmq: .*clients\/worker is in use by another running process; give this one another -name or -data/)
  })

  it('a second node on one directory in this process is refused and the lock still holds against other processes', async () => {
    const broker = await startBrokerHere()
    await expect(createBroker({ home: broker.home, dataDir: broker.dataDir })).rejects.toThrow(IdentityInUseError)
    await expect(createBroker({ home: broker.home, dataDir: broker.dataDir })).rejects.toThrow(/already in use by this process/)
    const other = run(['broker', `-data=${broker.dataDir}`, '-http=0'], broker.home)
    expect(await other.exited).toBe(2)
    expect(other.err.join('\n')).toMatch(/in use by another running process/)
  })

  it('starts again at once in the same process after a stop', async () => {
    const home = await tempDir()
    const dataDir = join(home, 'broker')
    for (let i = 0; i < 5; i++) {
      const node = await createBroker({ home, dataDir, listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/webrtc-direct'] })
      await node.stop()
    }
  })

  it('ignores and removes the PID file of earlier versions', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    await mkdir(data, { recursive: true })
    // A live PID in it: the old lock refused to start.
    await writeFile(join(data, 'identity.lock'), String(process.pid))
    await startBroker(home, [`-data=${data}`, '-quiet'])
    expect(existsSync(join(data, 'identity.lock'))).toBe(false)
  })
})
