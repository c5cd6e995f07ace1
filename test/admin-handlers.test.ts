/**
 * The broker's admin handler table on its own: a real engine (pure, in memory) with the scheduler,
 * deletions and dead letters the service builds, no network. What each method checks, and that
 * only the table's own methods run.
 */
import { describe, expect, it } from 'vitest'
import { ConflictError, InvalidArgumentError, NotFoundError, UnknownMethodError } from '../src/errors.js'
import { ErrorCode } from '../src/errors.js'
import { AdminDispatcher } from '../src/broker/admin-handlers.js'
import { DeadLetters } from '../src/broker/dead-letters.js'
import { Deletions } from '../src/broker/deletions.js'
import { QueueEngine } from '../src/broker/engine.js'
import { Scheduler } from '../src/broker/schedules.js'
import { AccessControl } from '../src/broker/acl-control.js'
import { Acl } from '../src/broker/acl.js'
import { PermissionDeniedError } from '../src/errors.js'
import type { Logger } from '@libp2p/interface'

const quiet = Object.assign((): void => {}, { error: (): void => {}, trace: (): void => {}, enabled: false }) as unknown as Logger

function setup (): { admin: AdminDispatcher, engine: QueueEngine<string>, wakes: number[] } {
  const engine = new QueueEngine<string>({ deliver: () => {}, completed: () => {}, failed: () => {} },
    { visibilityTimeout: 1_000, maxAttempts: 3, maxMessages: 1_000, highWater: Infinity })
  const wakes: number[] = []
  const access = new AccessControl(Acl.open())
  const scheduler = new Scheduler(engine, undefined, (at) => { wakes.push(at) }, quiet)
  const admin = new AdminDispatcher({
    engine,
    scheduler,
    deletions: new Deletions(engine, undefined, quiet, () => {}),
    deadLetters: new DeadLetters(engine, undefined, '.dlq', quiet),
    stats: () => ({ queues: [], moreQueues: 0, clients: [], messages: engine.size, keptAnswers: 0 }),
    messages: async () => [],
    acl: () => access.acl.info(),
    changeAcl: async (kind, raw, peer) => await access.change(kind, raw, peer)
  })
  return { admin, engine, wakes }
}

function publish (engine: QueueEngine<string>, command: string, id: string): void {
  engine.publish({ command, id, headers: undefined, kind: 0, payload: new Uint8Array(1), producer: 'p', timestamp: 0, wantsAnswer: false, attempts: 0 })
}

describe('admin handler table', () => {
  it('runs only its own methods: names from Object.prototype are unknown methods', async () => {
    const { admin } = setup()
    for (const method of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'watch', '']) {
      const err = await admin.run('peer', method, undefined).catch((e: unknown) => e)
      expect(err, method).toBeInstanceOf(UnknownMethodError)
      expect((err as UnknownMethodError).code).toBe(ErrorCode.UnknownMethod)
    }
    expect(await admin.run('peer', 'stats', undefined)).toMatchObject({ messages: 0 })
  })

  it('checks each method\'s parameters, whatever JSON they came as', async () => {
    const { admin } = setup()
    for (const [method, params] of [
      ['purge', undefined], ['purge', 'jobs'], ['purge', { command: 7 }], ['purge', { command: 'jobs', group: 1 }],
      ['delete-queue', { command: 'jobs' }], ['delete-group', null], ['delete-group', { group: 'x'.repeat(300) }],
      ['unschedule', {}], ['replay-dead-letters', { limit: 0 }], ['replay-dead-letters', { command: [] }],
      ['messages', { state: 'lost' }], ['schedule', { command: 'tick', every: 5, kind: 0, data: '' }],
      ['schedule', { command: 'tick', cron: 'not cron', kind: 0, data: '' }], ['schedule', { command: 'tick', every: 1000, kind: 9, data: '' }]
    ] as const) {
      const err = await admin.run('peer', method, params).catch((e: unknown) => e)
      expect(err, `${method} ${JSON.stringify(params)}`).toBeInstanceOf(InvalidArgumentError)
    }
  })

  it('purges, deletes and schedules, with not-found and conflict refusals', async () => {
    const { admin, engine, wakes } = setup()
    engine.subscribe('consumer', 1, 'workers', ['jobs'], 10, false)
    engine.unsubscribe(engine.subscribe('consumer', 2, 'idle', ['jobs'], 10, false))
    for (let i = 0; i < 3; i++) publish(engine, 'jobs', `j${i}`)
    expect(await admin.run('peer', 'purge', { command: 'jobs', group: 'idle' })).toEqual({ purged: 3 })
    await expect(admin.run('peer', 'delete-queue', { command: 'jobs', group: 'nobody' })).rejects.toBeInstanceOf(NotFoundError)
    const conflict = await admin.run('peer', 'delete-group', { group: 'workers' }).catch((e: unknown) => e)
    expect(conflict).toBeInstanceOf(ConflictError)
    expect((conflict as ConflictError).cause).toBeInstanceOf(TypeError)
    expect(await admin.run('peer', 'delete-group', { group: 'workers', force: true })).toMatchObject({ queues: 1 })

    const info = await admin.run('peer', 'schedule', { id: 'tick', command: 'tick', every: 60_000, kind: 0, data: 'aGk=' })
    expect(info).toMatchObject({ id: 'tick', command: 'tick', producer: 'peer', every: 60_000 })
    expect(wakes).toHaveLength(1)
    expect(await admin.run('peer', 'schedules', undefined)).toMatchObject([{ id: 'tick' }])
    expect(await admin.run('peer', 'unschedule', { id: 'tick' })).toEqual({ removed: true })
    expect(await admin.run('peer', 'unschedule', { id: 'tick' })).toEqual({ removed: false })
  })
  it('runs a method only for a peer with the admin level it needs; whoami needs none', async () => {
    const { admin } = setup()
    const peer = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
    const acl = Acl.of({ peers: { [peer]: { admin: 'read' }, '*': { produce: ['#'] } } })
    const reader = acl.rights(peer, false)
    const producer = acl.rights('12D3KooWAXBbkpsbaaYjb4jBMWm5rDjZqUnhCxZbNQVqrVJKJFZt', false)
    for (const method of ['stats', 'messages', 'schedules', 'acl']) {
      await expect(admin.run(peer, method, undefined, reader), method).resolves.toBeDefined()
      const err = await admin.run(producer.peer, method, undefined, producer).catch((e: unknown) => e)
      expect(err, method).toBeInstanceOf(PermissionDeniedError)
      expect((err as PermissionDeniedError).code).toBe(ErrorCode.PermissionDenied)
    }
    for (const [method, params] of [['purge', { command: 'jobs' }], ['delete-group', { group: 'g' }], ['delete-queue', { command: 'a', group: 'g' }], ['replay-dead-letters', {}],
      ['schedule', { command: 'tick', every: 1000, kind: 0, data: '' }], ['unschedule', { id: 'x' }], ['acl-allow', { peer, admin: 'write' }], ['acl-deny', { peer }]] as const) {
      const err = await admin.run(peer, method, params, reader).catch((e: unknown) => e)
      expect(err, method).toBeInstanceOf(PermissionDeniedError)
      expect((err as Error).message, method).toContain(`may not call ${method}: it needs admin write`)
    }
    expect(await admin.run(producer.peer, 'whoami', undefined, producer)).toEqual({ peer: producer.peer, mode: 'open', rights: { produce: ['#'], consume: [] } })
    // An unknown method stays an unknown method, whoever asks.
    await expect(admin.run(producer.peer, 'nope', undefined, producer)).rejects.toBeInstanceOf(UnknownMethodError)
  })
})
