/**
 * @packageDocumentation
 *
 * p2pmq: a message queue whose broker, producers and consumers are libp2p peers, addressed by
 * peer ID. Producers send messages naming a command; the broker keeps each one until a consumer
 * of each subscribed group has processed it, balancing among the consumers of a group, and
 * relays the consumer's answer back to the producer. The broker keeps its messages in LevelDB in
 * its data directory: a publish is confirmed once it is on disk, and a restart loses nothing.
 *
 * @example A broker, a consumer and a producer in one process
 *
 * ```ts
 * import { createAdmin, createBroker, createConsumer, createProducer } from 'p2pmq'
 *
 * const broker = await createBroker({ dataDir: './broker-data' })
 * const address = broker.getMultiaddrs()[0].toString()  // ends in /p2p/<peerId>
 *
 * const consumer = await createConsumer({ broker: address })
 * await consumer.subscribe('users.*', async (msg) => `Hello ${msg.payload}`, { prefetch: 100 })
 *
 * const producer = await createProducer({ broker: address })
 * console.log(await producer.send('users.greet', 'Ada'))   // "Hello Ada"
 * await producer.publish('users.audit', { event: 'login' }) // confirmed once on disk, no answer
 *
 * const admin = await createAdmin({ broker: address })
 * console.log(await admin.messages({ state: 'completed' }))  // what `p2pmq messages` shows
 * await admin.stop()
 *
 * await producer.stop(); await consumer.stop(); await broker.stop()
 * ```
 *
 * @example The broker as a service of your own libp2p node
 *
 * ```ts
 * import { createLibp2p } from 'libp2p'
 * import { broker, LevelStore } from 'p2pmq'
 *
 * const node = await createLibp2p({ ...yourConfig, services: { mq: broker({ maxAttempts: 5, store: new LevelStore('./mq-store') }) } })
 * node.services.mq.stats()
 * ```
 */
import './polyfill.js'
import { BrokerService, broker, type BrokerInit } from './broker/service.js'
import { Admin } from './client/admin.js'
import { Consumer } from './client/consumer.js'
import { Producer, type ProducerOptions } from './client/producer.js'
import { addressBook, clientDataDir, defaultBrokerDataDir, p2pmqHome, recordBrokerAddresses } from './home.js'
import { checkNotRelay, parseBrokerAddress, type BrokerLookup } from './client/broker-link.js'
import { createNode, p2pmqDHT, type NodeOptions, type P2PMQNode } from './node.js'
import { relayReservations, type RelayReservations } from './relay-reservations.js'
import { parseRelayAddress } from './relay.js'
import { localAddresses, notDialable } from './reachable-addresses.js'
import { LevelStore } from './store/level-store.js'
import { LimitLog, connectionsPerPeerGater } from './broker/peer-limits.js'
import { EVENT_LOOP_MONITORING_PRECISION, BROKER_INBOUND_CONNECTIONS_PER_SECOND, BROKER_INBOUND_UPGRADE_TIMEOUT, BROKER_MAX_CONNECTIONS, BROKER_MAX_PENDING_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_PEER } from './constants.js'
import { join } from 'node:path'
import { AccessControl } from './broker/acl-control.js'
import type { AclFile } from './broker/api.js'
import type { ClientOptions } from './client/client-base.js'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Registry } from 'prom-client'

