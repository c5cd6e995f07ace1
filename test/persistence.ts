/** A Persistence for engine tests that keep no store: records nothing, except what `overrides` records. */
import type { Persistence } from '../src/broker/persistence.js'

export function persistence (overrides: Partial<Persistence> = {}): Persistence {
  return { enqueued: () => {}, delayed: () => {}, requeued: () => {}, adopted: () => {}, bound: () => {}, groupExpiry: () => {}, ...overrides }
}
