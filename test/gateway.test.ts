/**
 * The HTTP gateway as its users drive it: a real `p2pmq broker -gateway` child process with an ACL,
 * tokens made with `p2pmq token`, and requests by Node's fetch, by curl, and by a consumer written
 * in Python (urllib only). Then hostile input, and the visibility timeout of a held message.
 */
import { execFile } from 'node:child_process'
import { connect } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { run, startBroker, type Proc } from './cli-helpers.js'
import { sleep, tempDir, until } from './helpers.js'

const execFileAsync = promisify(execFile)

interface Token { token: string, peer: string, name: string }

/** `p2pmq token add <name> -data=<dir> -json`. */
async function addToken (home: string, data: string, name: string): Promise<Token> {
  const proc = run(['token', 'add', name, `-data=${data}`, '-json'], home)
  expect(await proc.exited, proc.err.join('\n')).toBe(0)
  return JSON.parse(proc.out[0]) as Token
}

/** A broker with the gateway on any free port, its data in `data` and `acl` as its ACL file (none: protected mode); returns the gateway's /v1/ URL. */
async function gatewayBroker (home: string, data: string, acl: Record<string, unknown> | undefined, args: string[] = []): Promise<{ url: string, proc: Proc }> {
  const aclArgs: string[] = []
  if (acl != null) {
    const file = join(home, 'acl.json')
    await writeFile(file, JSON.stringify({ peers: acl }))
    aclArgs.push(`-acl=${file}`)
  }
  const { proc } = await startBroker(home, [`-data=${data}`, '-gateway=0', ...aclArgs, ...args])
  await until(() => proc.out.some((l) => l.startsWith('Gateway: ')), 10_000, 'the gateway to listen')
  return { url: (proc.out.find((l) => l.startsWith('Gateway: ')) as string).slice('Gateway: '.length), proc }
}

async function call (url: string, token: string | undefined, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<{ status: number, json: any, text: string, headers: Headers }> {
  const res = await fetch(url, { ...init, headers: { ...(token != null ? { authorization: `Bearer ${token}` } : {}), ...init.headers } })
  const text = await res.text()
  let json: any
  try { json = JSON.parse(text) } catch {}
  return { status: res.status, json, text, headers: res.headers }
}

/** `curl` as a user types it: the body, then the status on the last line. */
async function curl (args: string[]): Promise<{ status: number, body: string }> {
  const { stdout } = await execFileAsync('curl', ['-sS', '-w', '\n%{http_code}', ...args], { timeout: 30_000 })
  const i = stdout.lastIndexOf('\n')
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) }
}

/** The consumer a Python user writes: long-polls, answers each message with its text upper-cased, nacks (no requeue) one that asks to fail; stops after `count`. */
const PYTHON_CONSUMER = `
import json, sys, urllib.request
url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path, body=None, content_type=None):
    req = urllib.request.Request(url + path, data=body, method=method)
    req.add_header('Authorization', 'Bearer ' + token)
    if content_type: req.add_header('Content-Type', content_type)
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.status, res.read()
done = 0
for _ in range(200):
    status, body = call('GET', 'consume/greetings.*?group=python&max=5&wait=2000')
    if status == 204: continue
    for m in json.loads(body):
        if m['payload'] == 'fail me':
            call('POST', 'nack/' + m['receipt'] + '?requeue=false', b'python says no', 'text/plain')
        else:
            call('POST', 'answer/' + m['receipt'], m['payload'].upper().encode(), 'text/plain')
        print('processed', m['command'], m['headers'].get('lang', '-'), flush=True)
        done += 1
    if done >= count: break
`

