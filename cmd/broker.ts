/** `p2pmq broker`: runs a broker until Ctrl+C. */
import { createBroker } from '../src/index.js'
import { defaultBrokerDataDir } from '../src/home.js'
import { DEFAULT_PAGE_BYTES, DEFAULT_PAGE_SIZE, DEFAULT_RETRY_DELAY, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DELAY, DEFAULT_COMPLETED_RETENTION, DEFAULT_HIGH_WATER, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_PAYLOAD, DEFAULT_VISIBILITY_TIMEOUT } from '../src/constants.js'
import { list, parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { errorText, shutdownSignal } from './lifecycle.js'
import { serveBroker, type WebServer } from '../src/web-server.js'

const specs = {
  data: { type: 'string', value: '<dir>', help: 'Data directory: the broker\'s identity (peer ID) and message store live here', default: '' },
  http: { type: 'string', value: '<port>', help: 'Serve the web page and /api/broker on 127.0.0.1 at this port (0: any free port; off: none)', default: '8094' },
  memory: { type: 'boolean', help: 'Keep messages in memory only (nothing survives a restart)' },
  listen: { type: 'string', value: '<multiaddr>[,…]', help: 'Addresses to listen on: TCP for Node peers, WebRTC Direct (UDP) for browsers', default: '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/webrtc-direct' },
  'max-payload': { type: 'number', value: '<bytes>', help: 'Largest message payload accepted', default: DEFAULT_MAX_PAYLOAD },
  'visibility-timeout': { type: 'number', value: '<ms>', help: 'How long a consumer may hold a message before another gets it', default: DEFAULT_VISIBILITY_TIMEOUT },
  'max-attempts': { type: 'number', value: '<n>', help: 'Deliveries of a message before it fails (0 = no limit)', default: DEFAULT_MAX_ATTEMPTS },
  'high-water': { type: 'number', value: '<n>', help: 'Waiting messages in a consumed queue past which producers wait for confirms (0 = never)', default: DEFAULT_HIGH_WATER },
  'max-messages': { type: 'number', value: '<n>', help: 'Messages held before publishes are refused; 0 means 100000000, or 2000000 with -memory', default: 0 },
  'retry-delay': { type: 'number', value: '<ms>', help: 'Wait before retrying a nacked message (0 = at once)', default: DEFAULT_RETRY_DELAY },
  'retry-factor': { type: 'number', value: '<x>', help: 'Multiply the wait by this after each failure (1 = fixed)', default: DEFAULT_RETRY_FACTOR },
  'retry-max-delay': { type: 'number', value: '<ms>', help: 'Longest wait before a retry', default: DEFAULT_RETRY_MAX_DELAY },
  'dead-letter': { type: 'string', value: '<suffix>', help: 'Failed messages go to <command><suffix>; "off" drops them', default: '.dlq' },
  'page-size': { type: 'number', value: '<n>', help: 'Waiting messages a queue keeps in memory; the rest wait on disk', default: DEFAULT_PAGE_SIZE },
  'page-bytes': { type: 'number', value: '<bytes>', help: 'Payload bytes a queue keeps in memory (and delayed messages do); the rest wait on disk', default: DEFAULT_PAGE_BYTES },
  'completed-retention': { type: 'number', value: '<ms>', help: 'How long completed messages stay listed (p2pmq messages); 0 = not kept', default: DEFAULT_COMPLETED_RETENTION },
  quiet: { type: 'boolean', help: 'Do not log clients joining and leaving' }
} satisfies FlagSpecs

export const summary = 'Run a broker. Prints its peer ID and listen addresses; clients on this host can use -broker=<peerId>.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('broker', summary, specs))
    return 0
  }
  for (const name of ['page-size', 'page-bytes'] as const) {
    if (!Number.isInteger(flags[name]) || flags[name] < 1) throw new UsageError(`-${name} must be a whole number of at least 1`)
  }
  const node = await createBroker({
    dataDir: flags.data !== '' ? flags.data : defaultBrokerDataDir(),
    memory: flags.memory,
    listen: list(flags.listen),
    maxPayload: flags['max-payload'],
    visibilityTimeout: flags['visibility-timeout'],
    maxAttempts: flags['max-attempts'] === 0 ? Infinity : flags['max-attempts'],
    highWater: flags['high-water'] === 0 ? Infinity : flags['high-water'],
    maxMessages: flags['max-messages'] > 0 ? flags['max-messages'] : undefined,
    completedRetention: flags['completed-retention'],
    pageSize: flags['page-size'],
    pageBytes: flags['page-bytes'],
    retry: { delay: flags['retry-delay'], factor: flags['retry-factor'], maxDelay: flags['retry-max-delay'] },
    deadLetter: flags['dead-letter'] === 'off' ? false : flags['dead-letter']
  })
  const mq = node.services.mq
  console.log(`Broker peer ID: ${node.peerId.toString()}`)
  for (const addr of node.getMultiaddrs()) console.log(`Listening on ${addr.toString()}`)
  if (!flags.quiet) {
    mq.addEventListener('client:join', (e) => { console.log(`${e.detail.role} ${e.detail.peer} joined`) })
    mq.addEventListener('client:leave', (e) => { console.log(`${e.detail.role} ${e.detail.peer} left${e.detail.error != null ? ` (${errorText(e.detail.error)})` : ''}`) })
  }
  mq.addEventListener('client:error', (e) => { console.error(`${e.detail.role} ${e.detail.peer}: ${errorText(e.detail.error)}`) })
  let web: WebServer | undefined
  if (flags.http !== 'off') {
    const port = Number(flags.http)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('-http must be a port number, 0 or off')
    web = await serveBroker(node, port)
    console.log(`Web: ${web.url}`)
  }
  await shutdownSignal()
  console.log('Stopping broker')
  await web?.close()
  await node.stop()
  return 0
}
