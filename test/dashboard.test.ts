/**
 * The dashboard in Chromium against a real `p2pmq broker`: the overview, the queues sorted and
 * filtered, the rates chart, clients grouped by peer, and the actions of an admin-write page
 * (purge, replay dead letters, delete a queue, publish), each checked against the broker's stats.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { startBroker } from './cli-helpers.js'
import { browser, hasChromium } from './chromium.js'
import { consumer, onCleanup, producer, tempDir, until } from './helpers.js'
import { RejectMessage, createAdmin } from '../src/index.js'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

describe.runIf(hasChromium)('the dashboard in Chromium', () => {
  it('shows the overview, sorts and filters queues, charts rates, groups clients by peer, and acts on queues', async () => {
    const home = await tempDir()
    const { url, tcp } = await startBroker(home)
    const address = { address: tcp, home }
    const admin = await createAdmin({ broker: tcp, home })
    onCleanup(async () => { await admin.stop() })
    const depth = async (queue: string): Promise<number | undefined> => (await admin.stats()).queues.find((q) => `${q.command}@${q.group}` === queue)?.depth

    // A group's queue with nobody consuming it now, and a dead letter whose consumer takes it on replay.
    const billing = await consumer(address)
    await billing.subscribe('orders.*', () => {}, { group: 'billing' })
    await billing.stop()
    const p = await producer(address)
    for (let i = 0; i < 24; i++) await p.publish('orders.new', { n: i }, { headers: { shop: `s${i}` } })
    await p.publish('orders.new', 'y'.repeat(5000))
    const worker = await consumer(address)
    const seen = new Set<string>()
    await worker.subscribe('jobs.bad', (m) => {
      if (seen.has(m.id)) return 'done'
      seen.add(m.id)
      throw new RejectMessage('not the first time')
    }, { group: 'w' })
    await p.publish('jobs.bad', 'x')
    await until(() => seen.size === 1, 5_000, 'the job to fail once')
    // Traffic for the chart: 40 messages a second, answered, while the page looks.
    await worker.subscribe('jobs.ok', () => 'done', { group: 'w' })
    let flowing = true
    const flow = (async () => {
      for (let i = 0; flowing && i < 2_000; i++) {
        await p.publish('jobs.ok', i)
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    })()
    onCleanup(async () => { flowing = false; await flow })

    const page = await (await browser()).newPage({ viewport: { width: 1100, height: 900 } })
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()) })
    page.on('dialog', (d) => { void d.accept() })
    await page.goto(url)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    const pagePeer = await page.textContent('#peer') as string
    await page.waitForSelector('#queues tr[data-queue="orders.new@billing"] td:nth-child(2):text-is("25")', { timeout: 10_000 })
    await page.waitForSelector('#queues tr[data-queue="jobs.bad@w"] td:nth-child(5):text-is("1")', { timeout: 10_000 })

    // The overview.
    const item = async (name: string): Promise<string | null> => await page.textContent(`#overview [data-item="${name}"] dd`)
    expect(await item('version')).toBe(VERSION)
    expect(await item('up')).toMatch(/^\d+ (s|min)/)
    expect(await item('memory')).toMatch(/MiB \(heap [\d.]+ MiB\)$/)
    expect(await item('store')).toMatch(/^[\d.]+ (B|KiB|MiB)$/)
    expect(Number(await item('published'))).toBeGreaterThanOrEqual(6)
    expect(await item('producers held by flow control')).toBe('0')

    // Sorted by depth (the default, deepest first), then by name; filtered.
    const names = async (): Promise<string[]> => await page.locator('#queues tbody tr').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.queue ?? ''))
    expect((await names())[0]).toBe('orders.new@billing')
    await page.fill('#queue-filter', 'jobs.ok')
    await page.click('#queues tr[data-queue="jobs.ok@w"] td:first-child')
    expect(await page.textContent('#chart-title')).toBe('jobs.ok@w')
    await page.fill('#queue-filter', '')
    await page.click('#queues th[data-sort="queue"]')
    const byName = await names()
    expect(byName).toEqual([...byName].sort((a, b) => a.localeCompare(b)))
    expect(await page.getAttribute('#queues th[data-sort="queue"]', 'data-order')).toBe('ascending')
    await page.fill('#queue-filter', 'orders')
    expect((await names()).every((n) => n.includes('orders'))).toBe(true)
    expect(await page.textContent('#queue-count')).toMatch(/^1 of \d+$/)
    await page.fill('#queue-filter', '')

    // The chart: all queues, then one.
    await page.waitForSelector('#rates-chart canvas')
    await page.click('#chart-all')
    expect(await page.textContent('#chart-title')).toBe('all queues')
    await page.click('#queues tr[data-queue="orders.new@billing"] td:first-child')
    expect(await page.textContent('#chart-title')).toBe('orders.new@billing')

    // Clients: one line per peer, with its roles.
    // (Its streams open one after another: the latest stats may not have them all yet.)
    await page.waitForSelector(`#clients li[data-peer="${pagePeer}"][data-roles~="consumer"][data-roles~="admin"]`, { timeout: 10_000 })
    const mine = page.locator(`#clients li[data-peer="${pagePeer}"]`)
    expect(await mine.count()).toBe(1)
    expect((await mine.getAttribute('data-roles'))?.split(' ')).toEqual(expect.arrayContaining(['admin', 'consumer']))
    expect(await mine.textContent()).toContain('(browser)')

    // A few seconds of rates in the chart, for the screenshot (the README's).
    await page.click('#chart-all')
    await new Promise((resolve) => setTimeout(resolve, 6_000))
    expect(Number(await page.locator('#queues tr[data-queue="jobs.ok@w"] td:nth-child(8)').textContent())).toBeGreaterThan(0)

    // Browsing a queue's messages, 20 at a time, with headers and payloads.
    await page.click('#queues tr[data-queue="orders.new@billing"] button[data-action="browse"]')
    await page.waitForSelector('#browse-status:text-is("1–20")', { timeout: 5_000 })
    const listed = async (): Promise<string[][]> => await page.locator('#browse-list tbody tr').evaluateAll((rows) => rows.map((r) => Array.from(r.children, (c) => c.textContent ?? '')))
    const firstPage = await listed()
    expect(firstPage).toHaveLength(20)
    expect(firstPage[0].slice(1, 4)).toEqual(['orders.new@billing', 'pending', '0'])
    expect(firstPage[0].slice(5)).toEqual(['shop=s0', '{"n":0}'])
    await page.click('#browse-next')
    await page.waitForSelector('#browse-status:text-is("21–25 (the last)")', { timeout: 5_000 })
    const lastPage = await listed()
    expect(lastPage.map((r) => r[6])).toEqual(['{"n":20}', '{"n":21}', '{"n":22}', '{"n":23}', `${'y'.repeat(4096)} … (5000 bytes)`])
    expect(await page.isDisabled('#browse-next')).toBe(true)
    await page.click('#browse-prev')
    await page.waitForSelector('#browse-status:text-is("1–20")', { timeout: 5_000 })
    mkdirSync('test-artifacts', { recursive: true })
    await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true })
    flowing = false

    // Actions (this page is on the broker's host: protected mode gives it admin write).
    await page.click('#queues tr[data-queue="orders.new@billing"] button[data-action="purge"]')
    await page.waitForSelector('#action-result:text-is("Purged 25 messages of orders.new@billing")', { timeout: 5_000 })
    expect(await depth('orders.new@billing')).toBe(0)
    await page.click('#queues tr[data-queue="jobs.bad@w"] button[data-action="replay"]')
    await page.waitForSelector('#action-result:text-is("Replayed 1 dead letters of jobs.bad")', { timeout: 5_000 })
    await page.waitForSelector('#queues tr[data-queue="jobs.bad@w"] td:nth-child(5):text-is("0")', { timeout: 5_000 })
    // A queue with a consumer is not deleted: the page says why.
    await page.click('#queues tr[data-queue="jobs.bad@w"] button[data-action="delete"]')
    await page.waitForSelector('#action-result.error', { timeout: 5_000 })
    expect(await page.textContent('#action-result')).toContain('jobs.bad@w')
    expect(await depth('jobs.bad@w')).toBe(0)
    await page.click('#queues tr[data-queue="orders.new@billing"] button[data-action="delete"]')
    await page.waitForSelector('#action-result:text-is("Deleted orders.new@billing and its 0 messages")', { timeout: 5_000 })
    await page.waitForSelector('#queues tr[data-queue="orders.new@billing"]', { state: 'detached', timeout: 5_000 })
    // Publish without waiting for an answer: the group keeps its binding, so its queue comes back.
    await page.fill('#send input[name="command"]', 'orders.new')
    await page.fill('#send input[name="payload"]', 'from the page')
    await page.click('#send button[name="publish"]')
    await page.waitForSelector('#answer:has-text("published ")', { timeout: 5_000 })
    await page.waitForSelector('#queues tr[data-queue="orders.new@billing"] td:nth-child(2):text-is("1")', { timeout: 5_000 })
    expect(errors).toEqual([])
  })
})
