/**
 * The p2pmq web page: a libp2p peer of its own in the browser (its identity: identity.ts). It finds
 * its broker from its URL (`?broker=<peer ID>&relay=<relay address>&stun=stun:<host>:<port>`, so
 * any web server can serve it) or from the /api/broker of the broker that served it
 * (broker-target.ts), dials the broker's WebRTC Direct address or through a relay, moving to a
 * direct WebRTC connection when the NATs allow (page-node.ts), subscribes to commands as a
 * consumer and answers them, automatically or by hand. `?subscribe=a,b&answer=auto` does it on
 * load; `&group=name` joins that consumer group (its own group sees every message). It shows what
 * the broker's access control list lets it do, the dashboard only when that includes admin read,
 * and for anything refused the line that allows it (access.ts).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { Admin } from '../src/client/admin.js'
import { Consumer, type Message } from '../src/client/consumer.js'
import { Producer } from '../src/client/producer.js'
import { payloadToText } from '../src/payload.js'
import { PermissionDeniedError, UnknownMethodError } from '../src/errors.js'
import { allowLine, rightsText, unrestricted } from './access.js'
import { patternError } from '../src/names.js'
import { brokerTarget, TargetError } from './broker-target.js'
import { pageNode, viaOf } from './page-node.js'
import { Dashboard } from './dashboard.js'
import { MessageBrowser } from './message-browser.js'
import { $ } from './dom.js'
import type { Grant, PeerRights } from '../src/broker/api.js'
import type { Libp2p } from '@libp2p/interface'

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

function setState (state: string): void {
  $('state').textContent = state
  $('state').dataset.state = state
}

/** What the page was refused, each by the line its operator runs to allow it. */
const asks = new Set<string>()

function renderAsks (): void {
  $('ask').hidden = asks.size === 0
  $('ask-lines').replaceChildren(...[...asks].map((line) => {
    const li = document.createElement('li')
    const code = document.createElement('code')
    code.textContent = line
    li.append(code, ' ', copyButton(line))
    return li
  }))
}

/** `err` refused what `grant` allows (a PermissionDeniedError): the refusal and its line are shown; anything else is thrown on. */
function refused (peer: string, grant: Grant, err: unknown): void {
  if (!(err instanceof PermissionDeniedError)) throw err
  $('denied').textContent = err.message
  asks.add(allowLine(peer, grant))
  renderAsks()
}

function allowed (peer: string, grant: Grant): void {
  if (asks.delete(allowLine(peer, grant))) renderAsks()
}

