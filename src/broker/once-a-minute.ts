/**
 * Tells a thing at most once a minute per key (a peer; a peer and a limit), counting what it held
 * back: the broker's log lines about refusals of its ACL and about limits per peer, which a
 * hostile peer could otherwise make by the thousand a second.
 */

/** ms one key is told once in. */
export const TELL_INTERVAL = 60_000
/** Keys remembered at most (the longest untold are forgotten first: a hostile peer cannot grow it). */
const MAX_KEYS = 10_000

export class OnceAMinute {
  private readonly last = new Map<string, { at: number, held: number }>()

  /**
   * Whether to tell `key` now: undefined when it was told less than TELL_INTERVAL ago (then it is
   * counted), else how many times it was held back since it was last told.
   */
  tell (key: string, now: number): number | undefined {
    const last = this.last.get(key)
    if (last != null && now - last.at < TELL_INTERVAL) {
      last.held++
      return undefined
    }
    this.last.delete(key)
    if (this.last.size >= MAX_KEYS) this.last.delete(this.last.keys().next().value as string)
    this.last.set(key, { at: now, held: 0 })
    return last?.held ?? 0
  }
}
