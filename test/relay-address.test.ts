/** Relay addresses as the CLI, the API and the page check them, and how a connection's address says it is routed. */
import { describe, expect, it } from 'vitest'
import { connectionVia, isBrowserDialable } from '../src/relay-address.js'

const RELAY = '12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz'
const BROKER = '12D3KooWFpXH3E49WgbyscAzLs41Y6WK3EKFnvHSSuUXzENFQRpZ'
const CERTHASH = 'uEiAQl5H1Lwx4KwIcXCZopWtLjk427Djmjn3oCWz_-CseFg'
const relayTcp = `/ip4/198.51.100.10/tcp/4001/p2p/${RELAY}`
const relayWebRTC = `/ip4/198.51.100.10/udp/4001/webrtc-direct/certhash/${CERTHASH}/p2p/${RELAY}`

describe('connectionVia', () => {
  it('says relay for a circuit, however the relay itself is reached', () => {
    expect(connectionVia(`${relayTcp}/p2p-circuit/p2p/${BROKER}`)).toBe('relay')
    expect(connectionVia(`${relayWebRTC}/p2p-circuit/p2p/${BROKER}`)).toBe('relay')
  })

  it('says webrtc for WebRTC signalled through a relay and for WebRTC Direct, tcp otherwise', () => {
    expect(connectionVia(`${relayTcp}/p2p-circuit/webrtc/p2p/${BROKER}`)).toBe('webrtc')
    expect(connectionVia(`${relayWebRTC}/p2p-circuit/webrtc/p2p/${BROKER}`)).toBe('webrtc')
    expect(connectionVia(`/ip4/127.0.0.1/udp/4001/webrtc-direct/certhash/${CERTHASH}/p2p/${BROKER}`)).toBe('webrtc')
    expect(connectionVia(`/ip4/127.0.0.1/tcp/4002/p2p/${BROKER}`)).toBe('tcp')
  })
})

describe('isBrowserDialable', () => {
  it('is a WebRTC Direct address with its certhash, not TCP, not through a relay', () => {
    expect(isBrowserDialable(relayWebRTC)).toBe(true)
    expect(isBrowserDialable(relayTcp)).toBe(false)
    expect(isBrowserDialable('/ip4/198.51.100.10/udp/4001/webrtc-direct')).toBe(false)
    expect(isBrowserDialable(`${relayWebRTC}/p2p-circuit/p2p/${BROKER}`)).toBe(false)
  })
})
