/**
 * docs/p2pmq-broker.service, the systemd unit the README gives: `systemd-analyze verify` finds no
 * fault in it, and its command, run with its environment as systemd would (the paths moved into a
 * temp dir), starts a broker from the config file it names, which SIGTERM stops with exit 0 within
 * its TimeoutStopSec; a broken config file exits 2, which the unit does not restart.
 * (No systemd runs as PID 1 here, so the unit is parsed, not started.)
 */
import { spawnSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { logged, run } from './cli-helpers.js'
import { tempDir, until } from './helpers.js'

const UNIT = fileURLToPath(new URL('../docs/p2pmq-broker.service', import.meta.url))
const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0

/** The unit's `key=value` lines of `section`, in order (comments and blank lines left out). */
function section (text: string, name: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  let current = ''
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header != null) {
      current = header[1]
      continue
    }
    const eq = line.indexOf('=')
    if (current === name && eq > 0) out.push([line.slice(0, eq), line.slice(eq + 1)])
  }
  return out
}

describe('the systemd unit', () => {
  it.skipIf(!ANALYZE)('systemd-analyze verify finds no fault (its ExecStart pointed at this checkout\'s p2pmq; skipped where systemd-analyze is not installed: .ci/run installs it)', async () => {
    const dir = await tempDir()
    const copy = join(dir, 'p2pmq-broker.service')
    const text = await readFile(UNIT, 'utf8')
    await writeFile(copy, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath} ${BIN}`))
    const verified = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' })
    expect(verified.stderr + verified.stdout).toBe('')
    expect(verified.status).toBe(0)
  })

  it('its command with its environment starts a broker from the config file, and SIGTERM stops it with exit 0', async () => {
    const text = await readFile(UNIT, 'utf8')
    const service = section(text, 'Service')
    const get = (key: string): string[] => service.filter(([k]) => k === key).map(([, v]) => v)
    const env = Object.fromEntries(get('Environment').map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]))
    expect(Object.keys(env).sort()).toEqual(['P2PMQ_BROKER_CONFIG', 'P2PMQ_HOME'])
    const [program, ...args] = get('ExecStart')[0].split(' ')
    expect(program).toMatch(/\/p2pmq$/)
    expect(get('RestartPreventExitStatus')).toEqual(['2'])
    const stopWithin = Number(get('TimeoutStopSec')[0]) * 1000
    expect(get('ReadWritePaths')).toEqual([env.P2PMQ_HOME])

    // The unit's paths, moved into a temp dir: its home, and the config file it names.
    const root = await tempDir()
    const home = join(root, env.P2PMQ_HOME)
    const config = join(root, 'broker.json')
    await writeFile(config, JSON.stringify({ http: '0', listen: ['/ip4/127.0.0.1/tcp/0'], quiet: true }))
    const broker = run(args, home, [], { P2PMQ_BROKER_CONFIG: config })
    await until(() => broker.out.some((l) => l.startsWith('Web: ')), 30_000, 'the broker to start')
    expect(broker.out.some((l) => l.startsWith('Listening on /ip4/127.0.0.1/tcp/'))).toBe(true)
    const started = Date.now()
    broker.child.kill('SIGTERM')
    expect(await broker.exited).toBe(0)
    expect(Date.now() - started).toBeLessThan(stopWithin)
    expect(logged(broker.out, 'INFO')).toContain('Stopping broker')

    // A config file it cannot use: exit 2, which the unit does not restart.
    await writeFile(config, '{ "max-payload": "big" }')
    const refused = run(args, home, [], { P2PMQ_BROKER_CONFIG: config })
    expect(await refused.exited).toBe(2)
    expect(refused.err.join('\n')).toContain(`${config}: "max-payload" must be a number`)
  }, 60_000)
})