function copyButton (text: string): HTMLButtonElement {
  const button = document.createElement('button')
  button.type = 'button'
  button.textContent = 'Copy'
  // (No clipboard API outside a secure context: the text is then selected with one click instead.)
  button.onclick = () => { navigator.clipboard?.writeText(text).then(() => { button.textContent = 'Copied' }, () => {}) }
  return button
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
  const peer = node.peerId.toString()
  $('peer').textContent = peer
  $('copy-peer').replaceWith(copyButton(peer))
  $('broker').textContent = target.peerId
  // With /api/broker, each dial asks the broker's web server for its current WebRTC address: it
  // changes when the broker restarts on another port or renews its certificate. Through a relay,
  // the broker's own addresses come first, then `<relay>/p2p-circuit/p2p/<broker>`.
  const broker = { broker: target.peerId, node, lookup: target.lookup, relays: target.relays }
  // Why the page is not connected yet. A broker whose ACL grants this peer ID nothing closes the
  // connection during the handshake, which a browser's WebRTC dial sees only as a timeout (it
  // cannot tell that from a broker that is away): after two failed dials the page says both, with
  // the lines that would allow it (what the URL subscribes to, and the dashboard).
  let failedDials = 0
  const wanted = params.get('subscribe')?.split(',') ?? []
  // (Only valid patterns: the URL is anyone's to write, and the operator may paste these lines.)
  const connectGrants: Grant[] = [...wanted.filter((p) => patternError(p) == null).map((consume) => ({ consume })), { admin: 'read' }]
  const consumer = new Consumer({
    ...broker,
    onRetry: (err) => {
      $('retry').textContent = `not connected: ${err.message}`
      if (++failedDials < 2 && !(err instanceof PermissionDeniedError)) return
      const why = new PermissionDeniedError(`The broker has not taken this page's connection in ${failedDials} tries (${err.message}). ` +
        'If it has an access control list that grants this peer ID nothing, it refuses the connection; else it may be away.')
      for (const grant of connectGrants) refused(peer, grant, why)
    }
  })
  consumer.events.addEventListener('connected', () => {
    setState('connected')
    $('retry').textContent = ''
    if (failedDials >= 2) for (const grant of connectGrants) allowed(peer, grant)
    failedDials = 0
    showTransport(node, target.peerId)
    void checkRights()
  })
  consumer.events.addEventListener('subscription:ended', (e) => {
    for (const pattern of e.detail.patterns) refused(peer, { consume: pattern, group: e.detail.group }, e.detail.error)
  })
  // A relayed connection moved to a direct one (the streams follow it).
  node.addEventListener('connection:open', () => { showTransport(node, target.peerId) })
  consumer.events.addEventListener('disconnected', () => { setState('reconnecting') })
  setState('connecting')
  // The dashboard, for a page with admin read: the broker pushes its stats over the same
  // connection, every second. The page asks again what it may do every 10 s, so a right the
  // operator gives or takes away shows without a reload.
  const admin = new Admin(broker)
  const browser = new MessageBrowser(async (query) => await admin.messages(query, 10_000))
  const dashboard = new Dashboard({
    browse: (command) => { browser.show({ state: 'pending', command }) },
    purge: async (command, group) => `Purged ${await admin.purge(command, group)} messages of ${command}@${group}`,
    deleteQueue: async (command, group) => `Deleted ${command}@${group} and its ${await admin.deleteQueue(command, group)} messages`,
    replay: async (command) => `Replayed ${await admin.replayDeadLetters(command)} dead letters of ${command}`
  })
  let stopWatch: (() => void) | undefined
  const checkRights = async (): Promise<void> => {
    let me: PeerRights
    try {
      me = await admin.whoami(5_000)
    } catch (err) {
      if (!(err instanceof UnknownMethodError)) return // not connected: asked again later
      me = unrestricted(peer)
    }
    $('rights').textContent = rightsText(me.rights)
    const mayRead = me.rights.admin != null
    dashboard.mayWrite = me.rights.admin === 'write'
    $('dashboard').hidden = !mayRead
    $('dashboard-denied').hidden = mayRead
    $('dashboard-ask').textContent = allowLine(peer, { admin: 'read' })
    if (mayRead) stopWatch ??= admin.watch((stats) => { dashboard.update(stats) }, 1000)
    else {
      stopWatch?.()
      stopWatch = undefined
    }
  }
  setInterval(() => { void checkRights() }, 10_000)
  // The page as a producer: send a command and show the answer, or publish it (confirmed, no answer).
  const producer = new Producer(broker)
  $('send').addEventListener('submit', (e) => {
    e.preventDefault()
    const form = new FormData(e.target as HTMLFormElement)
    $('answer').textContent = '…'
    const command = String(form.get('command'))
    const payload = String(form.get('payload'))
    const publish = (e as SubmitEvent).submitter?.getAttribute('name') === 'publish'
    const done = publish
      ? producer.publish(command, payload).then((id) => `published ${id}`)
      : producer.request(command, payload, { timeout: 10_000 }).then((r) => `${payloadToText(r.payload)} (from ${r.consumer})`)
    done.then((told) => {
      allowed(peer, { produce: command })
      $('answer').textContent = told
    }, (err: Error) => {
      $('answer').textContent = `failed: ${err.message}`
      if (err instanceof PermissionDeniedError) refused(peer, { produce: command }, err)
    })
  })

  const group = params.get('group') ?? undefined
  // `quiet`: count messages instead of listing them (the benchmark's page).
  const quiet = params.has('quiet')
  let handled = 0
  const subscribe = async (commands: string[], auto: boolean): Promise<void> => {
    await trySubscribe(commands, auto).then(() => {
      for (const pattern of commands) allowed(peer, { consume: pattern, group })
    }, (err) => {
      for (const pattern of commands) refused(peer, { consume: pattern, group }, err)
    })
  }
  const trySubscribe = async (commands: string[], auto: boolean): Promise<void> => {
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
    if (commands.length > 0) {
      subscribe(commands, form.get('auto') != null).catch((err: Error) => { showError(err) })
    }
  })
  if (wanted.length > 0) await subscribe(wanted, params.get('answer') === 'auto')
}

function showError (err: Error): void {
  // As text: the message may quote what the URL or the broker sent.
  $('error').textContent = err.message
  $('error').hidden = false
  console.error(err)
}

main().catch((err: Error) => {
  setState('error')
  $('state').title = err.message
  showError(err)
})
