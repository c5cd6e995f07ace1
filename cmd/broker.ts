/** `p2pmq broker`: runs a broker until Ctrl+C. */
import { existsSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { createBroker, type BrokerNode } from '../src/index.js'
import type { ReservationFailure } from '../src/relay-reservations.js'
import { defaultBrokerDataDir } from '../src/home.js'
import { notDialable } from '../src/reachable-addresses.js'
import {
  DEFAULT_PAGE_BYTES, DEFAULT_PAGE_SIZE, DEFAULT_RETRY_DELAY, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DELAY, DEFAULT_COMPLETED_RETENTION, DEFAULT_HIGH_WATER, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_PAYLOAD, DEFAULT_VISIBILITY_TIMEOUT, DEFAULT_MAX_GROUPS, DEFAULT_STALL_TIMEOUT, DEFAULT_QUEUE_SWEEP_INTERVAL, MAX_PAYLOAD_LIMIT, RELAY_RETRY_MAX_DELAY,
  DEFAULT_MAX_CONNECTIONS_PER_PEER, DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER, DEFAULT_MAX_PREFETCH_PER_PEER, DEFAULT_MAX_WATCHES_PER_PEER, DEFAULT_MAX_KEPT_ANSWERS,
  DEFAULT_MAX_IN_FLIGHT_PER_PEER, DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER,
  DEFAULT_MAX_KEPT_ANSWER_BYTES, DEFAULT_MAX_PARTIAL_FRAME_BYTES
} from '../src/constants.js'
import { list, parseFlags, usage, UsageError, type Flags, type FlagSpecs } from './flags.js'
import { configFileLayer, envLayer } from './flag-sources.js'
import { relayList, relaySpec, stunList, stunSpec } from './relay-flag.js'
import { errorText, shutdownSignal } from './lifecycle.js'
import { log } from './log.js'
import { commandError, patternError } from '../src/names.js'
import { serveBroker, WebPortError, type WebServer } from '../src/web-server.js'
import { startGateway, type HttpGateway } from '../src/gateway/http-gateway.js'
import { TokenFile } from '../src/gateway/tokens.js'

/** The broker's flags' environment variables: P2PMQ_BROKER_MAX_PAYLOAD for -max-payload (-relay and -stun: P2PMQ_RELAY, P2PMQ_STUN). */
const ENV_PREFIX = 'P2PMQ_BROKER_'
/** Node's longest timer (about 24.8 days): a longer time would fire at once. */
const MAX_TIMER = 2 ** 31 - 1
/** Upper bounds far past any sensible setting, so a typo (1e300 written out) is an error, not a broker that never limits. */
const MAX_ATTEMPTS_LIMIT = 1_000_000
const MAX_MESSAGES_LIMIT = 1_000_000_000
const MAX_PAGE_SIZE = 10_000_000

const specs = {
  config: { type: 'string', value: '<file>', help: `A JSON file of flags (keys: their names, e.g. { "max-payload": 1048576 }); each flag also has its variable, ${ENV_PREFIX}<NAME>, and a flag wins over its variable, which wins over the file`, default: '' },
  data: { type: 'string', value: '<dir>', help: 'Data directory: the broker\'s identity (peer ID) and message store live here', default: '' },
  http: { type: 'string', value: '<port>', help: 'Serve the web page, /api/broker and /metrics on 127.0.0.1 at this port (0: any free port; off: none)', default: '8094' },
  gateway: { type: 'string', value: '[<host>:]<port>', help: 'Serve the HTTP gateway (publish, send, consume over HTTP with a token: p2pmq token) at this port, on 127.0.0.1 unless a host is given (0: any free port; off: none)', default: 'off' },
  memory: { type: 'boolean', help: 'Keep messages in memory only (nothing survives a restart)' },
  transient: { type: 'string', list: true, value: '<pattern>[,…]', help: 'Keep the messages of these commands in memory only, even with a store (lost if the broker stops)', default: '' },
  listen: { type: 'string', list: true, value: '<multiaddr>[,…]', help: 'Addresses to listen on: TCP for Node peers, WebRTC Direct (UDP) for browsers', default: '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/webrtc-direct' },
  'max-payload': { type: 'number', integer: true, min: 1, max: MAX_PAYLOAD_LIMIT, value: '<bytes>', help: 'Largest message payload accepted', default: DEFAULT_MAX_PAYLOAD },
  'visibility-timeout': { type: 'number', integer: true, min: 1, max: MAX_TIMER, value: '<ms>', help: 'How long a consumer may hold a message before another gets it', default: DEFAULT_VISIBILITY_TIMEOUT },
  'max-attempts': { type: 'number', integer: true, max: MAX_ATTEMPTS_LIMIT, value: '<n>', help: 'Deliveries of a message before it fails (0 = no limit)', default: DEFAULT_MAX_ATTEMPTS },
  'high-water': { type: 'number', integer: true, max: MAX_MESSAGES_LIMIT, value: '<n>', help: 'Waiting messages in a consumed queue past which producers wait for confirms (0 = never)', default: DEFAULT_HIGH_WATER },
  'stall-timeout': { type: 'number', integer: true, min: 1, max: MAX_TIMER, value: '<ms>', help: 'A queue whose consumers complete nothing this long stops holding producers\' confirms', default: DEFAULT_STALL_TIMEOUT },
  'max-messages': { type: 'number', integer: true, max: MAX_MESSAGES_LIMIT, value: '<n>', help: 'Messages held before publishes are refused; 0 means 100000000, or 2000000 with -memory', default: 0 },
  'retry-delay': { type: 'number', fraction: true, max: MAX_TIMER, value: '<ms>', help: 'Wait before retrying a nacked message (0 = at once)', default: DEFAULT_RETRY_DELAY },
  'retry-factor': { type: 'number', fraction: true, min: 1, max: 1000, value: '<x>', help: 'Multiply the wait by this after each failure (1 = fixed)', default: DEFAULT_RETRY_FACTOR },
  'retry-max-delay': { type: 'number', fraction: true, max: MAX_TIMER, value: '<ms>', help: 'Longest wait before a retry', default: DEFAULT_RETRY_MAX_DELAY },
  'dead-letter': { type: 'string', value: '<suffix>', help: 'Failed messages go to <command><suffix>; "off" drops them', default: '.dlq' },
  'page-size': { type: 'number', integer: true, min: 1, max: MAX_PAGE_SIZE, value: '<n>', help: 'Waiting messages a queue keeps in memory; the rest wait on disk', default: DEFAULT_PAGE_SIZE },
  'page-bytes': { type: 'number', integer: true, min: 1, value: '<bytes>', help: 'Payload bytes a queue keeps in memory (and delayed messages do); the rest wait on disk', default: DEFAULT_PAGE_BYTES },
  'queue-sweep': { type: 'number', integer: true, min: 1, max: MAX_TIMER, value: '<ms>', help: 'A queue that holds nothing and did nothing between two sweeps this far apart is removed', default: DEFAULT_QUEUE_SWEEP_INTERVAL },
  'max-groups': { type: 'number', integer: true, min: 1, value: '<n>', help: 'Groups held before a subscription to a new group is refused', default: DEFAULT_MAX_GROUPS },
  'completed-retention': { type: 'number', fraction: true, max: MAX_TIMER, value: '<ms>', help: 'How long completed messages stay listed (p2pmq messages); 0 = not kept', default: DEFAULT_COMPLETED_RETENTION },
  'max-connections-per-peer': { type: 'number', integer: true, min: 1, max: 1_000_000, value: '<n>', help: 'Connections one peer may hold; more are refused', default: DEFAULT_MAX_CONNECTIONS_PER_PEER },
  'max-subscriptions-per-peer': { type: 'number', integer: true, min: 1, max: 1_000_000, value: '<n>', help: 'Subscriptions one peer may hold across its streams; more are refused', default: DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER },
  'max-prefetch-per-peer': { type: 'number', integer: true, min: 1, max: MAX_MESSAGES_LIMIT, value: '<n>', help: 'Sum of the prefetch of one peer\'s subscriptions; a subscription past it is refused', default: DEFAULT_MAX_PREFETCH_PER_PEER },
  'max-watches-per-peer': { type: 'number', integer: true, min: 1, max: 1_000_000, value: '<n>', help: 'Standing watch requests one peer may hold; more are refused', default: DEFAULT_MAX_WATCHES_PER_PEER },
  'max-kept-answers': { type: 'number', integer: true, min: 1, max: MAX_MESSAGES_LIMIT, value: '<n>', help: 'Answers kept for a producer that is away or does not read; past it the oldest are dropped', default: DEFAULT_MAX_KEPT_ANSWERS },
  'max-kept-answer-bytes': { type: 'number', integer: true, min: 1, value: '<bytes>', help: 'Payload bytes of the answers kept for one producer; past it the oldest are dropped', default: DEFAULT_MAX_KEPT_ANSWER_BYTES },
  'max-in-flight-per-peer': { type: 'number', integer: true, min: 1, max: MAX_MESSAGES_LIMIT, value: '<n>', help: 'Messages one peer may have sent and not yet had confirmed or answered; past it its producer streams are not read until some are', default: DEFAULT_MAX_IN_FLIGHT_PER_PEER },
  'max-in-flight-bytes-per-peer': { type: 'number', integer: true, min: 1, value: '<bytes>', help: 'Payload bytes of those', default: DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER },
  'publish-rate': { type: 'number', fraction: true, max: 1e9, value: '<msg/s>', help: 'Messages a second one peer may publish; past it its streams are read slower (0 = no limit)', default: 0 },
  'max-partial-frame-bytes': { type: 'number', integer: true, min: 1, value: '<bytes>', help: 'Bytes of partly received frames held over all streams; a stream past it is ended', default: DEFAULT_MAX_PARTIAL_FRAME_BYTES },
  announce: { type: 'string', list: true, value: '<multiaddr>[,…]', help: 'Also announce these addresses (e.g. this host\'s public address); with -relay, only relayed, public and these are announced, never LAN or loopback ones', default: '' },
  relay: relaySpec,
  stun: stunSpec,
  acl: { type: 'string', value: '<file>|open', help: 'Who may do what, by peer ID: a JSON ACL file (kept in the data directory, then changed with p2pmq acl), or open (any peer, everything). Default: the kept ACL, else only peers on this host', default: '' },
  quiet: { type: 'boolean', help: 'Do not log clients joining and leaving' }
} satisfies FlagSpecs

export const summary = 'Run a broker. Prints its peer ID and listen addresses; clients on this host can use -broker=<peerId>.'

/** The broker's flags: its command line, over its environment variables, over its -config file. */
function brokerFlags (args: string[]): Flags<typeof specs> {
  // The command line alone first: its own errors come first, and it may name the file.
  const given = parseFlags(args, specs)
  if (given.help) return given
  const env = envLayer(ENV_PREFIX, specs)
  const file = given.config !== '' ? given.config : env.values.config ?? ''
  return parseFlags(args, specs, undefined, file !== '' ? [configFileLayer(file, specs), env] : [env])
}

export async function run (args: string[]): Promise<number> {
  const flags = brokerFlags(args)
  if (flags.help) {
    console.log(usage('broker', summary, specs))
    return 0
  }
  // Every flag is checked before anything starts; the web port is taken before the broker starts,
  // so a port in use is a clear error before a peer ID is printed.
  const httpPort = webPort(flags.http)
  const gatewayAt = gatewayAddress(flags.gateway)
  const listen = listenAddrs(flags.listen)
  const relays = relayList(flags.relay)
  const announce = announceAddrs(flags.announce)
  if (flags['retry-max-delay'] < flags['retry-delay']) throw new UsageError(`-retry-max-delay (${flags['retry-max-delay']}) must be at least -retry-delay (${flags['retry-delay']})`)
  if (flags['dead-letter'] === '') throw new UsageError('-dead-letter takes a suffix, or off')
  if (flags['dead-letter'] !== 'off') {
    // The suffix makes dead-letter queue names: `x<suffix>` must be a command (no '*' or '#' words).
    const bad = commandError(`x${flags['dead-letter']}`)
    if (bad != null) throw new UsageError(`-dead-letter=${JSON.stringify(flags['dead-letter'])} does not make valid command names (${bad.replace(/"x/, '"<command>')})`)
  }
  const transient = list(flags.transient)
  for (const pattern of transient) {
    const bad = patternError(pattern)
    if (bad != null) throw new UsageError(`-transient: ${bad}`)
  }
  const acl = flags.acl !== '' ? flags.acl : undefined
  const dataDir = flags.data !== '' ? flags.data : defaultBrokerDataDir()
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) throw new UsageError(`-data=${dataDir} is not a directory`)

  const stun = stunList(flags.stun)
  let node: BrokerNode | undefined
  let web: WebServer | undefined
  if (httpPort != null) {
    try {
      web = await serveBroker(() => node, httpPort, { stun })
    } catch (err) {
      if (!(err instanceof WebPortError)) throw err
      throw new WebPortError(`Cannot serve the web page: ${err.message}; give -http=<another port>, -http=0 (any free port) or -http=off`, err.code)
    }
  }
  try {
    node = await createBroker({
      dataDir,
      memory: flags.memory,
      listen,
      relays,
      announce,
      stun,
      acl,
      maxPayload: flags['max-payload'],
      visibilityTimeout: flags['visibility-timeout'],
      maxAttempts: flags['max-attempts'] === 0 ? Infinity : flags['max-attempts'],
      highWater: flags['high-water'] === 0 ? Infinity : flags['high-water'],
      stallTimeout: flags['stall-timeout'],
      maxMessages: flags['max-messages'] > 0 ? flags['max-messages'] : undefined,
      completedRetention: flags['completed-retention'],
      pageSize: flags['page-size'],
      pageBytes: flags['page-bytes'],
      maxGroups: flags['max-groups'],
      queueSweepInterval: flags['queue-sweep'],
      maxConnectionsPerPeer: flags['max-connections-per-peer'],
      maxSubscriptionsPerPeer: flags['max-subscriptions-per-peer'],
      maxPrefetchPerPeer: flags['max-prefetch-per-peer'],
      maxWatchesPerPeer: flags['max-watches-per-peer'],
      maxKeptAnswers: flags['max-kept-answers'],
      maxKeptAnswerBytes: flags['max-kept-answer-bytes'],
      maxInFlightPerPeer: flags['max-in-flight-per-peer'],
      maxInFlightBytesPerPeer: flags['max-in-flight-bytes-per-peer'],
      publishRate: flags['publish-rate'],
      maxPartialFrameBytes: flags['max-partial-frame-bytes'],
      retry: { delay: flags['retry-delay'], factor: flags['retry-factor'], maxDelay: flags['retry-max-delay'] },
      deadLetter: flags['dead-letter'] === 'off' ? false : flags['dead-letter'],
      queues: transient.map((pattern) => ({ pattern, transient: true }))
    })
  } catch (err) {
    await web?.close()
    throw listenError(err, listen) ?? err
  }
  const mq = node.services.mq
  const peerId = node.peerId.toString()
  console.log(`Broker peer ID: ${peerId}`)
  const listening = node.services.listenAddresses.get().map((a) => `${a.toString()}/p2p/${peerId}`)
  for (const addr of listening) console.log(`Listening on ${addr}`)
  for (const addr of node.getMultiaddrs().map(String)) if (!listening.includes(addr) && !addr.includes('/p2p-circuit')) console.log(`Announced as ${addr}`)
  reportRelayed(node)
  reportAcl(node, acl, join(dataDir, 'acl.json'), listen, relays, announce)
  mq.addEventListener('client:denied', (e) => {
    const d = e.detail
    log.warn(`Refused ${d.role != null ? `${d.role} ` : ''}${d.peer}: ${d.reason}${d.suppressed > 0 ? ` (and ${d.suppressed} more refusals of it in the last minute)` : ''}`)
  })
  if (!flags.quiet) {
    mq.addEventListener('client:join', (e) => { log.info(`${e.detail.role} ${e.detail.peer} joined`) })
    mq.addEventListener('client:leave', (e) => { log.info(`${e.detail.role} ${e.detail.peer} left${e.detail.error != null ? ` (${errorText(e.detail.error)})` : ''}`) })
  }
  mq.addEventListener('peer:limit', (e) => { log.warn(`Limit reached by ${e.detail.peer}: ${e.detail.message}`) })
  mq.addEventListener('client:error', (e) => { log.error(`${e.detail.role} ${e.detail.peer}: ${errorText(e.detail.error)}`) })
  if (web != null) console.log(`Web: ${web.url}`)
  let gateway: HttpGateway | undefined
  if (gatewayAt != null) {
    try {
      gateway = await serveGateway(node, gatewayAt, dataDir, flags['max-payload'], flags['visibility-timeout'])
    } catch (err) {
      await web?.close()
      await node.stop()
      throw err
    }
    console.log(`Gateway: ${gateway.url}v1/`)
    if (mq.aclMode === 'protected' && !isLoopback(`/${isIP(gatewayAt.host) === 6 ? 'ip6' : 'ip4'}/${gatewayAt.host}`)) log.warn('The gateway listens beyond this host with no ACL: every token may do everything (the gateway\'s peers are on this host). Give the broker an ACL (-acl) to limit them')
  }
  await shutdownSignal()
  log.info('Stopping broker')
  await gateway?.close()
  await web?.close()
  await node.stop()
  return 0
}

