/**
 * The p2pmq web page: a libp2p peer of its own in the browser. It dials the broker over WebRTC
 * Direct (the address comes from the broker's /api/broker), subscribes to commands as a consumer
 * and answers them, automatically or by hand. `?subscribe=a,b&answer=auto` does it on load.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { webRTCDirect } from '@libp2p/webrtc'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { fromString, toString } from 'uint8arrays'
import { Consumer, type Message } from '../src/client/consumer.js'
import { payloadToText } from '../src/payload.js'
import type { PrivateKey } from '@libp2p/interface'

const KEY = 'p2pmq-private-key'
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

/** The same peer ID across reloads: the key is kept in this browser's storage. */
async function identity (): Promise<PrivateKey> {
  const kept = localStorage.getItem(KEY)
  if (kept != null) return privateKeyFromProtobuf(fromString(kept, 'base64'))
  const key = await generateKeyPair('Ed25519')
  localStorage.setItem(KEY, toString(privateKeyToProtobuf(key), 'base64'))
  return key
}

function setState (state: string): void {
  $('state').textContent = state
  $('state').dataset.state = state
}

async function main (): Promise<void> {
  const info = await (await fetch('/api/broker')).json() as { peerId: string, webrtc: string[] }
  if (info.webrtc.length === 0) throw new Error('The broker does not listen on WebRTC Direct')
  const node = await createLibp2p({
    privateKey: await identity(),
    transports: [webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The broker is on this machine: let the page dial loopback addresses.
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify() }
  })
  $('peer').textContent = node.peerId.toString()
  $('broker').textContent = info.peerId
  const consumer = new Consumer({ broker: info.webrtc[0], node })
  consumer.events.addEventListener('connected', () => {
    setState('connected')
    $('transport').textContent = node.getConnections()[0]?.remoteAddr.toString() ?? ''
  })
  consumer.events.addEventListener('disconnected', () => { setState('reconnecting') })
  setState('connecting')

  const subscribe = async (commands: string[], auto: boolean): Promise<void> => {
    await consumer.subscribe(commands, async (m: Message) => {
      const li = document.createElement('li')
      li.dataset.command = m.command
      li.textContent = `${m.command}: ${payloadToText(m.payload)} `
      $('messages').prepend(li)
      const answer = `Answer to ${payloadToText(m.payload)}`
      if (auto) {
        li.append(`→ ${answer}`)
        return answer
      }
      const button = document.createElement('button')
      button.textContent = 'Answer'
      li.append(button)
      return await new Promise<string>((resolve) => {
        button.onclick = () => { button.replaceWith(`→ ${answer}`); resolve(answer) }
      })
    }, { prefetch: auto ? 1000 : 10, timeout: auto ? 30_000 : 10 * 60_000 })
  }
  $('subscribe').addEventListener('submit', (e) => {
    e.preventDefault()
    const form = new FormData(e.target as HTMLFormElement)
    const commands = String(form.get('commands')).split(',').map((c) => c.trim()).filter((c) => c !== '')
    if (commands.length > 0) void subscribe(commands, form.get('auto') != null)
  })
  const params = new URLSearchParams(location.search)
  const wanted = params.get('subscribe')
  if (wanted != null) await subscribe(wanted.split(','), params.get('answer') === 'auto')
}

main().catch((err: Error) => {
  setState('error')
  $('state').title = err.message
  console.error(err)
})
