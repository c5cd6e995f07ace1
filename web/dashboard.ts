/**
 * The page's dashboard, for a peer with admin read: the broker's overview, its queues (sortable,
 * filterable) with their rates over the last minutes as a chart (uPlot), its clients grouped by
 * peer, its messages (message-browser.ts), and for admin write the actions on a queue: purge,
 * delete, replay its dead letters.
 *
 * The rates' history is what this page saw: the broker pushes its stats every second (`watch`),
 * and the page keeps the last HISTORY samples of the queues it shows.
 *
 * Every string that comes from the broker (commands, groups, peer IDs, errors) goes on the page as
 * text (textContent), never as HTML.
 */
import UPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import type { BrokerStats, ClientInfo } from '../src/broker/api.js'
import type { QueueStats } from '../src/broker/engine.js'
import { $, cell } from './dom.js'

/** Samples kept per queue: 5 minutes at one a second. */
const HISTORY = 300
/** Queues whose history is kept (the first in the broker's order, the deepest), besides the one charted. */
const HISTORY_QUEUES = 100
/** The chart's key for the sum of every queue. */
const ALL = ''

type Row = BrokerStats['queues'][number]
/** What the table sorts by: a column's key. */
type SortKey = 'queue' | 'depth' | 'inFlight' | 'delayed' | 'deadLetters' | 'consumers' | 'published' | 'acked'

/** What the dashboard's buttons do (admin requests of the page's Admin client); each resolves to what to tell. */
export interface QueueActions {
  purge: (command: string, group: string) => Promise<string>
  deleteQueue: (command: string, group: string) => Promise<string>
  replay: (command: string) => Promise<string>
  /** Shows the queue's waiting messages in the message browser. */
  browse: (command: string) => void
}

function queueName (q: QueueStats): string {
  return q.group === '' ? q.command : `${q.command}@${q.group}`
}