export { broker, BrokerService }
export { AccessControl } from './broker/acl-control.js'
export type { AccessControlInit } from './broker/acl-control.js'
export { AclFileError } from './broker/acl-file.js'
export type { BrokerInit, BrokerComponents } from './broker/service.js'
export type { QueuePolicy, RetryBackoff, QueueStats } from './broker/engine.js'
export type {
  BrokerEvents, BrokerStats, ClientEvent, ClientInfo, ClientRole, MessageInfo, MessageQuery, MessageStateName, QueueRates,
  ScheduleInfo, ScheduleOptions, ScheduleSpec, ScheduleRequest, DeleteOptions, AdminMethods, AdminMethod, AdminParams, AdminResult,
  AdminLevel, ConsumeGrant, PeerGrants, AclFile, AclMode, AclInfo, Grant, AclChange, PeerRights, DeniedEvent
} from './broker/api.js'
export { Admin }
export type { ClientOptions } from './client/client-base.js'
export type { BrokerAddress, BrokerLookup } from './client/broker-link.js'
export { Producer, Consumer }
export type { ProducerOptions, PublishOptions, SendOptions, AnsweredResult, FailedResult, ProducerEvents } from './client/producer.js'
export type { MessageResult } from './protocol/frames.js'
export type { Message, Handler, SubscribeOptions, CloseOptions, Subscription, ConsumerEvents } from './client/consumer.js'
export type { ReadyOptions } from './client/client-base.js'
export type { SubscriptionTerms } from './subscription.js'
export { parseBrokerAddress } from './client/broker-link.js'
export { createNode } from './node.js'
export { createRelay, parseRelayAddress } from './relay.js'
export { parseStunServer } from './stun.js'
export { localAddresses } from './reachable-addresses.js'
export type { CreateRelayOptions, RelayNode } from './relay.js'
export { RelayReservations, relayReservations } from './relay-reservations.js'
export type { RelayReservationsInit, RelayReservationStatus } from './relay-reservations.js'
export { LevelStore } from './store/level-store.js'
export { MemoryStore } from './store/store.js'
export type { Store, StoreOp } from './store/store.js'
export type { BaseServices, P2PMQNode, NodeOptions } from './node.js'
export type { Payload, JsonValue } from './payload.js'
export { userIdentity, userIdentityPath, p2pmqHome, clientDataDir, defaultBrokerDataDir, defaultRelayDataDir, lookupBrokerAddresses } from './home.js'
export * from './errors.js'
// The constants a user needs: protocol IDs (to allow or count streams) and the limits requests meet.
export {
  PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL, DEFAULT_GROUP, DEFAULT_COMMAND, MAX_PAYLOAD_LIMIT, MAX_NAME_BYTES,
  MAX_PATTERNS_PER_SUBSCRIPTION, MAX_SUBSCRIPTIONS_PER_STREAM, MAX_BINDINGS_PER_GROUP, MAX_PREFETCH, MAX_PRODUCER_WINDOW
} from './constants.js'

export interface CreateBrokerOptions extends Omit<BrokerInit, 'acl' | 'metrics'> {
  /**
   * Who may do what, by peer ID. `'open'`: any peer may do everything (this run; the kept ACL is
   * left unused, and changes are refused with ConflictError). The path of a JSON ACL file, or an ACL: it replaces the one kept in
   * `<dataDir>/acl.json`. Undefined: the kept one, else protected mode (peers on this host may do
   * everything, every other connection is refused). Changes (`Admin.allow`/`deny`) are kept there.
   * The mode it runs in is `node.services.mq.aclMode`. A file that cannot be read or is not a
   * valid ACL: createBroker throws AclFileError naming the file and the key.
   * @default undefined
   */
  acl?: 'open' | string | AclFile
  /**
   * Where the broker keeps its identity and its message store.
   * @default `<home>/broker`
   */
  dataDir?: string
  /**
   * Keep messages in memory only: nothing survives a restart.
   * @default false (LevelDB in `<dataDir>/store`, unless `store` is given)
   */
  memory?: boolean
  /**
   * Speak WebRTC Direct, the transport browsers dial. Its certificate is kept in `dataDir`, so
   * with a fixed UDP port the address survives restarts.
   * @default true when `listen` has a `/webrtc-direct` address (e.g. `/ip4/127.0.0.1/udp/0/webrtc-direct`), else false
   */
  webrtc?: boolean
  /**
   * Multiaddrs to listen on.
   * @default ['/ip4/127.0.0.1/tcp/0']
   */
  listen?: string[]
  /**
   * The p2pmq home, for the address book.
   * @default P2PMQ_HOME, else `~/.p2pmq`
   */
  home?: string
  /**
   * Relays (`p2pmq relay`) to reserve a slot on, each a multiaddr ending in /p2p/<relay peer ID>:
   * clients that cannot dial the broker reach it through them. A lost reservation is made again
   * when the relay is back (retried with a wait doubling up to 10 s).
   * @default [] (no relay)
   */
  relays?: string[]
  /**
   * Addresses to announce beside those the broker finds itself (its listen addresses; with
   * `relays`, only its relayed and public ones), e.g. its host's public address, or the public
   * end of a port forwarded to it. Each a multiaddr without /p2p/.
   * @default [] (none)
   */
  announce?: string[]
  /**
   * STUN servers (`stun:<host>:<port>`, never a public one unless given): with `relays`, the
   * broker also listens on `/webrtc` through them, so a client behind another NAT can upgrade its
   * relayed connection to a direct one (see NodeOptions.stun).
   * @default [] (no direct upgrade)
   */
  stun?: string[]
  /**
   * Keep Prometheus metrics, the broker's and libp2p's, in a registry of their own
   * (`node.services.mq.metrics`), which the web server serves at `GET /metrics`.
   * @default true
   */
  metrics?: boolean
}

