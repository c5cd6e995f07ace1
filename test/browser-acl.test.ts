/**
 * The page under a broker's access control list, in a real Chromium against a real `p2pmq broker
 * -acl=<file>`: it shows what it may do, hides the dashboard without admin read, says what it was
 * refused with the line that allows it, picks up rights given at run time without a reload, and a
 * page the broker refuses at connection time says so instead of spinning.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { startBroker } from './cli-helpers.js'
import { browser, hasChromium } from './chromium.js'
import { onCleanup, tempDir } from './helpers.js'
import { createAdmin, createProducer, type AclFile } from '../src/index.js'
import { loadIdentity } from '../src/home.js'

/** An admin identity kept in `dir`, and its peer ID. */
async function adminIdentity (dir: string): Promise<string> {
  const id = await loadIdentity(dir)
  await id.release()
  return peerIdFromPrivateKey(id.privateKey).toString()
}

describe.runIf(hasChromium)('the web page under an ACL, in Chromium', () => {
  it('shows its rights and the lines that allow the rest, and takes rights given at run time', async () => {
    const home = await tempDir()
    const adminDir = join(home, 'admin-id')
    const operator = await adminIdentity(adminDir)
    const aclFile = join(home, 'acl.json')
    const acl: AclFile = { peers: { [operator]: { admin: 'write' }, '*': { consume: [{ pattern: 'open.*' }] } } }
    await writeFile(aclFile, JSON.stringify(acl))
    const { url, tcp } = await startBroker(home, [`-acl=${aclFile}`])
    const page = await (await browser()).newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`${url}?subscribe=secret&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    const pagePeer = await page.textContent('#peer') as string
    expect(pagePeer).toMatch(/^12D3KooW/)

    // What `*` grants, no dashboard, and the refused subscription with the line that allows it.
    await page.waitForSelector('#rights:text-is("consume open.*")', { timeout: 10_000 })
    expect(await page.isVisible('#dashboard')).toBe(false)
    expect(await page.textContent('#dashboard-ask')).toBe(`p2pmq acl allow ${pagePeer} admin read`)
    await page.waitForSelector('#ask:not([hidden])', { timeout: 10_000 })
    expect(await page.locator('#ask-lines code').allTextContents()).toEqual([`p2pmq acl allow ${pagePeer} consume secret`])
    expect(await page.textContent('#denied')).toContain('secret')

    // The operator allows the page: the dashboard appears within the page's 10 s re-check, and
    // subscribing again works and drops the line.
    const admin = await createAdmin({ broker: tcp, home, dataDir: adminDir })
    onCleanup(async () => { await admin.stop() })
    await admin.allow(pagePeer, { consume: 'secret' })
    await admin.allow(pagePeer, { admin: 'read' })
    await page.waitForSelector('#dashboard:not([hidden])', { timeout: 15_000 })
    expect(await page.textContent('#rights')).toBe('consume secret, open.*; admin read')
    await page.fill('#subscribe input[name=commands]', 'secret')
    await page.click('#subscribe button')
    await page.waitForSelector('#ask[hidden]', { state: 'attached', timeout: 10_000 })
    await page.waitForSelector('#clients li', { timeout: 5_000 })
    // Admin read: a queue can be browsed, not purged, deleted or replayed.
    await admin.allow(operator, { produce: 'secret' })
    const p = await createProducer({ broker: tcp, home, node: admin.node })
    onCleanup(async () => { await p.stop() })
    expect(await p.send('secret', 'x')).toBe('Answer to x')
    await page.waitForSelector('#queues tr[data-queue="secret@default"] button[data-action="browse"]', { timeout: 5_000 })
    expect(await page.locator('#queues button[data-action="purge"], #queues button[data-action="delete"], #queues button[data-action="replay"]').count()).toBe(0)

    // Withdrawn again: the dashboard goes, the page says why.
    await admin.deny(pagePeer, { admin: 'read' })
    await page.waitForSelector('#dashboard[hidden]', { state: 'attached', timeout: 15_000 })
    expect(errors).toEqual([])
  })

  it('a page the broker refuses at connection time says what that may mean, with its peer ID', async () => {
    const home = await tempDir()
    const operator = await adminIdentity(join(home, 'admin-id'))
    const aclFile = join(home, 'acl.json')
    await writeFile(aclFile, JSON.stringify({ peers: { [operator]: { admin: 'write' } } }))
    const { url } = await startBroker(home, [`-acl=${aclFile}`])
    const page = await (await browser()).newPage()
    await page.goto(url)
    // (A browser's WebRTC dial sees the refusal only as a timeout: the page says what it may mean.)
    await page.waitForSelector('#ask:not([hidden])', { timeout: 30_000 })
    const pagePeer = await page.textContent('#peer') as string
    expect(await page.textContent('#retry')).toMatch(/^not connected: /)
    expect(await page.textContent('#denied')).toContain('grants this peer ID nothing')
    expect(await page.locator('#ask-lines code').allTextContents()).toEqual([`p2pmq acl allow ${pagePeer} admin read`])
    expect(await page.getAttribute('#state', 'data-state')).not.toBe('connected')
  }, 120_000)
})