export function bytesText (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

function durationText (ms: number): string {
  const s = Math.floor(ms / 1000)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`
}

export class Dashboard {
  /** Admin write: the actions are shown. */
  mayWrite = false
  private stats?: BrokerStats
  private sortKey: SortKey = 'depth'
  private descending = true
  private filter = ''
  /** The queue charted (its name), or ALL. */
  private charted = ALL
  /** Per queue (and ALL): seconds, and the published, delivered and acked rates. */
  private readonly history = new Map<string, number[][]>()
  private chart?: UPlot

  constructor (private readonly actions: QueueActions) {
    $('queue-filter').addEventListener('input', (e) => {
      this.filter = (e.target as HTMLInputElement).value.trim().toLowerCase()
      this.renderQueues()
    })
    for (const th of Array.from(document.querySelectorAll<HTMLElement>('#queues th[data-sort]'))) {
      th.addEventListener('click', () => {
        const key = th.dataset.sort as SortKey
        this.descending = key === this.sortKey ? !this.descending : key !== 'queue'
        this.sortKey = key
        this.renderQueues()
      })
    }
    $('chart-all').addEventListener('click', () => { this.chartQueue(ALL) })
  }

  update (stats: BrokerStats): void {
    this.stats = stats
    this.record(stats)
    this.renderOverview(stats)
    this.renderQueues()
    this.renderClients(stats.clients)
    this.renderChart()
  }

  private record (stats: BrokerStats): void {
    const now = Date.now() / 1000
    const sum = [now, 0, 0, 0]
    const kept = new Set([ALL, this.charted])
    stats.queues.forEach((q, i) => {
      sum[1] += q.rates.published
      sum[2] += q.rates.delivered
      sum[3] += q.rates.acked
      const name = queueName(q)
      if (i < HISTORY_QUEUES || name === this.charted) {
        kept.add(name)
        this.push(name, [now, q.rates.published, q.rates.delivered, q.rates.acked])
      }
    })
    this.push(ALL, sum)
    for (const name of this.history.keys()) if (!kept.has(name)) this.history.delete(name)
  }

  private push (name: string, sample: number[]): void {
    const list = this.history.get(name) ?? []
    list.push(sample)
    if (list.length > HISTORY) list.shift()
    this.history.set(name, list)
  }

  private renderOverview (stats: BrokerStats): void {
    const b = stats.broker
    const peers = new Set(stats.clients.map((c) => c.peer)).size
    const items: Array<[string, string]> = b == null
      ? [['messages held', String(stats.messages)]]
      : [
          ['version', b.version],
          ['up', durationText(Date.now() - b.startedAt)],
          ['memory', b.memory != null ? `${bytesText(b.memory.rss)} (heap ${bytesText(b.memory.heapUsed)})` : '–'],
          ['store', b.storeBytes != null ? bytesText(b.storeBytes) : 'memory only'],
          ['messages held', String(stats.messages)],
          ['published', String(b.totals.published)],
          ['delivered', String(b.totals.delivered)],
          ['acked', String(b.totals.acked)],
          ['failed', String(b.totals.failed)],
          ['producers held by flow control', String(b.heldProducers)],
          ['peers', String(peers)]
        ]
    $('overview').replaceChildren(...items.map(([name, value]) => {
      const div = document.createElement('div')
      div.dataset.item = name
      const dt = document.createElement('dt')
      dt.textContent = name
      const dd = document.createElement('dd')
      dd.textContent = value
      div.append(dt, dd)
      return div
    }))
  }

  private sortValue (q: Row): string | number {
    switch (this.sortKey) {
      case 'queue': return queueName(q)
      case 'published': return q.rates.published
      case 'acked': return q.rates.acked
      default: return q[this.sortKey]
    }
  }

  private renderQueues (): void {
    const stats = this.stats
    if (stats == null) return
    const shown = stats.queues.filter((q) => this.filter === '' || queueName(q).toLowerCase().includes(this.filter))
    shown.sort((a, b) => {
      const x = this.sortValue(a)
      const y = this.sortValue(b)
      const order = typeof x === 'string' ? x.localeCompare(y as string) : x - (y as number)
      return this.descending ? -order : order
    })
    for (const th of Array.from(document.querySelectorAll<HTMLElement>('#queues th[data-sort]'))) {
      th.dataset.order = th.dataset.sort === this.sortKey ? (this.descending ? 'descending' : 'ascending') : ''
    }
    const rows = shown.map((q) => {
      const tr = document.createElement('tr')
      const name = queueName(q)
      tr.dataset.queue = name
      if (name === this.charted) tr.className = 'charted'
      const first = cell(name)
      first.title = 'Chart its rates'
      first.onclick = () => { this.chartQueue(name) }
      tr.append(first, cell(q.depth), cell(q.inFlight), cell(q.delayed), cell(q.deadLetters), cell(q.consumers),
        cell(q.rates.published.toFixed(1)), cell(q.rates.acked.toFixed(1)), this.actionsCell(q))
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
    $('queue-count').textContent = `${shown.length} of ${stats.queues.length + (stats.moreQueues ?? 0)}`
  }

  private actionsCell (q: Row): HTMLTableCellElement {
    const td = document.createElement('td')
    td.className = 'actions'
    const browse = document.createElement('button')
    browse.type = 'button'
    browse.textContent = 'Browse'
    browse.dataset.action = 'browse'
    browse.onclick = () => { this.actions.browse(q.command) }
    td.append(browse)
    if (!this.mayWrite) return td
    const name = queueName(q)
    const button = (label: string, question: string, act: () => Promise<string>): void => {
      const b = document.createElement('button')
      b.type = 'button'
      b.textContent = label
      b.dataset.action = label.toLowerCase()
      b.onclick = () => {
        if (!confirm(question)) return
        act().then((told) => { this.tell(told, false) }, (err: Error) => { this.tell(`${label} ${name}: ${err.message}`, true) })
      }
      td.append(b)
    }
    if (q.group !== '') {
      button('Purge', `Remove the ${q.depth} waiting messages of ${name}?`, async () => await this.actions.purge(q.command, q.group))
      button('Delete', `Delete the queue ${name} and its messages?`, async () => await this.actions.deleteQueue(q.command, q.group))
    }
    if (q.deadLetters > 0) button('Replay', `Put the ${q.deadLetters} dead letters of ${q.command} back in its queues?`, async () => await this.actions.replay(q.command))
    return td
  }

  /** Shows what an action did, or why it was refused. */
  tell (text: string, error: boolean): void {
    const el = $('action-result')
    el.textContent = text
    el.className = error ? 'error' : ''
  }

  private renderClients (clients: ClientInfo[]): void {
    const byPeer = new Map<string, ClientInfo[]>()
    for (const c of clients) byPeer.set(c.peer, [...(byPeer.get(c.peer) ?? []), c])
    $('clients').replaceChildren(...[...byPeer].map(([peer, streams]) => {
      const li = document.createElement('li')
      li.dataset.peer = peer
      const code = document.createElement('code')
      code.textContent = peer
      const roles = [...new Set(streams.map((s) => s.role))].sort()
      const subs = streams.flatMap((s) => s.subscriptions ?? []).map((s) => `${s.patterns.join(',')}@${s.group}`)
      li.dataset.roles = roles.join(' ')
      li.append(code, ` (${streams[0].via === 'webrtc' ? 'browser' : 'node'}) ${roles.join(', ')}${subs.length > 0 ? `: ${subs.join(' ')}` : ''}`)
      return li
    }))
  }

  private chartQueue (name: string): void {
    this.charted = name
    this.renderQueues()
    this.renderChart()
  }

  private renderChart (): void {
    const samples = this.history.get(this.charted) ?? []
    const data: UPlot.AlignedData = [0, 1, 2, 3].map((i) => samples.map((s) => s[i])) as UPlot.AlignedData
    $('chart-title').textContent = this.charted === ALL ? 'all queues' : this.charted
    if (this.chart != null) {
      this.chart.setData(data)
      return
    }
    const el = $('rates-chart')
    this.chart = new UPlot({
      width: Math.min(900, Math.max(300, el.clientWidth)),
      height: 220,
      series: [
        {},
        { label: 'published/s', stroke: '#36c' },
        { label: 'delivered/s', stroke: '#c63' },
        { label: 'acked/s', stroke: '#393' }
      ],
      axes: [{}, { size: 60 }]
    }, data, el)
  }
}
