/** Hostile admin requests on a raw stream: each is refused with a code, and the broker keeps serving. */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { ADMIN_PROTOCOL, ErrorCode, createNode } from '../src/index.js'
import { type FrameReader, FrameSplitter, FrameWriter } from '../src/protocol/codec.js'
import { FrameType, writeRequest } from '../src/protocol/frames.js'
import { onCleanup, sleep, startBroker, until } from './helpers.js'

describe('hostile admin requests on a raw stream', () => {
  it('refuses each with its code and keeps serving', async () => {
    const broker = await startBroker({})
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    const s = await node.dialProtocol(multiaddr(broker.address), ADMIN_PROTOCOL)
    const got = new Map<number, { ok: boolean, body: string }>()
    const splitter = new FrameSplitter(1 << 26, (type: number, r: FrameReader) => {
      if (type !== FrameType.Response) return
      const reqId = r.u32(); const ok = r.u8() === 1; const body = new TextDecoder().decode(r.bytes())
      got.set(reqId, { ok, body })
    })
    s.addEventListener('message', (e) => { splitter.push(e.data) })
    const w = new FrameWriter((bytes) => { s.send(bytes) })
    const enc = new TextEncoder()
    const big = 'x'.repeat(70_000)
    // [method, body, the code of its refusal or 'ok']
    const cases: Array<[string, string, ErrorCode | 'ok']> = [
      ['stats', '1e999', 'ok'], ['messages', '{"limit":1e999}', ErrorCode.InvalidArgument], ['messages', '"x"', ErrorCode.InvalidArgument],
      ['messages', '{"state":"__proto__"}', ErrorCode.InvalidArgument],
      ['schedule', JSON.stringify({ id: big, command: 'a', every: 1000, kind: 0, data: '' }), ErrorCode.InvalidArgument],
      ['schedule', JSON.stringify({ command: 'a', every: 1000, kind: 0, data: '', headers: { k: big } }), ErrorCode.InvalidArgument],
      ['schedule', '{"command":"a","every":1e999,"kind":0,"data":""}', ErrorCode.InvalidArgument],
      ['schedule', JSON.stringify({ command: 'a', every: 10, kind: 0, data: '', headers: ['x'] }), ErrorCode.InvalidArgument],
      ['schedule', JSON.stringify({ command: 'a', cron: big, kind: 0, data: '' }), ErrorCode.InvalidArgument],
      ['schedule', '{"command":"a","every":60000,"kind":0,"data":"","headers":{"__proto__":"x"}}', 'ok'],
      ['purge', '{"command":"__proto__","group":"constructor"}', 'ok'],
      ['delete-queue', '{"command":"__proto__","group":"constructor"}', ErrorCode.NotFound],
      ['delete-group', '{"group":"__proto__"}', ErrorCode.NotFound],
      ['replay-dead-letters', '{"limit":1e300}', 'ok'],
      ['__proto__', '', ErrorCode.UnknownMethod], ['constructor', '', ErrorCode.UnknownMethod], ['toString', '', ErrorCode.UnknownMethod],
      ['x'.repeat(60_000), '', ErrorCode.UnknownMethod],
      ['stats', '['.repeat(200_000), ErrorCode.InvalidArgument],
      ['watch', '{"interval":1e999}', ErrorCode.InvalidArgument], ['watch', '{"interval":-1e999}', ErrorCode.InvalidArgument],
      ['unwatch', '{"reqId":"__proto__"}', 'ok']
    ]
    cases.forEach(([m, b], i) => { writeRequest(w, i + 1, m, enc.encode(b)) })
    w.flush()
    await until(() => got.size >= cases.length, 15_000, 'answers')
    const outcome = (i: number): ErrorCode | 'ok' | undefined => {
      const r = got.get(i + 1)
      return r == null ? undefined : r.ok ? 'ok' : (JSON.parse(r.body) as { code: ErrorCode }).code
    }
    expect(cases.map((c, i) => [c[0].slice(0, 20), outcome(i)])).toEqual(cases.map((c) => [c[0].slice(0, 20), c[2]]))
    // Still serving, and still up after the accepted schedule's first run would have been due.
    await sleep(1_500)
    writeRequest(w, 999, 'stats', new Uint8Array(0)); w.flush()
    await until(() => got.has(999), 5_000, 'stats after')
  }, 60_000)
})
