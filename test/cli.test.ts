/** The three CLIs as real child processes, as a user runs them (built JS from `npm test`'s pretest). */
import { describe, expect, it } from 'vitest'
import { killGroup, run, startBroker, type Proc } from './cli-helpers.js'
import { tempDir, until } from './helpers.js'

async function startConsumer (home: string, args: string[]): Promise<Proc> {
  const proc = run(['consumer', ...args], home)
  await until(() => proc.out.some((l) => l.startsWith('Subscribed to')), 15_000, 'the consumer to subscribe')
  return proc
}

describe('p2pmq CLI', () => {
  it('broker, two consumers and a producer: every answer arrives, from both consumers', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home)
    // Two identities (by default both would run as this user's, one peer ID).
    await startConsumer(home, [`-broker=${peerId}`, '-quiet', '-name=first'])
    await startConsumer(home, ['--broker', peerId, '--quiet', '--name', 'second'])
    const producer = run(['producer', `-broker=${peerId}`, '-count=10', '-interval=0', '-json'], home)
    expect(await producer.exited).toBe(0)
    const lines = producer.out.filter((l) => l !== '').map((l) => JSON.parse(l))
    expect(lines).toHaveLength(10)
    expect(lines.map((l) => l.n).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    for (const l of lines) {
      expect(l.answer).toBe(`Answer to Hello world #${l.n as number}!`)
      expect(l.ms).toBeTypeOf('number')
      expect(l.id).toBeTypeOf('string')
    }
    expect(new Set(lines.map((l) => l.consumer)).size).toBe(2)
  })

  it('a consumer killed with -9 mid-message: another consumer answers it', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home)
    const doomed = await startConsumer(home, [`-broker=${peerId}`, '-command=job', '-exec=sleep 30'])
    const producer = run(['producer', `-broker=${peerId}`, '-command=job', '-count=1', '-payload=payload', '-timeout=20000', '-json'], home)
    await until(() => doomed.out.some((l) => l.includes('job ') && l.includes('payload')), 10_000, 'the first delivery')
    killGroup(doomed.child)
    await startConsumer(home, [`-broker=${peerId}`, '-command=job', '-exec=tr a-z A-Z', '-quiet'])
    expect(await producer.exited).toBe(0)
    const [line] = producer.out.filter((l) => l !== '').map((l) => JSON.parse(l))
    expect(line.answer).toBe('PAYLOAD')
  })

  it('-exec nacks on a non-zero exit with its stderr; -publish waits only for confirms', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-max-attempts=3', '-retry-delay=10'])
    await startConsumer(home, [`-broker=${peerId}`, '-command=fail', '-exec=echo nope >&2; exit 3', '-quiet'])
    const failing = run(['producer', `-broker=${peerId}`, '-command=fail', '-count=1', '-json', '-timeout=20000'], home)
    expect(await failing.exited).toBe(4) // some messages failed
    const [line] = failing.out.filter((l) => l !== '').map((l) => JSON.parse(l))
    expect(line.error).toMatch(/nope/)

    const publish = run(['producer', `-broker=${peerId}`, '-command=nobody', '-count=3', '-interval=0', '-publish'], home)
    expect(await publish.exited).toBe(0)
    expect(publish.out.filter((l) => l.startsWith('Confirmed #'))).toHaveLength(3)
  })

  it('prints help, and a clear error for bad flags and unknown brokers', async () => {
    const home = await tempDir()
    const help = run(['consumer', '--help'], home)
    expect(await help.exited).toBe(0)
    expect(help.out.join('\n')).toMatch(/-broker=<peerId\|multiaddr>/)
    const bad = run(['producer', '-nope=1'], home)
    expect(await bad.exited).toBe(2)
    expect(bad.err.join('\n')).toMatch(/Unknown flag -nope/)
    const unknown = run(['producer', '-broker=12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', '-count=1'], home)
    await until(() => unknown.err.some((l) => l.includes('not in the address book')), 10_000, 'the retry message')
    expect(unknown.err.join('\n')).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('messages and stats show what a durable broker holds, also after it restarts', async () => {
    const home = await tempDir()
    const first = await startBroker(home)
    const producer = run(['producer', `-broker=${first.peerId}`, '-publish', '-count=3', '-interval=0', '-command=jobs.resize'], home)
    expect(await producer.exited).toBe(0)
    killGroup(first.proc.child)
    await first.proc.exited
    const { peerId } = await startBroker(home)
    expect(peerId).toBe(first.peerId)

    const messages = run(['messages', `-broker=${peerId}`, '-state=pending', '-json'], home)
    expect(await messages.exited).toBe(0)
    const listed = messages.out.filter((l) => l !== '').map((l) => JSON.parse(l))
    expect(listed.map((m) => [m.state, m.command])).toEqual([['pending', 'jobs.resize'], ['pending', 'jobs.resize'], ['pending', 'jobs.resize']])
    const stats = run(['stats', `-broker=${peerId}`, '-json'], home)
    expect(await stats.exited).toBe(0)
    expect(JSON.parse(stats.out.join('')).queues).toMatchObject([{ command: 'jobs.resize', depth: 3 }])
    const text = run(['stats', `-broker=${peerId}`], home)
    expect(await text.exited).toBe(0)
    expect(text.out.join('\n')).toMatch(/jobs\.resize \(no group yet\)\s+3\s+0\s+0/)
    const purge = run(['purge', `-broker=${peerId}`, '-command=jobs.resize'], home)
    expect(await purge.exited).toBe(0)
    expect(purge.out).toContain('3 messages purged')
    const after = run(['messages', `-broker=${peerId}`, '-json'], home)
    expect(await after.exited).toBe(0)
    expect(after.out.filter((l) => l !== '')).toEqual([])
  })

  it('queue delete and group delete end a group whose consumer left; a consumer with -expires leaves a group that goes by itself', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-visibility-timeout=400'])
    const audit = await startConsumer(home, [`-broker=${peerId}`, '-command=jobs', '-group=audit', '-quiet'])
    killGroup(audit.child)
    await audit.exited
    const tab = await startConsumer(home, [`-broker=${peerId}`, '-command=jobs', '-group=tab', '-expires=1000', '-quiet'])
    killGroup(tab.child)
    await tab.exited
    const producer = run(['producer', `-broker=${peerId}`, '-publish', '-count=3', '-interval=0', '-command=jobs'], home)
    expect(await producer.exited).toBe(0)

    const queue = run(['queue', 'delete', `-broker=${peerId}`, '-command=jobs', '-group=audit'], home)
    expect(await queue.exited).toBe(0)
    expect(queue.out).toContain('Queue jobs of group audit deleted with 3 messages')
    const group = run(['group', 'delete', `-broker=${peerId}`, '-group=audit', '-json'], home)
    expect(await group.exited).toBe(0)
    expect(JSON.parse(group.out[0])).toEqual({ queues: 0, messages: 0 })
    const again = run(['group', 'delete', `-broker=${peerId}`, '-group=audit'], home)
    expect(await again.exited).not.toBe(0)
    expect(again.err.join('\n')).toMatch(/No group "audit"/)
    const noCommand = run(['queue', 'delete', `-broker=${peerId}`, '-group=audit'], home)
    expect(await noCommand.exited).toBe(2)
    expect(noCommand.err.join('\n')).toMatch(/p2pmq group delete/)

    // The tab's group (and its 3 messages) goes a second after its consumer left.
    let groups: string[] = ['tab']
    for (let i = 0; i < 20 && groups.includes('tab'); i++) {
      const stats = run(['stats', `-broker=${peerId}`, '-json'], home)
      expect(await stats.exited).toBe(0)
      groups = JSON.parse(stats.out.join('')).queues.map((q: { group: string }) => q.group)
    }
    expect(groups).toEqual([])
  })

  it('producer -delay, -id (dedup) and -ttl; dead letters listed and replayed with p2pmq dlq', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-max-attempts=1'])
    await startConsumer(home, [`-broker=${peerId}`, '-command=greet', '-quiet'])
    const delayed = run(['producer', `-broker=${peerId}`, '-command=greet', '-count=1', '-delay=300', '-json'], home)
    expect(await delayed.exited).toBe(0)
    expect(JSON.parse(delayed.out[0]).ms).toBeGreaterThanOrEqual(300)

    // The same ids twice: the second run's messages are dropped as duplicates (and confirmed).
    for (let i = 0; i < 2; i++) {
      const p = run(['producer', `-broker=${peerId}`, '-command=jobs', '-count=2', '-interval=0', '-publish', '-id=job-<n>'], home)
      expect(await p.exited).toBe(0)
    }
    const expiring = run(['producer', `-broker=${peerId}`, '-command=jobs', '-count=1', '-publish', '-ttl=1', '-id=stale'], home)
    expect(await expiring.exited).toBe(0)
    // A consumer that fails everything: with -max-attempts=1 each message goes to jobs.dlq.
    await startConsumer(home, [`-broker=${peerId}`, '-command=jobs', '-exec=exit 1', '-quiet'])
    await until(() => false, 1500, 'nothing').catch(() => {})
    const list = run(['dlq', 'list', `-broker=${peerId}`, '-json'], home)
    expect(await list.exited).toBe(0)
    const letters = list.out.filter((l) => l !== '').map((l) => JSON.parse(l))
    expect(letters.map((m) => m.id).sort()).toEqual(['job-1', 'job-2', 'stale'])
    const replay = run(['dlq', 'replay', `-broker=${peerId}`, '-command=jobs', '-limit=2'], home)
    expect(await replay.exited).toBe(0)
    expect(replay.out).toContain('2 dead letters put back')
  })

  it('schedule add, list and remove', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home)
    const add = run(['schedule', 'add', `-broker=${peerId}`, '-command=tick', '-payload=hi', '-every=100', '-id=t1'], home)
    expect(await add.exited).toBe(0)
    expect(add.out[0]).toMatch(/^Scheduled t1: tick every 100 ms, next at /)
    const bad = run(['schedule', 'add', `-broker=${peerId}`, '-command=tick', '-cron=soon'], home)
    expect(await bad.exited).toBe(1) // the broker refused it
    expect(bad.err.join('\n')).toMatch(/Not a cron expression/)
    const list = run(['schedule', 'list', `-broker=${peerId}`, '-json'], home)
    expect(await list.exited).toBe(0)
    expect(list.out.filter((l) => l !== '').map((l) => JSON.parse(l).id)).toEqual(['t1'])
    const remove = run(['schedule', 'remove', `-broker=${peerId}`, '-id=t1'], home)
    expect(await remove.exited).toBe(0)
    const again = run(['schedule', 'remove', `-broker=${peerId}`, '-id=t1'], home)
    expect(await again.exited).toBe(1)
  })

  it('the fan-out and users/servers demos', async () => {
    const home = await tempDir()
    const fanout = run(['demo-fanout', '-count=4', '-interval=50'], home)
    expect(await fanout.exited).toBe(0)
    expect(fanout.out).toContain('4 messages: billing got 4, audit got 4')
    const dashboard = run(['demo-users-servers', '-seconds=3', '-interval=200', '-http=0'], home)
    expect(await dashboard.exited).toBe(0)
    expect(dashboard.out.find((l) => l.startsWith('Dashboard: '))).toMatch(/^Dashboard: http:\/\/127\.0\.0\.1:\d+\/\?subscribe=num_users,num_servers&group=dashboard&answer=auto$/)
    expect(dashboard.out.some((l) => /^consumer: num_users \S+ from \S+ \(attempt 1\): \d+$/.test(l))).toBe(true)
    expect(dashboard.out.some((l) => /^consumer: num_servers \S+ from \S+ \(attempt 1\): \d+$/.test(l))).toBe(true)
  })
})
