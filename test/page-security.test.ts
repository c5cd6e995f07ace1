/**
 * The web page is not an XSS hole, in a real browser (Debian's headless Chromium, playwright-core):
 * commands, payloads, headers, group names and answers with HTML in them, from the broker and
 * from other peers, are shown as text; the Content-Security-Policy would stop script anyway; the
 * page's private key cannot be read by script.
 */
import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { startBroker } from './cli-helpers.js'
import { browser, hasChromium } from './chromium.js'
import { consumer, producer, tempDir } from './helpers.js'

/** Records, from before the page's own script runs, every CSP violation and what the payloads would set. */
async function watch (page: Page): Promise<{ errors: string[] }> {
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`) })
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`) })
  await page.addInitScript(() => {
    const w = window as any
    w.violations = []
    document.addEventListener('securitypolicyviolation', (e) => { w.violations.push(`${e.violatedDirective} ${e.blockedURI}`) })
  })
  return { errors }
}

// Each would set window.xss if it ran as HTML.
const CMD = 'xss.<img/src=x/onerror=window.xss=1>'
const PAYLOAD = '<img src=x onerror="window.xss=2"><script>window.xss=3</script>'
const GROUP = 'g<svg/onload=window.xss=4>'
const ANSWER = '<b onmouseover="window.xss=5">bold</b><img src=x onerror="window.xss=6">'

describe.runIf(hasChromium)('the web page against injected HTML', () => {
  it('shows commands, payloads, group names and answers with HTML as text; no script runs', async () => {
    const home = await tempDir()
    const { url, tcp } = await startBroker(home, ['-quiet'])
    const page = await (await browser()).newPage()
    const { errors } = await watch(page)
    await page.goto(`${url}?subscribe=${encodeURIComponent('xss.#')}&answer=auto`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })

    // A peer in a group whose name is HTML (listed on the dashboard), answering with HTML.
    const other = await consumer({ address: tcp, home })
    await other.subscribe('echo.html', () => ANSWER, { group: GROUP })
    const p = await producer({ address: tcp, home })
    // A numeric payload puts the command into the values panel; the other into the messages list.
    expect(await p.send(CMD, 42, { headers: { '<i>h</i>': '<img src=x onerror="window.xss=7">' } })).toBe('Answer to 42')
    expect(await p.send(CMD, PAYLOAD, { headers: { note: PAYLOAD } })).toBe(`Answer to ${PAYLOAD}`)
    // The page as a producer: the answer it shows comes from the other peer.
    await page.fill('#send input[name=command]', 'echo.html')
    await page.fill('#send input[name=payload]', 'x')
    await page.click('#send button')
    await page.waitForSelector(`#answer:has-text("(from ${other.peerId})")`, { timeout: 10_000 })
    await page.locator('#clients li', { hasText: GROUP }).waitFor({ timeout: 5_000 })
    await page.locator('#queues tr', { hasText: `echo.html@${GROUP}` }).waitFor({ timeout: 5_000 })

    // Shown literally.
    expect(await page.locator('#values .value span').first().textContent()).toBe(CMD)
    expect(await page.locator('#values .value b').first().textContent()).toBe('42')
    const listed = await page.locator('#messages li').allTextContents()
    expect(listed).toContain(`${CMD}: ${PAYLOAD} → Answer to ${PAYLOAD}`)
    expect(listed).toContain(`${CMD}: 42 → Answer to 42`)
    expect(await page.textContent('#answer')).toBe(`${ANSWER} (from ${other.peerId})`)
    expect(await page.locator('#queues tr td:first-child').allTextContents()).toContain(`echo.html@${GROUP}`)
    // The message browser: a waiting message whose payload and header are HTML.
    await p.publish('held.html', PAYLOAD, { headers: { note: PAYLOAD } })
    await page.fill('#browse input[name=command]', 'held.html')
    await page.click('#browse button:text-is("Show")')
    await page.waitForSelector('#browse-status:text-is("1–1 (the last)")', { timeout: 5_000 })
    expect((await page.locator('#browse-list tbody tr td').allTextContents()).slice(5)).toEqual([`note=${PAYLOAD}`, PAYLOAD])

    // Nothing ran, nothing was even parsed as HTML (so the CSP had nothing to block).
    await page.waitForTimeout(500) // an <img src=x> would have failed to load by now
    expect(await page.evaluate(() => (window as any).xss)).toBeUndefined()
    expect(await page.locator('img, script:not([src]), svg[onload], b[onmouseover]').count()).toBe(0)
    expect(await page.evaluate(() => (window as any).violations)).toEqual([])
    expect(errors).toEqual([])
  })

  it('the Content-Security-Policy blocks inline script and event handlers on the page', async () => {
    const home = await tempDir()
    const { url } = await startBroker(home, ['-quiet'])
    const page = await (await browser()).newPage()
    await watch(page)
    await page.goto(url)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    // What an injection would do if some code put HTML on the page.
    await page.evaluate(() => {
      const div = document.createElement('div')
      div.innerHTML = '<img src="/nothing.png" onerror="window.xss=1">'
      document.body.append(div)
      const s = document.createElement('script')
      s.textContent = 'window.xss = 2'
      document.body.append(s)
    })
    await page.waitForFunction(() => (window as any).violations.length >= 2, undefined, { timeout: 5_000 })
    expect(await page.evaluate(() => (window as any).xss)).toBeUndefined()
    const violations = await page.evaluate(() => (window as any).violations) as string[]
    expect(violations.every((v) => v.startsWith('script-src'))).toBe(true)
  })

  it('keeps its identity across reloads in a key no script can read', async () => {
    const home = await tempDir()
    const { url } = await startBroker(home, ['-quiet'])
    const context = await (await browser()).newContext()
    const page = await context.newPage()
    await page.goto(url)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    const peer = await page.textContent('#peer')
    expect(peer).toMatch(/^12D3KooW/)
    await page.reload()
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 })
    expect(await page.textContent('#peer')).toBe(peer)

    const kept = await page.evaluate(async () => {
      const pair = await new Promise<CryptoKeyPair>((resolve, reject) => {
        const open = indexedDB.open('keyval-store')
        open.onerror = () => { reject(open.error) }
        open.onsuccess = () => {
          const get = open.result.transaction('keyval').objectStore('keyval').get('p2pmq-identity')
          get.onsuccess = () => { resolve(get.result) }
          get.onerror = () => { reject(get.error) }
        }
      })
      const exported = await crypto.subtle.exportKey('pkcs8', pair.privateKey).then(() => 'exported', (err: Error) => err.name)
      return { extractable: pair.privateKey.extractable, exported, storage: Object.keys(localStorage).concat(Object.keys(sessionStorage)) }
    })
    expect(kept).toEqual({ extractable: false, exported: 'InvalidAccessError', storage: [] })
  })
})
