/**
 * The broker's web server: the built web page (files under `root`, served by sirv), `GET /api/broker` with the broker's peer ID and its current addresses, so a page can
 * find the WebRTC address to dial (it changes when the certificate is renewed), and `GET /metrics` for Prometheus.
 *
 * Hardened as every server in the broker is (http-server.ts); besides, bad URLs and methods get a
 * 4xx, the Host header must name this server (DNS rebinding), and every response carries a strict
 * Content-Security-Policy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { existsSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import sirv from 'sirv'
import { peerIdFromString } from '@libp2p/peer-id'
import { localAddresses } from './reachable-addresses.js'
import { isBrowserDialable } from './relay-address.js'
import type { Libp2p } from '@libp2p/interface'
import type { Registry } from 'prom-client'
import { serverUrl, startHttpServer } from './http-server.js'

export { WebPortError } from './http-server.js'

/** The built web page: web/dist in the package (this file is dist/src/web-server.js). */
export const WEB_ROOT = fileURLToPath(new URL('../../web/dist/', import.meta.url))

/**
 * The page runs only its own bundled script: no inline script or style, no plugins, no <base>,
 * never framed. WebRTC is not governed by CSP; connect-src covers fetch('/api/broker').
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"
].join('; ')

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}

/** Vite's hashed bundle: a file's name changes with its content, so it can be kept for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable'
/** Everything else is checked again on every use (index.html names the current bundle). */
const REVALIDATE = 'no-cache'

export interface BrokerInfo {
  peerId: string
  /** Every address the broker listens on, current. */
  addresses: string[]
  /** The WebRTC Direct ones, not through a relay: what a browser dials first. */
  webrtc: string[]
  /**
   * The relays the broker is reachable through, each at an address a browser can dial (WebRTC
   * Direct) ending in /p2p/<relay>: a page dials `<relay>/p2p-circuit/p2p/<broker>`.
   */
  relays: string[]
  /** The broker's STUN servers, for a page's direct WebRTC upgrade through a relay. */
  stun: string[]
}

export interface WebServer {
  /** e.g. http://127.0.0.1:8094/ */
  readonly url: string
  readonly port: number
  close: () => Promise<void>
}

export interface WebServerOptions {
  /** 0: any free port. */
  port: number
  /** Default 127.0.0.1. */
  host?: string
  root: string
  /** The broker's current addresses; undefined while it starts (answered 503). */
  info: () => BrokerInfo | undefined | Promise<BrokerInfo | undefined>
  /** `GET /metrics`: the registry to expose; undefined while the broker starts (503), null when it keeps no metrics (404, as without this option). */
  metrics?: () => Registry | null | undefined
}

export async function startWebServer (options: WebServerOptions): Promise<WebServer> {
  const host = options.host ?? '127.0.0.1'
  // `dev` mode looks each file up when asked (not once at start), so a page rebuilt while the
  // broker runs is served whole and a file gone since is a 404, not a crash.
  const serveFile = sirv(options.root, { dev: true, etag: true, setHeaders: (res, path) => { res.setHeader('cache-control', path.startsWith('/assets/') ? IMMUTABLE : REVALIDATE) } })
  let allowedHosts = new Set<string>()

  /** Per connection, the files its responses read, closed with it (a response queued behind another gets no 'close' of its own). */
  const openFiles = new WeakMap<Socket, Set<Readable>>()
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket
    let files = openFiles.get(socket)
    if (files == null) {
      const f = files = new Set<Readable>()
      openFiles.set(socket, f)
      socket.once('close', () => { for (const file of f) file.destroy() })
    }
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value)
    const fail = (status: number, text: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra })
      res.end(`${text}\n`)
    }
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      fail(403, 'Host not allowed: open this page by its address on this machine (e.g. http://127.0.0.1:<port>/)')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      fail(405, 'Only GET and HEAD', { allow: 'GET, HEAD' })
      return
    }
    const url = req.url ?? ''
    if (!url.startsWith('/')) {
      fail(400, 'Bad request target')
      return
    }
    const rawPath = url.split(/[?#]/, 1)[0]
    let path: string
    try {
      path = decodeURIComponent(rawPath)
    } catch {
      fail(400, 'Malformed URL')
      return
    }
    if (path.includes('\0') || path.includes('\\')) {
      fail(400, 'Malformed URL')
      return
    }
    if (path === '/api/broker') {
      Promise.resolve(options.info()).then((info) => {
        if (info == null) {
          fail(503, 'The broker is starting', { 'retry-after': '1' })
          return
        }
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        res.end(JSON.stringify(info))
      }, () => { fail(500, 'Internal error') })
      return
    }
    if (path === '/metrics' && options.metrics != null) {
      const registry = options.metrics()
      if (registry === null) {
        fail(404, 'This broker keeps no metrics')
        return
      }
      if (registry == null) {
        fail(503, 'The broker is starting', { 'retry-after': '1' })
        return
      }
      registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        res.end(text)
      }, () => { fail(500, 'Internal error') })
      return
    }
    if (path.startsWith('/api/')) {
      fail(404, 'Not found')
      return
    }
    if (path.split('/').some((part) => part.startsWith('.'))) {
      fail(404, 'Not found')
      return
    }
    // Ranges are ignored (allowed by HTTP): the page needs none, and sirv trusts them as given.
    delete req.headers.range
    // A file that cannot be read after all (removed in between) ends this response only.
    res.on('pipe', (file) => {
      files.add(file)
      file.once('close', () => files.delete(file))
      file.on('error', () => { res.destroy() })
    })
    serveFile(req, res, () => {
      fail(404, existsSync(join(options.root, 'index.html')) ? 'Not found' : 'The web page is not built here (npm run build:web).')
    })
  }

  const { port, close } = await startHttpServer(options.port, host, handle)
  allowedHosts = hostHeaders(host, port)
  return {
    url: serverUrl(host, port),
    port,
    close
  }
}