export type BrokerNode = P2PMQNode<{ mq: BrokerService, relays?: RelayReservations }>

/**
 * Builds and starts a libp2p node running the broker service, with its identity kept in
 * `dataDir`, and records its addresses in the address book so local clients find it by peer ID.
 */
export async function createBroker (options: CreateBrokerOptions = {}): Promise<BrokerNode> {
  const { home, dataDir = defaultBrokerDataDir(home), listen = ['/ip4/127.0.0.1/tcp/0'], memory = false, webrtc: wantsWebrtc, relays = [], announce = [], stun, acl, metrics = true, ...init } = options
  relays.forEach(parseRelayAddress)
  for (const addr of announce) {
    let why: string | undefined
    try {
      why = notDialable(addr)
    } catch (err) {
      why = `is not a multiaddr (${(err as Error).message})`
    }
    if (why != null) throw new TypeError(`announce: "${addr}" ${why}`)
  }
  const webrtc = wantsWebrtc ?? listen.some((a) => a.includes('/webrtc-direct'))
  const access = await AccessControl.load({ acl, path: join(dataDir, 'acl.json') })
  const store = init.store ?? (memory ? undefined : new LevelStore(join(dataDir, 'store')))
  const prometheus = metrics ? await brokerRegistry() : undefined
  // The gater counts a peer's connections on the node built here; its refusals are logged with the broker's.
  let nodeRef: BrokerNode | undefined
  const limitLog = new LimitLog((peer, limit, message) => { nodeRef?.services.mq.limitReached(peer, limit, message) })
  const node = await createNode({
    dataDir,
    webrtc,
    listen,
    circuitRelay: relays.length > 0,
    // Behind NAT, a LAN or loopback address would cost a client on another network a dial timeout.
    reachableOnly: relays.length > 0,
    appendAnnounce: announce,
    stun,
    // Against peers that open connections and never finish their handshake, and a peer holding many.
    connectionManager: {
      maxIncomingPendingConnections: BROKER_MAX_PENDING_CONNECTIONS,
      inboundUpgradeTimeout: BROKER_INBOUND_UPGRADE_TIMEOUT,
      inboundConnectionThreshold: BROKER_INBOUND_CONNECTIONS_PER_SECOND,
      maxConnections: BROKER_MAX_CONNECTIONS
    },
    connectionGater: [access.gater(), connectionsPerPeerGater(init.maxConnectionsPerPeer ?? DEFAULT_MAX_CONNECTIONS_PER_PEER, (peer) => nodeRef?.getConnections(peer).length ?? 0, limitLog)],
    metrics: prometheus?.libp2p,
    services: { mq: broker({ ...init, store, acl: access, metrics: prometheus?.registry }), ...(relays.length > 0 ? { relays: relayReservations({ relays }) } : {}) }
  })
  nodeRef = node
  // Writes are chained so the newest addresses are the ones left in the book.
  let recording = Promise.resolve()
  const record = (): void => {
    if (node.status !== 'started' && node.status !== 'starting') return // stopping: addresses go away
    const addrs = localAddresses(node).map((a) => a.toString())
    recording = recording.then(async () => { await recordBrokerAddresses(node.peerId.toString(), addrs, home ?? p2pmqHome()) })
      .catch((err) => { process.emitWarning(`p2pmq: could not record the broker's addresses: ${(err as Error).message}`) })
  }
  node.addEventListener('self:peer:update', record)
  await node.start()
  record()
  return node
}

