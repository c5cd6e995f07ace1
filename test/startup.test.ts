/** What the p2pmq command loads at startup: real child processes that refuse to load heavy modules. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { consumer, onCleanup, startBroker } from './helpers.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))

/**
 * Node flags that make any import of a package matching `refused` fail, so the child exits with an
 * error if it loads one (a resolve hook, registered before the command runs).
 */
function refusing (refused: RegExp): string[] {
  const hook = `export async function resolve (specifier, context, next) {
    if (${refused.toString()}.test(specifier)) throw new Error('refused to load ' + specifier)
    return await next(specifier, context)
  }`
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)})`
  return ['--import', `data:text/javascript,${encodeURIComponent(register)}`]
}

async function p2pmq (nodeFlags: string[], args: string[], home: string): Promise<{ code: number | null, out: string, err: string }> {
  const child = spawn(process.execPath, [...nodeFlags, BIN, ...args], { env: { ...process.env, P2PMQ_HOME: home } })
  onCleanup(() => { if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL') })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, out, err }
}

describe('p2pmq startup', () => {
  it('-help loads no libp2p, and lists every command with the summary its module gives', async () => {
    const { code, out, err } = await p2pmq(refusing(/^(libp2p|@libp2p\/|@chainsafe\/|classic-level|datastore-level|prom-client)/), ['-help'], '/nonexistent')
    expect(err).toBe('')
    expect(code).toBe(0)
    const modules = ['broker', 'relay', 'consumer', 'producer', 'bench', 'demo', 'demo-users-servers', 'demo-fanout', 'messages', 'stats', 'dlq', 'purge', 'queue', 'group', 'schedule']
    for (const name of modules) {
      const { summary } = await import(`../cmd/${name}.ts`) as { summary: string }
      expect(out).toContain(`  ${name.padEnd(10)} ${summary}\n`)
    }
  }, 60_000)

  it('a producer over TCP loads no WebRTC and no metrics, and gets its answer', async () => {
    const broker = await startBroker({ memory: true })
    const c = await consumer(broker)
    await c.subscribe('hello', (m) => `hi ${m.payload as string}`)
    const { code, out, err } = await p2pmq(refusing(/^(@libp2p\/webrtc|node-datachannel|@libp2p\/keychain|prom-client|@libp2p\/prometheus-metrics)/), [
      'producer', `-broker=${broker.address}`, '-command=hello', '-count=1', '-payload=you'
    ], broker.home)
    expect(err).not.toMatch(/refused/)
    expect(code).toBe(0)
    expect(out).toMatch(/^Answer #1 from .*: hi you$/m)
  }, 60_000)
})
