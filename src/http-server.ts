/**
 * An HTTP server that lives inside the broker (the web page's, the gateway's): nothing a client
 * sends can throw out of a request (a throw is a 500 for that request only), slow or huge requests
 * are cut by timeouts and Node's header limits, connections are capped, and a client that
 * pipelines requests without reading the answers is dropped.
 */
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** Server limits against slow or abusive clients (slowloris): a request's headers must arrive in 10 s, the whole request in 30 s. */
const HEADERS_TIMEOUT = 10_000
const REQUEST_TIMEOUT = 30_000
const MAX_CONNECTIONS = 256
/** ms a connection refused for a broken request stays open after its 4xx, reading nothing more. */
const REFUSED_LINGER = 1_000
/**
 * Responses one connection may have unwritten. Node parses every request a client pipelines, and a
 * file response holds its file open until written: one connection that sent 1,000 requests and
 * read nothing held 1,000 files for good (browsers do not pipeline). Past this it is dropped.
 */
const MAX_UNFINISHED_PER_CONNECTION = 4

/** The port cannot be listened on (another broker on this host has it, or no permission). */
export class WebPortError extends Error {
  name = 'WebPortError'
  constructor (message: string, readonly code: string | undefined) {
    super(message)
  }
}

export interface HttpServer {
  readonly server: Server
  readonly port: number
  close: () => Promise<void>
}

/** Handles one request (a throw ends that request with a 500). */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

/** Listens on `host`:`port` (0: any free port) with `handle`; throws WebPortError when it cannot. */
export async function startHttpServer (port: number, host: string, handle: RequestHandler): Promise<HttpServer> {
  const unfinished = new WeakMap<Socket, number>()
  const server: Server = createServer({
    headersTimeout: HEADERS_TIMEOUT,
    requestTimeout: REQUEST_TIMEOUT,
    connectionsCheckingInterval: 1_000
  }, (req, res) => {
    const socket = req.socket
    const count = unfinished.get(socket) ?? 0
    if (count >= MAX_UNFINISHED_PER_CONNECTION) {
      socket.destroy()
      return
    }
    unfinished.set(socket, count + 1)
    res.once('finish', () => { unfinished.set(socket, (unfinished.get(socket) ?? 1) - 1) })
    try {
      handle(req, res)
    } catch {
      // Whatever a request does, the broker goes on: this request ends, nothing else.
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
        res.end('Internal error\n')
      } else {
        res.destroy()
      }
    }
  })
  server.maxConnections = MAX_CONNECTIONS
  server.maxHeadersCount = 100
  // A client's broken request (bad syntax, headers too large or too slow) gets a 4xx and ends
  // that connection only. Node's own handling destroys the socket right after writing the 4xx:
  // when the request is still arriving (20 KB of headers), the reset reaches the client first and
  // it sees ECONNRESET, not the answer. So the answer ends the connection, which is destroyed a
  // moment later.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] as string}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    setTimeout(() => { socket.destroy() }, REFUSED_LINGER).unref()
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = `port ${port} on ${host}`
      reject(new WebPortError(err.code === 'EADDRINUSE'
        ? `${where} is already in use (another broker on this host?)`
        : err.code === 'EACCES' ? `no permission to listen on ${where}` : `cannot listen on ${where}: ${err.message}`, err.code))
    })
    server.listen(port, host, () => { resolve() })
  })
  // After listening, a server error (e.g. out of file descriptors on accept) must not end the broker.
  server.on('error', (err) => { process.emitWarning(`p2pmq HTTP server on ${host}:${port}: ${err.message}`) })
  const address = server.address()
  return {
    server,
    port: typeof address === 'object' && address != null ? address.port : port,
    close: async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }); server.closeAllConnections() }) }
  }
}

/** `http://host:port/` for a server listening on `host` (an IPv6 address in brackets). */
export function serverUrl (host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/`
}
