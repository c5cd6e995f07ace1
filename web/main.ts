/**
 * The p2pmq web page: a libp2p peer of its own in the browser (its identity: identity.ts). It finds
 * its broker from its URL (`?broker=<peer ID>&relay=<relay address>&stun=stun:<host>:<port>`, so
 * any web server can serve it) or from the /api/broker of the broker that served it
 * (broker-target.ts), dials the broker's WebRTC Direct address or through a relay, moving to a
 * direct WebRTC connection when the NATs allow (page-node.ts), subscribes to commands as a
 * consumer and answers them, automatically or by hand. `?subscribe=a,b&answer=auto` does it on
 * load; `&group=name` joins that consumer group (its own group sees every message).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { Admin } from '../src/client/admin.js'
import { Consumer, type Message } from '../src/client/consumer.js'
import { Producer } from '../src/client/producer.js'
import { payloadToText } from '../src/payload.js'
import { brokerTarget, TargetError } from './broker-target.js'
import { pageNode, viaOf } from './page-node.js'
import type { BrokerStats } from '../src/broker/api.js'
import type { Libp2p } from '@libp2p/interface'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const SVG = 'http://www.w3.org/2000/svg'

/** The recent numeric values of each command this page received, for the latest value and a chart. */
const values = new Map<string, number[]>()
const KEEP_VALUES = 60
/** Messages listed at most (the newest). */
const MAX_LISTED = 200

function recordValue (command: string, payload: unknown): void {
  const n = typeof payload === 'number' ? payload : Number(payload)
  if (!Number.isFinite(n)) return
  const list = values.get(command) ?? []
  list.push(n)
  if (list.length > KEEP_VALUES) list.shift()
  values.set(command, list)
  renderValues()
}

/**
 * Every string that comes from the broker or a peer (commands, payloads, peer IDs, queue and group
 * names) is put on the page as text (textContent, append of a string, dataset), never as HTML.
 */
function renderValues (): void {
  $('values').replaceChildren(...[...values].map(([command, list]) => {
    const div = document.createElement('div')
    div.className = 'value'
    div.dataset.command = command
    const name = document.createElement('span')
    name.textContent = command
    const latest = document.createElement('b')
    latest.textContent = String(list[list.length - 1])
    const min = Math.min(...list)
    const range = Math.max(...list) - min
    const span = range > 0 ? range : 1
    const chart = document.createElementNS(SVG, 'svg')
    chart.setAttribute('width', '120')
    chart.setAttribute('height', '30')
    const line = document.createElementNS(SVG, 'polyline')
    line.setAttribute('points', list.map((v, i) => `${i * (120 / (KEEP_VALUES - 1))},${28 - ((v - min) / span) * 26}`).join(' '))
    chart.append(line)
    div.append(name, latest, chart)
    return div
  }))
}

function cell (text: string | number): HTMLTableCellElement {
  const td = document.createElement('td')
  td.textContent = String(text)
  return td
}

function renderStats (stats: BrokerStats): void {
  const rows = stats.queues.map((q) => {
    const tr = document.createElement('tr')
    tr.dataset.queue = q.group === '' ? q.command : `${q.command}@${q.group}`
    tr.append(cell(tr.dataset.queue), cell(q.depth), cell(q.inFlight), cell(q.delayed), cell(q.deadLetters), cell(q.consumers),
      cell(q.rates.published.toFixed(1)), cell(q.rates.acked.toFixed(1)))
    return tr
  })
  // The broker lists the deepest queues only.
  if ((stats.moreQueues ?? 0) > 0) {
    const tr = document.createElement('tr')
    tr.className = 'more'
    tr.append(cell(`and ${stats.moreQueues} more, shallower`))
    rows.push(tr)
  }
  $('queues').querySelector('tbody')?.replaceChildren(...rows)
  $('clients').replaceChildren(...stats.clients.map((c) => {
    const li = document.createElement('li')
    li.dataset.peer = c.peer
    const subs = c.subscriptions?.map((s) => `${s.patterns.join(',')}@${s.group}`).join(' ') ?? ''
    li.textContent = `${c.role} ${c.peer} (${c.via === 'webrtc' ? 'browser' : 'node'}) ${subs}`
    return li
  }))
}

function setState (state: string): void {
  $('state').textContent = state
  $('state').dataset.state = state
}