/**
 * A registry for a broker's metrics and libp2p's. prom-client and @libp2p/prometheus-metrics are
 * loaded here only (~50 and ~90 ms): a program of clients does not pay for them.
 */
async function brokerRegistry (): Promise<{ registry: Registry, libp2p: NonNullable<NodeOptions['metrics']> }> {
  const [{ Registry }, { prometheusMetrics }] = await Promise.all([import('prom-client'), import('@libp2p/prometheus-metrics')])
  const registry = new Registry()
  // preserveExistingMetrics: otherwise it clears prom-client's global registry, which the program around the broker may use.
  return { registry, libp2p: prometheusMetrics({ registry, preserveExistingMetrics: true, defaultMetrics: { eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION } }) }
}

export interface CreateClientOptions extends Omit<ClientOptions, 'node' | 'ownsNode' | 'lookup'> {
  /**
   * The p2pmq home, whose address book finds a broker given by peer ID.
   * @default P2PMQ_HOME, else `~/.p2pmq`
   */
  home?: string
  /**
   * Use this libp2p node instead of building one (it is not stopped with the client).
   * @default undefined (the client builds a node and stops it with itself)
   */
  node?: Libp2p
  /**
   * Keep a named identity under `<home>/clients/<name>`, so restarts are the same peer.
   * @default undefined (a new identity each start, unless `dataDir`)
   */
  name?: string
  /**
   * Keep the identity in this directory.
   * @default undefined (`<home>/clients/<name>` with `name`, else none kept)
   */
  dataDir?: string
  /**
   * Run as this identity, e.g. `await userIdentity()` (the key the CLI runs as), shared with other
   * processes and not locked; not with `name` or `dataDir`.
   * @default undefined (the identity of `name` or `dataDir`, else a new one each start)
   */
  privateKey?: PrivateKey
  /**
   * Dial over WebRTC Direct.
   * @default true when `broker` is a `/webrtc-direct` multiaddr, else false
   */
  webrtc?: boolean
  /**
   * STUN servers (`stun:<host>:<port>`): with `relays`, a broker reached through a relay is dialed
   * again over WebRTC and the client moves to that direct connection once it is up.
   * @default [] (stays relayed)
   */
  stun?: string[]
}

/** The node a client runs on (built and owned unless given), and this host's address book. */
async function clientNode (options: CreateClientOptions): Promise<{ node: Libp2p, ownsNode: boolean, lookup: BrokerLookup }> {
  // A bad -broker is told before a node is built (and left running).
  checkNotRelay(parseBrokerAddress(options.broker), options.relays ?? [])
  const lookup = addressBook(options.home)
  if (options.node != null) return { node: options.node, ownsNode: false, lookup }
  if (options.privateKey != null && (options.name != null || options.dataDir != null)) throw new TypeError('Give a client privateKey, or name or dataDir, not both')
  const dataDir = options.dataDir ?? (options.name != null ? clientDataDir(options.name, options.home) : undefined)
  const relayed = (options.relays ?? []).length > 0
  const node = await createNode<Record<string, unknown>>({
    dataDir,
    privateKey: options.privateKey,
    webrtc: options.webrtc ?? options.broker.includes('/webrtc-direct'),
    circuitRelay: relayed,
    stun: options.stun,
    // With relays, p2pmq's DHT (served by the relays) finds a broker by peer ID.
    services: relayed ? { dht: p2pmqDHT('client') } : {}
  })
  await node.start()
  return { node, ownsNode: true, lookup }
}

/** Creates a producer connected (and reconnecting) to the broker. */
export async function createProducer (options: CreateClientOptions & Omit<ProducerOptions, 'node' | 'ownsNode'>): Promise<Producer> {
  return new Producer({ ...options, ...(await clientNode(options)) })
}

/** Creates a consumer connected (and reconnecting) to the broker. */
export async function createConsumer (options: CreateClientOptions): Promise<Consumer> {
  return new Consumer({ ...options, ...(await clientNode(options)) })
}

/** An admin client: `stats()` and `messages({ state, command, limit })` of a broker. */
export async function createAdmin (options: CreateClientOptions): Promise<Admin> {
  return new Admin({ ...options, ...(await clientNode(options)) })
}
