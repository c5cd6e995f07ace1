/**
 * The gateway's tokens on a real disk: what the files keep (no token, owner-only), the key a token
 * acts as (bound to the gateway's secret), another process's changes seen, and hostile files
 * refused with the file named, without hanging on a FIFO or reading /dev/zero.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { GATEWAY_SECRET_FILE, TOKENS_FILE, TokenFile, TokenFileError, tokenKey } from '../src/gateway/tokens.js'
import { tempDir } from './helpers.js'

describe('gateway tokens', () => {
  it('keeps only hashes, owner-only; a token acts as its peer only with the gateway\'s secret', async () => {
    const dir = await tempDir()
    const tokens = new TokenFile(dir)
    const { token, entry } = await tokens.add('billing')
    expect(token).toMatch(/^p2pmq_[A-Za-z0-9_-]{43}$/)
    const text = await readFile(join(dir, TOKENS_FILE), 'utf8')
    expect(text).not.toContain(token)
    expect(text).not.toContain(token.slice(6))
    for (const file of [TOKENS_FILE, GATEWAY_SECRET_FILE]) expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600)

    expect(tokens.lookup(token)).toEqual(entry)
    expect(tokens.lookup(`${token}x`)).toBeUndefined()
    expect(tokens.lookup('')).toBeUndefined()
    expect(peerIdFromPrivateKey(await tokens.key(token)).toString()).toBe(entry.peer)
    // Another secret (a copy of the tokens file elsewhere, or the token alone) gives another peer.
    expect(peerIdFromPrivateKey(await tokenKey(randomBytes(32), token)).toString()).not.toBe(entry.peer)

    await expect(tokens.add('billing')).rejects.toThrow(TokenFileError)
    await expect(tokens.add('bad name')).rejects.toThrow(TypeError)
    const second = await tokens.add('ops')
    expect(second.entry.peer).not.toBe(entry.peer)

    // Another process's change is seen (here another TokenFile on the same directory).
    const other = new TokenFile(dir)
    expect(other.lookup(second.token)?.name).toBe('ops')
    expect((await other.remove('billing'))?.peer).toBe(entry.peer)
    expect(await other.remove('billing')).toBeUndefined()
    expect(tokens.list().map((e) => e.name)).toEqual(['ops'])
    expect(tokens.lookup(token)).toBeUndefined()
  })

  it('takes adds and removes made at once (no change lost, no removed token back), and refuses a new secret for old tokens', async () => {
    const dir = await tempDir()
    await new TokenFile(dir).add('victim')
    const made = await Promise.all([
      new TokenFile(dir).remove('victim'),
      ...Array.from({ length: 10 }, async (_, i) => await new TokenFile(dir).add(`n${i}`))
    ])
    expect(made[0]?.name).toBe('victim')
    expect(new TokenFile(dir).list().map((e) => e.name).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort())

    // Without the secret, a new one would make the kept tokens act as other peers: refused.
    await unlink(join(dir, GATEWAY_SECRET_FILE))
    await expect(new TokenFile(dir).add('late')).rejects.toThrow(/gateway.key is missing, and 10 token\(s\) need it/)
    // A broken secret: lookups fail, but the tokens can still be listed and removed.
    await writeFile(join(dir, GATEWAY_SECRET_FILE), 'short')
    const tokens = new TokenFile(dir)
    expect(tokens.list()).toHaveLength(10)
    expect(await tokens.remove('n0')).toBeDefined()
  })

  it('keeps the tokens it read when the file breaks later, and says so once', async () => {
    const dir = await tempDir()
    const { token } = await new TokenFile(dir).add('a')
    const told: string[] = []
    const tokens = new TokenFile(dir, (err, kept) => { told.push(`${kept}: ${err.message}`) })
    expect(tokens.lookup(token)?.name).toBe('a')
    await writeFile(join(dir, TOKENS_FILE), '{garbage')
    for (let i = 0; i < 3; i++) {
      expect(tokens.list()[0].name).toBe('a')
      expect(tokens.lookup(token)?.name).toBe('a')
    }
    expect(told).toHaveLength(1)
    expect(told[0]).toMatch(/^true: .*gateway-tokens\.json is not valid JSON/)
    // Never read: refused (and told).
    const fresh = new TokenFile(dir, (err, kept) => { told.push(`${kept}: ${err.message}`) })
    expect(() => fresh.lookup(token)).toThrow(TokenFileError)
    expect(told[1]).toMatch(/^false: /)
  })

  it('refuses hostile files with the file named, and reads nothing endless', async () => {
    const dir = await tempDir()
    const tokens = new TokenFile(dir)
    await tokens.add('a')
    const path = join(dir, TOKENS_FILE)
    const refused = async (what: string): Promise<void> => {
      const fresh = new TokenFile(dir)
      expect(() => fresh.list(), what).toThrow(TokenFileError)
      expect(() => fresh.list(), what).toThrow(dir)
    }
    const good = JSON.parse(await readFile(path, 'utf8')).tokens[0]
    const variants: Array<[string, string]> = [['not JSON', '{'], ['an array', '[]'], ['no list', '{"tokens": 1}'], ['a bad entry', '{"tokens": [{"name": "a"}]}'],
      ['a bad hash', JSON.stringify({ tokens: [{ ...good, sha256: 'zz' }] })],
      ['a name with a terminal escape', JSON.stringify({ tokens: [{ ...good, name: 'a\u001b[2J' }] })],
      ['a peer that is not one', JSON.stringify({ tokens: [{ ...good, peer: 'not-a-peer' }] })],
      ['two of one name', JSON.stringify({ tokens: [good, { ...good, sha256: 'a'.repeat(64) }] })]]
    for (const [what, content] of variants) {
      await writeFile(path, content)
      await refused(what)
    }
    await unlink(path)
    execFileSync('mkfifo', [path])
    await refused('a FIFO')
    await unlink(path)
    await symlink('/dev/zero', path)
    await refused('a link to /dev/zero')
    await unlink(path)
    expect(new TokenFile(dir).list()).toEqual([])
    await writeFile(join(dir, GATEWAY_SECRET_FILE), 'short')
    await writeFile(path, '{"tokens": []}')
    await expect(new TokenFile(dir).add('b')).rejects.toThrow(/gateway.key is not 32 bytes/)
  })
})