/**
 * The Host headers this server answers: loopback names and the address it listens on (all this
 * machine's addresses when it listens on every interface), with its port. A page on another name
 * (a DNS rebinding attack points evil.example at 127.0.0.1) is refused.
 */
function hostHeaders (listenHost: string, port: number): Set<string> {
  const names = ['127.0.0.1', 'localhost', '[::1]']
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::'
  if (wildcard) {
    for (const nics of Object.values(networkInterfaces())) {
      for (const nic of nics ?? []) names.push(nic.family === 'IPv6' ? `[${nic.address}]` : nic.address)
    }
  } else {
    names.push(listenHost.includes(':') ? `[${listenHost}]` : listenHost)
  }
  const hosts = new Set<string>()
  for (const name of names) {
    hosts.add(`${name.toLowerCase()}:${port}`)
    if (port === 80) hosts.add(name.toLowerCase())
  }
  return hosts
}

/** A libp2p node with the broker service (its metrics, when it keeps them). */
type BrokerLike = Libp2p<{ mq: { metrics?: Registry } }>

/**
 * Serves the web page, the broker's current addresses and its metrics on 127.0.0.1:`port` (0: any
 * free port). `node` may be a getter, so the port is taken before the broker starts (its info is
 * 503 until then). `stun`: the broker's STUN servers, handed to the page with the relays.
 */
export async function serveBroker (node: BrokerLike | (() => BrokerLike | undefined), port: number, options: { stun?: string[] } = {}): Promise<WebServer> {
  const current = typeof node === 'function' ? node : () => node
  const info = async (): Promise<BrokerInfo | undefined> => {
    const n = current()
    if (n == null) return undefined
    // The page runs on this host: it may use the loopback addresses a NATed broker does not announce.
    const addresses = localAddresses(n).map(String)
    return { peerId: n.peerId.toString(), addresses, webrtc: addresses.filter(isBrowserDialable), relays: await browserRelays(n, addresses), stun: options.stun ?? [] }
  }
  return await startWebServer({ port, root: WEB_ROOT, info, metrics: () => { const n = current(); return n == null ? undefined : n.services.mq.metrics ?? null } })
}

/**
 * The browser-dialable addresses of the relays the broker has a reservation on (those its
 * `<relay>/p2p-circuit` addresses name), as each relay told them (identify).
 */
async function browserRelays (node: Libp2p, addresses: string[]): Promise<string[]> {
  const ids = new Set(addresses.flatMap((a) => {
    const m = /\/p2p\/([^/]+)\/p2p-circuit\//.exec(a)
    return m != null ? [m[1]] : []
  }))
  const relays: string[] = []
  for (const id of ids) {
    const peer = await node.peerStore.get(peerIdFromString(id)).catch(() => undefined)
    for (const { multiaddr } of peer?.addresses ?? []) {
      const addr = multiaddr.toString()
      if (isBrowserDialable(addr)) relays.push(addr.includes('/p2p/') ? addr : `${addr}/p2p/${id}`)
    }
  }
  return relays
}
