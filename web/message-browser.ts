/**
 * The dashboard's message browser: the broker's messages by state and command, a page at a time,
 * each with its headers and the start of its payload (the admin `messages` request with `bodies`).
 * What the broker sends is put on the page as text only.
 */
import type { MessageInfo, MessageQuery } from '../src/broker/api.js'
import { $, cell } from './dom.js'

/** Messages a page shows. */
export const BROWSE_PAGE = 20

const decoder = new TextDecoder('utf-8', { ignoreBOM: true })

/** A payload as the browser shows it: text for strings and JSON, hex for bytes, with … when cut. */
export function payloadPreview (p: MessageInfo['payload']): string {
  if (p == null || p.kind === 0) return '—'
  const bytes = Uint8Array.from(atob(p.data), (c) => c.charCodeAt(0))
  const cut = bytes.length < p.size ? ` … (${p.size} bytes)` : ''
  if (p.kind === 1) return `${Array.from(bytes.subarray(0, 64), (b) => b.toString(16).padStart(2, '0')).join(' ')}${bytes.length > 64 || cut !== '' ? ` … (${p.size} bytes)` : ''}`
  return `${decoder.decode(bytes)}${cut}`
}

export class MessageBrowser {
  private offset = 0
  private query: MessageQuery = {}

  constructor (private readonly read: (query: MessageQuery) => Promise<MessageInfo[]>) {
    $('browse').addEventListener('submit', (e) => {
      e.preventDefault()
      const form = new FormData(e.target as HTMLFormElement)
      const state = String(form.get('state'))
      const command = String(form.get('command')).trim()
      this.show({ state: state === '' ? undefined : state as MessageQuery['state'], command: command === '' ? undefined : command })
    })
    $('browse-prev').addEventListener('click', () => { this.page(Math.max(0, this.offset - BROWSE_PAGE)) })
    $('browse-next').addEventListener('click', () => { this.page(this.offset + BROWSE_PAGE) })
  }

  /** Shows the first page of the messages `query` selects (the form shows it too). */
  show (query: Pick<MessageQuery, 'state' | 'command'>): void {
    this.query = query
    const form = $('browse') as HTMLFormElement
    ;(form.elements.namedItem('state') as HTMLSelectElement).value = query.state ?? ''
    ;(form.elements.namedItem('command') as HTMLInputElement).value = query.command ?? ''
    this.page(0)
  }

  private page (offset: number): void {
    $('browse-status').textContent = '…'
    this.read({ ...this.query, offset, limit: BROWSE_PAGE + 1, bodies: true }).then((found) => {
      this.offset = offset
      const more = found.length > BROWSE_PAGE
      const shown = found.slice(0, BROWSE_PAGE)
      $('browse-list').querySelector('tbody')?.replaceChildren(...shown.map((m) => {
        const tr = document.createElement('tr')
        tr.dataset.id = m.id
        const headers = Object.entries(m.headers ?? {}).map(([k, v]) => `${k}=${v}`).join('; ')
        tr.append(cell(m.id), cell(m.group === '' ? m.command : `${m.command}@${m.group}`), cell(m.state), cell(m.attempts),
          cell(new Date(m.publishedAt).toLocaleTimeString()), cell(headers), cell(payloadPreview(m.payload)))
        tr.lastElementChild?.classList.add('payload')
        return tr
      }))
      $('browse-status').textContent = shown.length === 0 ? (offset === 0 ? 'none' : 'no more') : `${offset + 1}–${offset + shown.length}${more ? '' : ' (the last)'}`
      ;($('browse-prev') as HTMLButtonElement).disabled = offset === 0
      ;($('browse-next') as HTMLButtonElement).disabled = !more
    }, (err: Error) => {
      $('browse-status').textContent = `failed: ${err.message}`
    })
  }
}
