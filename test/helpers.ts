/** Shared test fixtures: temp homes, brokers and clients that are always stopped and removed. */
import { createSocket } from 'node:dgram'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { createBroker, createConsumer, createProducer, type BrokerNode, type CreateBrokerOptions, type Consumer, type Producer } from '../src/index.js'

type Cleanup = () => Promise<void> | void
const cleanups: Cleanup[] = []

afterEach(async () => {
  while (cleanups.length > 0) {
    try { await cleanups.pop()?.() } catch {}
  }
})

export function onCleanup (fn: Cleanup): void {
  cleanups.push(fn)
}

export async function tempDir (prefix = 'p2pmq-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  onCleanup(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

export interface TestBroker {
  node: BrokerNode
  home: string
  dataDir: string
  /** Its multiaddr, ending in /p2p/<peerId>. */
  address: string
  peerId: string
}

export async function startBroker (options: CreateBrokerOptions & { home?: string } = {}): Promise<TestBroker> {
  const home = options.home ?? await tempDir()
  const dataDir = options.dataDir ?? join(home, 'broker')
  const node = await createBroker({ ...options, home, dataDir })
  onCleanup(async () => { await node.stop() })
  return { node, home, dataDir, address: node.getMultiaddrs()[0].toString(), peerId: node.peerId.toString() }
}

/**
 * A broker with a kept identity, and a restart that gives it a new port (with `memory`, it
 * restarts empty). `ref` finds it by peer ID through the address book in `home`.
 */
export async function restartableBroker (options: CreateBrokerOptions = {}): Promise<{ node: BrokerNode, ref: { address: string, home: string }, restart: () => Promise<void> }> {
  const home = await tempDir()
  const dataDir = `${home}/broker`
  const b = {
    node: await createBroker({ home, dataDir, ...options }),
    ref: { address: '', home },
    restart: async () => {
      await b.node.stop()
      b.node = await createBroker({ home, dataDir, ...options })
    }
  }
  b.ref.address = b.node.peerId.toString()
  onCleanup(async () => { await b.node.stop() })
  return b
}

/** Where clients find a broker: its address and the home with its address book. */
export type BrokerRef = Pick<TestBroker, 'address' | 'home'>

export async function consumer (broker: BrokerRef, options: Partial<Parameters<typeof createConsumer>[0]> = {}): Promise<Consumer> {
  const c = await createConsumer({ broker: broker.address, home: broker.home, ...options })
  onCleanup(async () => { await c.stop() })
  return c
}

export async function producer (broker: BrokerRef, options: Partial<Parameters<typeof createProducer>[0]> = {}): Promise<Producer> {
  const p = await createProducer({ broker: broker.address, home: broker.home, ...options })
  onCleanup(async () => { await p.stop() })
  return p
}

/** Waits until `check` is true, polling; fails after `ms`. */
export async function until (check: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A UDP port on 127.0.0.1 free a moment ago, for a listener that needs its port fixed in advance. */
export async function freeUdpPort (): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => { resolve() }))
  return port
}
