/**
 * Debian's headless Chromium for the browser tests, driven by playwright-core (`.ci/run` installs
 * it). Without it those tests are skipped, and say so.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { onCleanup } from './helpers.js'

export const CHROMIUM = '/usr/bin/chromium'

export const hasChromium = existsSync(CHROMIUM)
if (!hasChromium) console.warn(`browser tests skipped: no ${CHROMIUM} (apt-get install chromium)`)

/**
 * A Chromium closed when the test ends. `executablePath`: a wrapper that runs /usr/bin/chromium
 * with "$@" (e.g. `ip netns exec <ns>` before it, to put the browser behind a test NAT).
 */
export async function browser (executablePath = CHROMIUM): Promise<Browser> {
  const b = await chromium.launch({
    executablePath,
    // Everything stays on this machine (LIBP2P-NOTES.md): no background traffic, real local IPs.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-features=WebRtcHideLocalIpsWithMdns']
  })
  onCleanup(async () => { await b.close() })
  return b
}
