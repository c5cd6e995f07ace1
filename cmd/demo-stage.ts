/** What the demos share: a p2pmq home of their own, and everything they start stopped at the end. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Stage {
  /** A fresh home, so a demo never takes the identity of a broker the user runs. */
  home: string
  /** Runs `stop` when the demo ends, before what was registered earlier (the broker goes last). */
  stopLater: (stop: () => Promise<void> | void) => void
}

export async function withStage (demo: (stage: Stage) => Promise<number>): Promise<number> {
  const home = await mkdtemp(join(tmpdir(), 'p2pmq-demo-'))
  const stops: Array<() => Promise<void> | void> = []
  try {
    return await demo({ home, stopLater: (stop) => { stops.unshift(stop) } })
  } finally {
    for (const stop of stops) {
      try { await stop() } catch {}
    }
    await rm(home, { recursive: true, force: true, maxRetries: 3 })
  }
}