/** Shows how the page reaches its broker now: direct or relayed, the address, and when each first happened (ms from page start). */
function showTransport (node: Libp2p, broker: string): void {
  const conn = node.getConnections(peerIdFromString(broker)).find((c) => c.status === 'open')
  if (conn == null) return
  const addr = conn.remoteAddr.toString()
  const via = viaOf(addr)
  $('transport').textContent = addr
  const el = $('via')
  el.textContent = via
  el.dataset.via = via
  if (el.dataset[`${via}At`] == null) el.dataset[`${via}At`] = performance.now().toFixed(0)
}

async function main (): Promise<void> {
  const params = new URLSearchParams(location.search)
  const target = await brokerTarget(params)
  if (target.relays.length === 0 && target.lookup != null && (await target.lookup()).length === 0) throw new TargetError('The broker does not listen on WebRTC Direct, and has no relay')
  const node = await pageNode(target)
  $('peer').textContent = node.peerId.toString()
  $('broker').textContent = target.peerId
  // With /api/broker, each dial asks the broker's web server for its current WebRTC address: it
  // changes when the broker restarts on another port or renews its certificate. Through a relay,
  // the broker's own addresses come first, then `<relay>/p2p-circuit/p2p/<broker>`.
  const broker = { broker: target.peerId, node, lookup: target.lookup, relays: target.relays }
  const consumer = new Consumer(broker)
  consumer.events.addEventListener('connected', () => {
    setState('connected')
    showTransport(node, target.peerId)
  })
  // A relayed connection moved to a direct one (the streams follow it).
  node.addEventListener('connection:open', () => { showTransport(node, target.peerId) })
  consumer.events.addEventListener('disconnected', () => { setState('reconnecting') })
  setState('connecting')
  // The dashboard: the broker pushes its stats over the same connection, every second.
  const admin = new Admin(broker)
  admin.watch(renderStats, 1000)
  // The page as a producer: send a command, show the answer.
  const producer = new Producer(broker)
  $('send').addEventListener('submit', (e) => {
    e.preventDefault()
    const form = new FormData(e.target as HTMLFormElement)
    $('answer').textContent = '…'
    producer.request(String(form.get('command')), String(form.get('payload')), { timeout: 10_000 }).then((r) => {
      $('answer').textContent = `${payloadToText(r.payload)} (from ${r.consumer})`
    }, (err: Error) => { $('answer').textContent = `failed: ${err.message}` })
  })

  const group = params.get('group') ?? undefined
  // `quiet`: count messages instead of listing them (the benchmark's page).
  const quiet = params.has('quiet')
  let handled = 0
  const subscribe = async (commands: string[], auto: boolean): Promise<void> => {
    await consumer.subscribe(commands, (m: Message) => {
      if (quiet) {
        if (++handled % 1000 === 0) $('messages').textContent = `${handled} messages`
        return auto ? `Answer to ${payloadToText(m.payload)}` : undefined
      }
      const li = document.createElement('li')
      li.dataset.command = m.command
      li.textContent = `${m.command}: ${payloadToText(m.payload)} `
      $('messages').prepend(li)
      while ($('messages').children.length > MAX_LISTED) $('messages').lastElementChild?.remove()
      recordValue(m.command, m.payload)
      const answer = `Answer to ${payloadToText(m.payload)}`
      if (auto) {
        li.append(`→ ${answer}`)
        return answer
      }
      const button = document.createElement('button')
      button.textContent = 'Answer'
      li.append(button)
      return new Promise<string>((resolve) => {
        button.onclick = () => { button.replaceWith(`→ ${answer}`); resolve(answer) }
      })
    }, { group, expires: group != null ? 10 * 60_000 : undefined, prefetch: auto ? 1000 : 10, timeout: auto ? 30_000 : 10 * 60_000 })
  }
  $('subscribe').addEventListener('submit', (e) => {
    e.preventDefault()
    const form = new FormData(e.target as HTMLFormElement)
    const commands = String(form.get('commands')).split(',').map((c) => c.trim()).filter((c) => c !== '')
    if (commands.length > 0) void subscribe(commands, form.get('auto') != null)
  })
  const wanted = params.get('subscribe')
  if (wanted != null) await subscribe(wanted.split(','), params.get('answer') === 'auto')
}

main().catch((err: Error) => {
  setState('error')
  $('state').title = err.message
  // As text: the message may quote what the URL holds.
  $('error').textContent = err.message
  $('error').hidden = false
  console.error(err)
})