/** Serves the HTTP gateway, whose token peers reach the broker on one of its TCP addresses on this host. */
async function serveGateway (node: BrokerNode, at: { host: string, port: number }, dataDir: string, maxPayload: number, visibility: number): Promise<HttpGateway> {
  const tcp = node.services.listenAddresses.get().map(String).filter((a) => /^\/ip[46]\/[^/]+\/tcp\/[0-9]+$/.test(a))
    .map((a) => a.replace(/^\/ip4\/0\.0\.0\.0\//, '/ip4/127.0.0.1/').replace(/^\/ip6\/::\//, '/ip6/::1/'))
  const local = tcp.find((a) => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')) ?? tcp[0]
  if (local == null) throw new UsageError('-gateway needs the broker to listen on a TCP address (-listen=/ip4/127.0.0.1/tcp/0,…)')
  try {
    return await startGateway({ ...at, broker: `${local}/p2p/${node.peerId.toString()}`, tokens: new TokenFile(dataDir, (err, kept) => { log.error(`Gateway: ${err.message}; ${kept ? 'the tokens read before stay in use' : 'every request is refused (503) until it can be read'}`) }), maxPayload, visibility })
  } catch (err) {
    if (!(err instanceof WebPortError)) throw err
    throw new WebPortError(`Cannot serve the gateway: ${err.message}; give -gateway=<another port>, or 0 (any free port)`, err.code)
  }
}

/** -gateway: [<host>:]<port> (host 127.0.0.1 unless given; an IPv6 one in brackets), or off (undefined). */
function gatewayAddress (value: string): { host: string, port: number } | undefined {
  if (value === 'off') return undefined
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?([0-9]{1,5})$/.exec(value)
  const host = m?.[1]?.replace(/^\[|\]$/g, '') ?? '127.0.0.1'
  if (m == null || Number(m[2]) > 65535 || isIP(host) === 0) throw new UsageError(`-gateway takes [<host>:]<port> (an IP address, IPv6 in brackets; port 0-65535, 0: any free port) or off, not "${value}"`)
  return { host, port: Number(m[2]) }
}

/** -http: a port, 0 (any free port) or off (undefined). */
function webPort (value: string): number | undefined {
  if (value === 'off') return undefined
  const port = Number(value)
  if (!/^[0-9]+$/.test(value) || port > 65535) throw new UsageError(`-http takes a port (0-65535; 0: any free port) or off, not "${value}"`)
  return port
}

/** -listen: multiaddrs a broker can listen on: TCP, or UDP with webrtc-direct. */
function listenAddrs (value: string): string[] {
  const addrs = list(value)
  if (addrs.length === 0) throw new UsageError('-listen needs at least one address')
  for (const addr of addrs) {
    let names: string[]
    try {
      names = multiaddr(addr).getComponents().map((c) => c.name)
    } catch (err) {
      throw new UsageError(`-listen: "${addr}" is not a multiaddr (${(err as Error).message})`)
    }
    const ip = ['ip4', 'ip6'].includes(names[0])
    const tcp = names.length === 2 && names[1] === 'tcp'
    const webrtc = names.length === 3 && names[1] === 'udp' && names[2] === 'webrtc-direct'
    if (!ip || !(tcp || webrtc)) throw new UsageError(`-listen: cannot listen on "${addr}": give /ip4|ip6/<address>/tcp/<port> or /ip4|ip6/<address>/udp/<port>/webrtc-direct`)
  }
  return addrs
}

/** -announce: multiaddrs without /p2p/ (the broker's own peer ID is added). */
function announceAddrs (value: string): string[] {
  return list(value).map((addr) => {
    let names: string[]
    try {
      names = multiaddr(addr).getComponents().map((c) => c.name)
    } catch (err) {
      throw new UsageError(`-announce: "${addr}" is not a multiaddr (${(err as Error).message})`)
    }
    if (names.includes('p2p') || names.includes('p2p-circuit')) throw new UsageError(`-announce: give "${addr}" without /p2p/ or /p2p-circuit (relayed addresses are announced by themselves)`)
    const why = notDialable(addr)
    if (why != null) throw new UsageError(`-announce: "${addr}" ${why}`)
    return addr
  })
}

/**
 * A listen address the broker could not take, as one line naming it, or undefined for other errors.
 * libp2p reports a TCP port in use as UnsupportedListenAddressesError with a stack trace per address,
 * and a UDP port in use for WebRTC Direct without naming the address.
 */
export function listenError (err: unknown, listen: string[]): Error | undefined {
  if (!(err instanceof Error)) return undefined
  const failed = [...err.message.matchAll(/^\s*(\/\S+): (?:\w*Error: )?(.*)$/gm)]
  if (err.name === 'UnsupportedListenAddressesError' && failed.length > 0) {
    return listenErrorOf(failed.map(([, addr, why]) => `Cannot listen on ${addr}: ${/EADDRINUSE/.test(why) ? 'the address is in use' : why}`).join('; ') +
      '; give -listen another port (0: any free port)')
  }
  if (/UDP mux/.test(err.message)) {
    const udp = listen.filter((a) => a.includes('/webrtc-direct'))
    return listenErrorOf(`Cannot listen on ${udp.join(', ')}: ${err.message} (is the UDP port in use?); give -listen another port (0: any free port)`)
  }
  return undefined
}

/** Named so the command exits with the usage code (another -listen fixes it). */
function listenErrorOf (message: string): Error {
  return Object.assign(new Error(message), { name: 'ListenError' })
}

/** Prints each address through a relay as the broker gets it (a reservation, again after a relay came back). */
function reportRelayed (node: BrokerNode): void {
  if (node.services.relays == null) return
  // Once per relay and run of failures: a dead relay, or an address that is no relay, is told, not looped on.
  const tell = ({ relay, error, retryIn }: ReservationFailure): void => {
    // libp2p says why on the line of the address, under a line about its configuration.
    const why = /^\s*\/\S+: (?:\w*Error: )?(.*)$/m.exec(error.message)?.[1] ?? error.message.split('\n')[0]
    log.warn(`Cannot reserve a slot on the relay ${relay}: ${why}${retryIn != null ? ` (trying again, at most ${RELAY_RETRY_MAX_DELAY / 1000} s apart)` : ''}`)
  }
  node.services.relays.addEventListener('reservation:failed', (e) => { tell((e as CustomEvent<ReservationFailure>).detail) })
  // (Those that failed while the broker started.)
  for (const { failure } of node.services.relays.status()) if (failure != null) tell(failure)
  let shown = new Set<string>()
  const show = (): void => {
    const relayed = new Set(node.getMultiaddrs().map((a) => a.toString()).filter((a) => a.includes('/p2p-circuit')))
    for (const addr of relayed) if (!shown.has(addr)) log.info(`Reachable through a relay at ${addr}`)
    shown = relayed
  }
  node.addEventListener('self:peer:update', show)
  show()
}

/**
 * Says which access control the broker runs with, and once, loudly (stderr), when a broker that
 * other hosts can reach (a -listen address not on loopback, -relay or -announce) is open to any
 * peer or has no ACL yet.
 */
function reportAcl (node: BrokerNode, given: string | undefined, kept: string, listen: string[], relays: string[], announce: string[]): void {
  const mode = node.services.mq.aclMode
  const peers = Object.keys(node.services.mq.access.acl.info().peers).length
  if (mode === 'open') console.log('ACL: open to any peer')
  else if (mode === 'protected') console.log('ACL: none yet (protected mode: only peers on this host)')
  else console.log(`ACL: ${peers} peer${peers === 1 ? '' : 's'}, from ${given ?? kept}`)
  const beyond = [...listen.filter((a) => !isLoopback(a)).map((a) => `listening on ${a}`), ...(relays.length > 0 ? [`through ${relays.length} relay${relays.length === 1 ? '' : 's'}`] : []), ...announce.map((a) => `announced as ${a}`)]
  if (beyond.length === 0 || mode === 'acl') return
  const where = beyond.join(', ')
  if (mode === 'open') {
    console.error(`WARNING: this broker is OPEN (-acl=open) and reachable beyond this host (${where}): any peer that reaches it may publish, consume, purge and delete. Give -acl=<file> naming who may do what (README: Access control).`)
  } else {
    console.error(`WARNING: this broker has no ACL and is reachable beyond this host (${where}): every peer not on this host is refused. To let them in, give -acl=<file>, or run p2pmq acl allow <peer ID> <right> on this host (README: Access control).`)
  }
}

/** A listen address on 127.0.0.0/8 or ::1. */
function isLoopback (addr: string): boolean {
  const [ip] = multiaddr(addr).getComponents()
  return (ip.name === 'ip4' && (ip.value ?? '').startsWith('127.')) || (ip.name === 'ip6' && ip.value === '::1')
}