describe('HTTP gateway', () => {
  it('publishes, consumes, acks and reads stats through fetch and curl, each token held to its ACL grants', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    const shop = await addToken(home, data, 'shop')
    const worker = await addToken(home, data, 'worker')
    const stranger = await addToken(home, data, 'stranger')
    expect(shop.token).toMatch(/^p2pmq_[A-Za-z0-9_-]{43}$/)
    expect(new Set([shop.peer, worker.peer, stranger.peer]).size).toBe(3)
    // The file keeps no token.
    const list = run(['token', 'list', `-data=${data}`], home)
    expect(await list.exited).toBe(0)
    expect(list.out.join('\n')).toContain(shop.peer)
    expect(list.out.join('\n')).not.toContain(shop.token)
    const { url } = await gatewayBroker(home, data, {
      [shop.peer]: { produce: ['orders.*'], admin: 'read' },
      [worker.peer]: { consume: [{ pattern: 'orders.*' }] }
    })
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/$/)

    // Publish with fetch: JSON, with an id, a header and a ttl.
    const published = await call(`${url}publish/orders.new`, shop.token, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'p2pmq-id': 'order-1', 'p2pmq-header-region': 'eu', 'p2pmq-header-city': Buffer.from('Zürich').toString('latin1'), 'p2pmq-ttl': '60000' },
      body: JSON.stringify({ sku: 'A1', qty: 2 })
    })
    expect(published.status, published.text).toBe(202)
    expect(published.json).toEqual({ id: 'order-1' })

    // Consume and ack with curl.
    const auth = ['-H', `Authorization: Bearer ${worker.token}`]
    const polled = await curl([...auth, `${url}consume/orders.*?wait=5000`])
    expect(polled.status, polled.body).toBe(200)
    const [m] = JSON.parse(polled.body)
    expect(m).toMatchObject({ id: 'order-1', command: 'orders.new', headers: { region: 'eu', city: 'Zürich' }, attempt: 1, producer: shop.peer, payload: { sku: 'A1', qty: 2 } })
    expect(m.receipt).toMatch(/^[A-Za-z0-9_-]{24}$/)
    expect(m.deadline).toBeGreaterThan(Date.now())
    expect((await curl([...auth, '-X', 'POST', `${url}ack/${m.receipt as string}`])).status).toBe(204)
    // Settled: the receipt is spent, and nothing more waits.
    expect((await curl([...auth, '-X', 'POST', `${url}ack/${m.receipt as string}`])).status).toBe(410)
    expect((await curl([...auth, `${url}consume/orders.*?wait=0`])).status).toBe(204)

    // Bytes go through as bytes, in base64.
    expect((await call(`${url}publish/orders.raw`, shop.token, { method: 'POST', body: new Uint8Array([0, 255, 7]) })).status).toBe(202)
    const raw = await call(`${url}consume/orders.*?wait=5000`, worker.token)
    expect(raw.json[0]).toMatchObject({ command: 'orders.raw', payload: Buffer.from([0, 255, 7]).toString('base64'), encoding: 'base64' })
    expect((await call(`${url}ack/${raw.json[0].receipt as string}`, worker.token, { method: 'POST' })).status).toBe(204)

    // Each token may do what its peer's grants say, no more.
    const notConsume = await call(`${url}consume/orders.*?wait=0`, shop.token)
    expect(notConsume.status).toBe(403)
    expect(notConsume.json.code).toBe('PermissionDeniedError')
    expect(notConsume.json.error).toContain(shop.peer)
    const notProduce = await call(`${url}publish/orders.new`, worker.token, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
    expect(notProduce.status).toBe(403)
    expect((await call(`${url}publish/billing.new`, shop.token, { method: 'POST', body: 'x' })).status).toBe(403)
    const listed = await call(`${url}messages?state=pending&command=orders.new&bodies=true`, shop.token)
    expect(listed.status).toBe(200)
    expect(listed.json).toEqual([])
    const stats = await call(`${url}stats`, shop.token)
    expect(stats.status).toBe(200)
    expect(stats.json.queues.some((q: { command: string }) => q.command === 'orders.new')).toBe(true)
    expect((await call(`${url}stats`, worker.token)).status).toBe(403)
    const whoami = await call(`${url}whoami`, worker.token)
    expect(whoami.json).toMatchObject({ token: 'worker', peer: worker.peer, mode: 'acl' })
    // A token whose peer the ACL grants nothing: the broker refuses its connection.
    const refused = await call(`${url}stats`, stranger.token)
    expect(refused.status).toBe(403)

    // Without a token, or with a wrong one: 401 with the challenge.
    for (const token of [undefined, 'p2pmq_wrong', `${shop.token}x`]) {
      const r = await call(`${url}stats`, token)
      expect(r.status).toBe(401)
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="p2pmq"')
      expect(r.json.code).toBe('Unauthorized')
    }
    // A removed token is refused within a second (the gateway looks at its file at most once a second).
    const removed = run(['token', 'remove', 'worker', `-data=${data}`], home)
    expect(await removed.exited).toBe(0)
    await sleep(1_100)
    expect((await call(`${url}consume/orders.*?wait=0`, worker.token)).status).toBe(401)
  })

  it('a Python consumer answers the sends of fetch and curl, and fails one with a nack', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    const app = await addToken(home, data, 'app')
    const python = await addToken(home, data, 'python')
    const { url } = await gatewayBroker(home, data, {
      [app.peer]: { produce: ['greetings.*'] },
      [python.peer]: { consume: [{ pattern: 'greetings.*', group: 'python' }] }
    })
    const script = join(home, 'consumer.py')
    await writeFile(script, PYTHON_CONSUMER)
    const consumer = execFileAsync('python3', [script, url, python.token, '3'], { timeout: 60_000 })

    const fetched = await call(`${url}send/greetings.hello?timeout=20000`, app.token, { method: 'POST', body: 'hello from fetch', headers: { 'content-type': 'text/plain', 'p2pmq-header-lang': 'en' } })
    expect(fetched.status, fetched.text).toBe(200)
    expect(fetched.text).toBe('HELLO FROM FETCH')
    expect(fetched.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(fetched.headers.get('p2pmq-consumer')).toBe(python.peer)
    expect(fetched.headers.get('p2pmq-attempts')).toBe('1')

    const curled = await curl(['-H', `Authorization: Bearer ${app.token}`, '-H', 'Content-Type: text/plain', '--data-binary', 'hello from curl', `${url}send/greetings.hi`])
    expect(curled).toEqual({ status: 200, body: 'HELLO FROM CURL' })

    const failed = await call(`${url}send/greetings.bad`, app.token, { method: 'POST', body: 'fail me', headers: { 'content-type': 'text/plain' } })
    expect(failed.status).toBe(422)
    expect(failed.json).toMatchObject({ code: 'MessageFailedError', error: 'python says no', consumer: python.peer, attempts: 1 })

    const { stdout } = await consumer
    expect(stdout.trim().split('\n')).toEqual(['processed greetings.hello en', 'processed greetings.hi -', 'processed greetings.bad -'])
  })

  it('gives a message held past its visibility timeout to the next poll, and one whose poller left at once', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    const t = await addToken(home, data, 'all')
    // Protected mode: the gateway's peers are on this host, so a token may do everything.
    const { url } = await gatewayBroker(home, data, undefined, ['-visibility-timeout=1500'])
    expect((await call(`${url}publish/jobs.a`, t.token, { method: 'POST', body: 'job', headers: { 'content-type': 'text/plain' } })).status).toBe(202)
    const first = await call(`${url}consume/jobs.a?wait=5000`, t.token)
    expect(first.json[0]).toMatchObject({ payload: 'job', attempt: 1 })
    await sleep(2_000)
    const late = await call(`${url}ack/${first.json[0].receipt as string}`, t.token, { method: 'POST' })
    expect(late.status).toBe(410)
    expect(late.json.code).toBe('ReceiptExpired')
    const again = await call(`${url}consume/jobs.a?wait=5000`, t.token)
    expect(again.json[0]).toMatchObject({ payload: 'job', attempt: 2 })
    expect((await call(`${url}ack/${again.json[0].receipt as string}`, t.token, { method: 'POST' })).status).toBe(204)

    // A poll whose client leaves: what comes next is not lost with it.
    const controller = new AbortController()
    const gone = fetch(`${url}consume/jobs.b?wait=10000`, { headers: { authorization: `Bearer ${t.token}` }, signal: controller.signal }).catch(() => 'aborted')
    await sleep(300)
    controller.abort()
    expect(await gone).toBe('aborted')
    expect((await call(`${url}publish/jobs.b`, t.token, { method: 'POST', body: 'after', headers: { 'content-type': 'text/plain' } })).status).toBe(202)
    const next = await call(`${url}consume/jobs.b?wait=5000`, t.token)
    expect(next.json?.[0]).toMatchObject({ payload: 'after', attempt: 1 })
    expect((await call(`${url}ack/${next.json[0].receipt as string}`, t.token, { method: 'POST' })).status).toBe(204)

    // Long polls pipelined on one connection that closes: the ones queued behind the first go too.
    const socket = connect(Number(new URL(url).port), '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write(`GET /v1/consume/jobs.b?wait=20000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\n\r\n`.repeat(3))
    await sleep(500)
    socket.destroy()
    await sleep(300)
    expect((await call(`${url}publish/jobs.b`, t.token, { method: 'POST', body: 'piped', headers: { 'content-type': 'text/plain' } })).status).toBe(202)
    const started = Date.now()
    const piped = await call(`${url}consume/jobs.b?wait=5000`, t.token)
    expect(piped.json?.[0]).toMatchObject({ payload: 'piped', attempt: 1 })
    expect(Date.now() - started).toBeLessThan(2_000)
  })

  it('refuses hostile requests with a clear status and keeps serving', async () => {
    const home = await tempDir()
    const data = join(home, 'broker')
    const t = await addToken(home, data, 'all')
    const { url, proc } = await gatewayBroker(home, data, undefined, ['-max-payload=1024'])
    const post = async (path: string, body: BodyInit, headers: Record<string, string> = {}): ReturnType<typeof call> => await call(`${url}${path}`, t.token, { method: 'POST', body, headers })

    const cases: Array<[string, Promise<{ status: number, json: any }>, number]> = [
      ['an oversized body', post('publish/x', 'x'.repeat(2048)), 413],
      ['invalid JSON', post('publish/x', '{nope', { 'content-type': 'application/json' }), 400],
      ['a bad delay', post('publish/x', 'x', { 'p2pmq-delay': '-5' }), 400],
      ['a bad transient', post('publish/x', 'x', { 'p2pmq-transient': 'yes' }), 400],
      ['an invalid command', post('publish/a..b', 'x'), 400],
      ['a pattern as a command', post('publish/a.*', 'x'), 400],
      ['an invalid pattern', call(`${url}consume/a..b?wait=0`, t.token), 400],
      ['an invalid group', call(`${url}consume/a?group=${'g'.repeat(300)}&wait=0`, t.token), 400],
      ['max 0', call(`${url}consume/a?max=0`, t.token), 400],
      ['a wait past the longest', call(`${url}consume/a?wait=600000`, t.token), 400],
      ['an unknown receipt', post('ack/nope', ''), 410],
      ['an unknown request', call(`${url}nothing`, t.token), 404],
      ['a path outside /v1', call(url.replace('/v1/', '/v2/stats'), t.token), 404],
      ['a wrong method', call(`${url}publish/x`, t.token), 405],
      ['a missing target', post('publish', 'x'), 404],
      ['a malformed escape', call(`${url}consume/%E0%A4%A`, t.token), 400],
      ['a bad send timeout', post('send/x?timeout=abc', 'x'), 400],
      ['a bad message query', call(`${url}messages?state=lost`, t.token), 400],
      ['two ids', curl(['-H', `Authorization: Bearer ${t.token}`, '-H', 'P2PMQ-Id: a', '-H', 'P2PMQ-Id: b', '-d', 'x', `${url}publish/x`]).then((r) => ({ status: r.status, json: JSON.parse(r.body) })), 400],
      ['a __proto__ header', post('publish/x', 'x', { 'p2pmq-header-__proto__': 'x' }), 400],
      ['a charset not UTF-8', post('publish/x', 'x', { 'content-type': 'text/plain; charset=iso-8859-1' }), 415]
    ]
    for (const [what, reply, status] of cases) {
      const r = await reply
      expect(r.status, what).toBe(status)
      expect(typeof r.json?.error, what).toBe('string')
      expect(typeof r.json?.code, what).toBe('string')
    }
    // A send no one answers in time.
    const timedOut = await post('send/nobody.home?timeout=300', 'x')
    expect(timedOut.status).toBe(504)
    // Consumptions per token are bounded.
    const polls = await Promise.all(Array.from({ length: 70 }, async (_, i) => (await call(`${url}consume/p${i}?wait=0`, t.token)).status))
    expect(polls.filter((s) => s === 429).length).toBe(6)
    expect(polls.filter((s) => s === 204).length).toBe(64)
    // So are the long polls waiting at once: one token cannot hold every connection of the gateway.
    const waits = await Promise.all(Array.from({ length: 70 }, async () => (await call(`${url}consume/p0?wait=2000`, t.token)).status))
    expect(waits.filter((s) => s === 429).length).toBe(6)
    expect(waits.filter((s) => s === 204).length).toBe(64)
    // Raw garbage on the socket, and headers past Node's limit.
    const garbage = await curl(['--http0.9', '-X', 'BREW', '-H', `X-Big: ${'a'.repeat(20_000)}`, `${url}stats`]).catch((err: Error) => ({ status: 0, body: err.message }))
    expect([400, 431]).toContain(garbage.status)
    // JSON nested deeper than the gateway can write out again: those messages fail alone, nothing else does.
    for (let depth = 3_500; depth <= 5_000; depth += 5) {
      const r = await post('publish/p1', '['.repeat(depth) + ']'.repeat(depth), { 'content-type': 'application/json' })
      expect([202, 400, 413]).toContain(r.status)
    }
    for (let i = 0; i < 5; i++) expect([200, 204]).toContain((await call(`${url}consume/p1?max=100&wait=200`, t.token)).status)
    // Still serving, and the broker never logged an error for any of it.
    expect((await post('publish/still.here', 'ok', { 'content-type': 'text/plain' })).status).toBe(202)
    expect(proc.child.exitCode).toBe(null)
    expect(proc.err.filter((l) => /ERROR|at /.test(l))).toEqual([])
  })
})
