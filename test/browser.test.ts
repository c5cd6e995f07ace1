/**
 * The web page in a real browser (Debian's headless Chromium, driven by playwright-core): it
 * connects to the broker over WebRTC Direct, subscribes, and answers what a producer sends.
 * Needs /usr/bin/chromium (`.ci/run` installs it) and the built page (`npm run build:web`).
 */
import { mkdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { killGroup, startBroker } from './cli-helpers.js'
import { browser, hasChromium } from './chromium.js'
import { createServer, type AddressInfo } from 'node:net'
import { consumer, onCleanup, producer, tempDir } from './helpers.js'
import { createAdmin, type AnsweredResult } from '../src/index.js'

describe.runIf(hasChromium)('the web page in Chromium', () => {
  it('connects over WebRTC Direct, subscribes, and answers a producer\'s messages', async () => {
    const home = await tempDir()
    const { url, tcp } = await startBroker(home)
    const page = await (await browser()).newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`${url}?subscribe=browser.work&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    expect(await page.textContent('#transport')).toContain('/webrtc-direct/')
    const pagePeer = await page.textContent('#peer') as string
    expect(pagePeer).toMatch(/^12D3KooW/)

    const p = await producer({ address: tcp, home })
    const replies: AnsweredResult[] = []
    for (let i = 0; i < 20; i++) replies.push(await p.request('browser.work', `m${i}`, { timeout: 10_000 }))
    expect(replies.map((r) => r.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `Answer to m${i}`))
    expect(new Set(replies.map((r) => r.consumer))).toEqual(new Set([pagePeer]))
    expect(await page.locator('#messages li').count()).toBe(20)
    expect(errors).toEqual([])
  })

  it('shows the broker live: queue depth and consumers as the broker reports them, clients, latest values', async () => {
    const home = await tempDir()
    const { url, tcp } = await startBroker(home)
    const page = await (await browser()).newPage({ viewport: { width: 1000, height: 800 } })
    await page.goto(`${url}?subscribe=num_users&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    const pagePeer = await page.textContent('#peer') as string

    const p = await producer({ address: tcp, home })
    for (const n of [10, 20, 15]) await p.send('num_users', n)
    for (let i = 0; i < 3; i++) await p.publish('backlog', i) // no consumer: they wait
    await page.waitForSelector('#values [data-command="num_users"] b:text-is("15")', { timeout: 5_000 })

    // What the page shows is what the broker reports.
    const row = async (queue: string): Promise<string[]> => await page.locator(`#queues tr[data-queue="${queue}"] td`).allTextContents()
    await page.waitForSelector('#queues tr[data-queue="backlog"] td:nth-child(2):text-is("3")', { timeout: 5_000 })
    const admin = await createAdmin({ broker: tcp, home })
    onCleanup(async () => { await admin.stop() })
    const stats = await admin.stats()
    const backlog = stats.queues.find((q) => q.command === 'backlog')
    const numUsers = stats.queues.find((q) => q.command === 'num_users')
    expect((await row('backlog')).slice(1, 6)).toEqual([backlog?.depth, backlog?.inFlight, backlog?.delayed, backlog?.deadLetters, backlog?.consumers].map(String))
    expect((await row('num_users@default'))[5]).toBe(String(numUsers?.consumers))
    expect(numUsers?.consumers).toBe(1)
    expect(await page.textContent(`#clients li[data-peer="${pagePeer}"]`)).toContain('(browser)')
    mkdirSync('test-artifacts', { recursive: true })
    await page.screenshot({ path: 'test-artifacts/page-live.png', fullPage: true })

    // Past 1,000 queues the broker lists the deepest, and the page says how many it left out.
    await Promise.all(Array.from({ length: 1_000 }, async (_, i) => await p.publish(`spam.${i}`, i)))
    await page.waitForSelector('#queues tr.more:has-text("and 2 more, shallower")', { timeout: 10_000 })
    expect(await page.locator('#queues tbody tr').count()).toBe(1_001)
    expect((await row('backlog'))[1]).toBe('3')
  })

  it('sends a command from the page and shows the answer; carries messages larger than a WebRTC message', async () => {
    const home = await tempDir()
    const { url, tcp } = await startBroker(home)
    const c = await consumer({ address: tcp, home })
    await c.subscribe('echo', (m) => `echo of ${(m.payload as string).length} chars`)
    const page = await (await browser()).newPage()
    await page.goto(`${url}?subscribe=big&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    await page.fill('#send input[name=command]', 'echo')
    await page.fill('#send input[name=payload]', 'hello')
    await page.click('#send button')
    await page.waitForSelector(`#answer:has-text("echo of 5 chars (from ${c.peerId})")`, { timeout: 5_000 })

    // Answered by hand: the message waits for its button.
    await page.fill('#subscribe input[name=commands]', 'manual')
    await page.uncheck('#subscribe input[name=auto]')
    await page.click('#subscribe button')
    const asker = await producer({ address: tcp, home })
    const manual = asker.send('manual', 'please', { timeout: 10_000 })
    await page.click('#messages li[data-command="manual"] button', { timeout: 5_000 })
    expect(await manual).toBe('Answer to please')

    // 100 KB each way: over data channel messages of at most 16 KiB.
    const p = await producer({ address: tcp, home })
    const big = 'x'.repeat(100_000)
    expect(await p.send('big', big, { timeout: 10_000 })).toBe(`Answer to ${big}`)
  })

  it('reconnects and resubscribes after the broker restarts on a new WebRTC port', async () => {
    const home = await tempDir()
    const httpPort = await freeTcpPort()
    const first = await startBroker(home, [`-http=${httpPort}`])
    const url = `http://127.0.0.1:${httpPort}/`
    const page = await (await browser()).newPage()
    await page.goto(`${url}?subscribe=work&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    const pagePeer = await page.textContent('#peer') as string
    killGroup(first.proc.child)
    await first.proc.exited
    await page.waitForSelector('#state[data-state="reconnecting"]', { timeout: 10_000 })
    const second = await startBroker(home, [`-http=${httpPort}`])
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 })
    const p = await producer({ address: second.tcp, home })
    const reply = await p.request('work', 'after the restart', { timeout: 10_000 })
    expect(reply).toMatchObject({ payload: 'Answer to after the restart', consumer: pagePeer })
  })
})

async function freeTcpPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}
