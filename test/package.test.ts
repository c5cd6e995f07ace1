/**
 * The package as a user gets it: `npm pack`, installed into an empty project from the registry
 * (npm's cache helps), then `npx p2pmq demo` there. Needs the npm registry; built dist/ from
 * `npm test`'s pretest.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { onCleanup, tempDir, until } from './helpers.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))

/** npm's settings from the `npm test` that runs us (this repo's .npmrc) must not reach the user's install. */
const USER_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')))

interface Ran { code: number | null, out: string, err: string }

/** Runs a command in its own process group, killed whole after `ms` or after the test. */
async function sh (cmd: string, args: string[], cwd: string, ms: number, env = USER_ENV): Promise<Ran> {
  const child = spawn(cmd, args, { cwd, env, detached: true })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  const kill = (): void => { try { process.kill(-(child.pid ?? 0), 'SIGKILL') } catch {} }
  onCleanup(kill)
  const timer = setTimeout(kill, ms)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  return { code, out, err }
}

describe('the packed package in another project', () => {
  it('installs from its tarball with no install step of ours; `npx p2pmq demo` and `p2pmq broker` (TCP, its page and its metrics, without the optional WebRTC) run there', async () => {
    const packDir = await tempDir('p2pmq-pack-')
    const packed = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], REPO, 60_000, process.env)
    expect(packed.code, packed.err).toBe(0)
    const [{ filename, files }] = JSON.parse(packed.out) as Array<{ filename: string, files: Array<{ path: string }> }>
    const shipped = files.map((f) => f.path)
    expect(shipped).toContain('dist/cmd/p2pmq.js')
    expect(shipped).toContain('web/dist/index.html') // the broker's web page
    expect(shipped.filter((p) => /^(test|bench|patches|src|cmd|dist\/bench|dist\/test)\//.test(p) || p.endsWith('.map'))).toEqual([])

    const project = await tempDir('p2pmq-user-')
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, type: 'module' }))
    const installed = await sh('npm', ['install', '--no-audit', '--no-fund', join(packDir, filename)], project, 240_000)
    expect(installed.code, installed.err).toBe(0)
    // react-native comes only through @libp2p/webrtc's peers, and that is an optional peer of ours
    expect(existsSync(join(project, 'node_modules', 'react-native'))).toBe(false)
    const manifest = JSON.parse(await readFile(join(project, 'node_modules', 'p2pmq', 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
    expect(manifest.scripts?.postinstall).toBeUndefined()

    const demo = await sh('npx', ['--no-install', 'p2pmq', 'demo', '-count=4', '-interval=50'], project, 60_000, { ...USER_ENV, P2PMQ_HOME: join(project, 'home') })
    expect(demo.code, demo.err).toBe(0)
    expect(demo.out).toMatch(/^4 answers from 2 consumers/m)

    // Without the optional @libp2p/webrtc, a broker says what it lacks and serves TCP and its page.
    const broker = spawn('npx', ['--no-install', 'p2pmq', 'broker', '-http=0', '-memory'], { cwd: project, env: { ...USER_ENV, P2PMQ_HOME: join(project, 'home') }, detached: true })
    onCleanup(() => { try { process.kill(-(broker.pid ?? 0), 'SIGKILL') } catch {} })
    let brokerOut = ''
    let brokerErr = ''
    broker.stdout.on('data', (b: Buffer) => { brokerOut += b.toString() })
    broker.stderr.on('data', (b: Buffer) => { brokerErr += b.toString() })
    await until(() => /^Web: http/m.test(brokerOut), 30_000, 'the broker to serve its page')
    expect(brokerOut).toMatch(/^Listening on \/ip4\/127\.0\.0\.1\/tcp\//m)
    expect(brokerErr).toMatch(/needs the optional package @libp2p\/webrtc/)
    const web = /^Web: (\S+)/m.exec(brokerOut)?.[1] ?? ''
    const page = await fetch(web)
    expect(page.status).toBe(200)
    expect(await page.text()).toMatch(/<html/i)
    // Its metrics, with the installed package's version.
    const metrics = await fetch(new URL('metrics', web))
    expect(await metrics.text()).toMatch(/^p2pmq_info\{version="\d+\.\d+\.\d+",peer_id="12D3KooW\w+"\} 1$/m)

    const imported = await sh('node', ['--input-type=module', '-e', "import('p2pmq').then((m) => console.log(typeof m.createBroker, typeof m.createProducer))"], project, 30_000)
    expect(imported.out.trim(), imported.err).toBe('function function')
  }, 360_000)
})
