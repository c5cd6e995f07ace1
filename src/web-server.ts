/**
 * The broker's web server: the built web page (from `root`), and `GET /api/broker` with the
 * broker's peer ID and its current addresses, so a page can find the WebRTC address to dial (it
 * changes when the certificate is renewed). Plain node:http; files outside `root` are never served.
 */
import { createServer, type Server } from 'node:http'
import { readFile, stat } from 'node:fs/promises'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Libp2p } from '@libp2p/interface'

/** The built web page: web/dist in the package (this file is dist/src/web-server.js). */
export const WEB_ROOT = fileURLToPath(new URL('../../web/dist/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm'
}

export interface BrokerInfo {
  peerId: string
  /** Every address the broker listens on, current. */
  addresses: string[]
  /** The WebRTC Direct ones: what a browser dials. */
  webrtc: string[]
}

export interface WebServer {
  /** e.g. http://127.0.0.1:8094/ */
  readonly url: string
  close: () => Promise<void>
}

export async function startWebServer (options: { port: number, host?: string, root: string, info: () => BrokerInfo }): Promise<WebServer> {
  const root = resolve(options.root)
  const server: Server = createServer((req, res) => {
    const send = (status: number, type: string, body: string | Uint8Array): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain; charset=utf-8', 'Only GET')
      return
    }
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    if (path === '/api/broker') {
      send(200, TYPES['.json'], JSON.stringify(options.info()))
      return
    }
    const file = normalize(join(root, path === '/' ? 'index.html' : path))
    if (file !== root && !file.startsWith(root + sep)) {
      send(404, 'text/plain; charset=utf-8', 'Not found')
      return
    }
    stat(file).then(async (s) => {
      if (!s.isFile()) throw new Error('not a file')
      send(200, TYPES[extname(file)] ?? 'application/octet-stream', await readFile(file))
    }).catch(() => {
      send(404, 'text/plain; charset=utf-8', path === '/' ? 'The web page is not built here.' : 'Not found')
    })
  })
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host ?? '127.0.0.1', () => { resolvePromise() })
  })
  const address = server.address()
  const port = typeof address === 'object' && address != null ? address.port : options.port
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/`,
    close: async () => { await new Promise<void>((resolvePromise) => { server.close(() => { resolvePromise() }); server.closeAllConnections() }) }
  }
}

/** Serves the web page and `node`'s current addresses on 127.0.0.1:`port` (0: any free port). */
export async function serveBroker (node: Libp2p, port: number): Promise<WebServer> {
  const info = (): BrokerInfo => {
    const addresses = node.getMultiaddrs().map(String)
    return { peerId: node.peerId.toString(), addresses, webrtc: addresses.filter((a) => a.includes('/webrtc-direct/')) }
  }
  return await startWebServer({ port, root: WEB_ROOT, info })
}
