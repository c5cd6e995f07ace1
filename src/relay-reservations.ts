/**
 * Keeps a node listening through each of its relays (`<relay>/p2p-circuit`): reserves a slot on
 * every relay, and when a reservation is lost (the relay restarted, the connection dropped) or
 * could not be made, reserves again after a wait that doubles up to RELAY_RETRY_MAX_DELAY.
 * libp2p alone never reserves again on a named relay, and its relay discovery redials a relay
 * that refuses connections in a tight loop (LIBP2P-NOTES: ~4,000 dials in 20 s).
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RELAY_RETRY_MAX_DELAY, RELAY_RETRY_MIN_DELAY } from './constants.js'
import type { ComponentLogger, Listener, Logger, PeerId, Startable } from '@libp2p/interface'
import type { TransportManager } from '@libp2p/interface-internal'

export interface RelayReservationsInit {
  /** The relays, each a multiaddr ending in /p2p/<relay peer ID>. */
  relays: string[]
  /**
   * First wait before reserving again, in ms; it doubles while the relay stays away.
   * @default 500
   */
  retryMinDelay?: number
  /**
   * Longest wait between two attempts, in ms: a relay that comes back is used again within it.
   * @default 10000
   */
  retryMaxDelay?: number
}

export interface RelayReservationsComponents {
  peerId: PeerId
  transportManager: TransportManager
  logger: ComponentLogger
}

/** A relay, the listener that holds its reservation, and its retry state. */
interface RelaySlot {
  addr: Multiaddr
  listener?: Listener
  delay: number
  timer?: ReturnType<typeof setTimeout>
  reserving: boolean
  /** Reservation attempts so far (a bounded retry shows a few, a loop thousands). */
  attempts: number
  /** Why the last attempt failed, while it is so (`reservation:failed` is sent once per run of failures). */
  failure?: ReservationFailure
}

/** `reservation:failed`: reserving on a relay failed where it had not, or never, succeeded; `retryIn` undefined: never again. */
export interface ReservationFailure {
  relay: string
  error: Error
  retryIn?: number
}

export interface RelayReservationStatus {
  relay: string
  reserved: boolean
  attempts: number
  /** Why the last attempt failed, if it did (also sent as `reservation:failed`, perhaps before anyone listened). */
  failure?: ReservationFailure
}

export class RelayReservations extends EventTarget implements Startable {
  private readonly slots: RelaySlot[]
  private readonly log: Logger
  private readonly minDelay: number
  private readonly maxDelay: number
  private running = false

  constructor (private readonly components: RelayReservationsComponents, init: RelayReservationsInit) {
    super()
    this.log = components.logger.forComponent('p2pmq:relay-reservations')
    this.minDelay = init.retryMinDelay ?? RELAY_RETRY_MIN_DELAY
    this.maxDelay = init.retryMaxDelay ?? RELAY_RETRY_MAX_DELAY
    this.slots = init.relays.map((relay) => ({ addr: multiaddr(relay).encapsulate('/p2p-circuit'), delay: this.minDelay, reserving: false, attempts: 0 }))
  }

  readonly [Symbol.toStringTag] = 'p2pmq/relay-reservations'

  start (): void {
    this.running = true
  }

  /** After start: the transports are up, so the relays can be dialed. */
  afterStart (): void {
    for (const slot of this.slots) void this.reserve(slot)
  }

  async stop (): Promise<void> {
    this.running = false
    for (const slot of this.slots) clearTimeout(slot.timer)
    // (The transport manager closes the listeners.)
  }

  /** Each relay and whether a reservation on it is held now. */
  status (): RelayReservationStatus[] {
    return this.slots.map((slot) => ({ relay: slot.addr.decapsulate('/p2p-circuit').toString(), reserved: (slot.listener?.getAddrs().length ?? 0) > 0, attempts: slot.attempts, failure: slot.failure }))
  }

  private async reserve (slot: RelaySlot): Promise<void> {
    if (!this.running || slot.reserving) return
    slot.reserving = true
    slot.attempts++
    if (slot.addr.getComponents().findLast((c) => c.name === 'p2p')?.value === this.components.peerId.toString()) {
      // A node cannot reserve on itself; trying again would not change that.
      this.failed(slot, new Error('it is this node itself (its own peer ID), not a relay'), undefined)
      return
    }
    try {
      if (slot.listener == null) await this.listen(slot)
      else await slot.listener.listen(slot.addr)
      slot.delay = this.minDelay
      slot.failure = undefined
      this.log('reserved on %a', slot.addr)
    } catch (err) {
      this.log('reserving on %a failed, again in %d ms: %s', slot.addr, slot.delay, (err as Error).message)
      this.failed(slot, err as Error, slot.delay)
      this.retry(slot)
    } finally {
      slot.reserving = false
    }
  }

  private failed (slot: RelaySlot, error: Error, retryIn: number | undefined): void {
    if (slot.failure != null || !this.running) return
    slot.failure = { relay: slot.addr.decapsulate('/p2p-circuit').toString(), error, retryIn }
    this.dispatchEvent(new CustomEvent('reservation:failed', { detail: slot.failure }))
  }

  private retry (slot: RelaySlot): void {
    if (!this.running || slot.timer != null) return
    slot.timer = setTimeout(() => {
      slot.timer = undefined
      void this.reserve(slot)
    }, slot.delay)
    slot.delay = Math.min(this.maxDelay, slot.delay * 2)
  }

  /**
   * The first attempt on a relay listens through the transport manager, so the node announces
   * the addresses its listener gets; that listener (kept by the manager even when it failed) is
   * reused for every later attempt.
   */
  private async listen (slot: RelaySlot): Promise<void> {
    const { transportManager } = this.components
    const before = new Set(transportManager.getListeners())
    const listening = transportManager.listen([slot.addr])
    // (The manager adds the listener before its first await.)
    const listener = transportManager.getListeners().find((l) => !before.has(l))
    if (listener != null) {
      slot.listener = listener
      // The listener fires `listening` with no address left when its relay's reservation is gone.
      listener.addEventListener('listening', () => {
        if (listener.getAddrs().length === 0 && !slot.reserving) {
          this.log('lost the reservation on %a', slot.addr)
          this.retry(slot)
        }
      })
    }
    await listening
  }
}

/** A libp2p service that keeps reservations on the given relays (`services: { relays: relayReservations({ relays }) }`). */
export function relayReservations (init: RelayReservationsInit): (components: RelayReservationsComponents) => RelayReservations {
  return (components) => new RelayReservations(components, init)
}
