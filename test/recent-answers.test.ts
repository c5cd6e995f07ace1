/** A producer session's recent answers: kept for resends, bounded in age, count and bytes. */
import { describe, expect, it } from 'vitest'
import { RecentAnswers } from '../src/broker/recent-answers.js'
import type { KeptResult } from '../src/broker/mailbox.js'

const answer = (id: string, bytes = 10): KeptResult => ({ id, consumer: 'c', status: 0, attempts: 1, kind: 0, payload: new Uint8Array(bytes), keptAt: 0 })

describe('RecentAnswers', () => {
  it('gives an answer back for 10 s; pruning forgets it after, without new answers', () => {
    const recent = new RecentAnswers()
    recent.add(answer('a'), 1_000)
    expect(recent.get('a', 11_000)?.id).toBe('a')
    expect(recent.get('a', 11_001)).toBeUndefined()
    expect(recent.get('b', 1_000)).toBeUndefined()
    recent.prune(11_001)
    expect(recent.get('a', 1_000)).toBeUndefined()
  })

  it('keeps the newest 1,024 answers and 4 MiB; an answer larger than that is not kept', () => {
    const recent = new RecentAnswers()
    for (let i = 0; i < 1_100; i++) recent.add(answer(`m${i}`), 0)
    expect(recent.get('m75', 0)).toBeUndefined()
    expect(recent.get('m76', 0)?.id).toBe('m76')
    recent.add(answer('big', 3 * 1024 * 1024), 0)
    recent.add(answer('big2', 2 * 1024 * 1024), 0)
    expect(recent.get('big', 0)).toBeUndefined()
    expect(recent.get('big2', 0)?.id).toBe('big2')
    recent.add(answer('huge', 5 * 1024 * 1024), 0)
    expect(recent.get('huge', 0)).toBeUndefined()
  })
})
