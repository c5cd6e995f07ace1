/** Protocol ids, defaults and limits, in one place (js-libp2p's constants.ts pattern). */

export const PROTOCOL_PREFIX = '/p2pmq'
export const PROTOCOL_VERSION = '1.0.0'
/** The stream a producer opens to publish and receive confirms and answers. */
export const PRODUCER_PROTOCOL = `${PROTOCOL_PREFIX}/producer/${PROTOCOL_VERSION}`
/** The stream a consumer opens to subscribe, receive deliveries and settle them. */
export const CONSUMER_PROTOCOL = `${PROTOCOL_PREFIX}/consumer/${PROTOCOL_VERSION}`
/** The stream an admin client (`p2pmq messages`, `p2pmq stats`) opens for requests. */
export const ADMIN_PROTOCOL = `${PROTOCOL_PREFIX}/admin/${PROTOCOL_VERSION}`

/** The command a message names when the producer names none. */
export const DEFAULT_COMMAND = 'default'
/** The group a subscription joins when it names none. */
export const DEFAULT_GROUP = 'default'

/** Largest payload a broker accepts, in bytes (configurable per broker). */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024
/** The largest `maxPayload` the broker command takes: larger payloads make no sense for a queue, each message is held whole in memory on its way. */
export const MAX_PAYLOAD_LIMIT = 64 * 1024 * 1024
/** Room for a frame's fields besides its payload (ids, command, headers). */
export const FRAME_OVERHEAD_LIMIT = 64 * 1024
/** Unacknowledged deliveries a subscription accepts at once. */
export const DEFAULT_PREFETCH = 1000
/**
 * Unconfirmed (publish) or unanswered (send) messages a producer keeps out at once. Measured on
 * loopback: 2,000 keeps a broker busy; larger windows only make each message live longer in the
 * producer (more garbage-collection work) without more throughput.
 */
export const DEFAULT_PRODUCER_WINDOW = 2_000
/** How long a consumer may hold a delivery before the broker gives it to another. */
export const DEFAULT_VISIBILITY_TIMEOUT = 30_000
/** How long `send` waits for an answer. */
export const DEFAULT_SEND_TIMEOUT = 30_000
/** Deliveries of one message before it is given up as failed. */
export const DEFAULT_MAX_ATTEMPTS = 10
/** How long an answer waits for its disconnected producer to come back. */
export const DEFAULT_ANSWER_RETENTION = 5 * 60_000
/** Answers kept for one disconnected producer at most. */
export const DEFAULT_MAX_KEPT_ANSWERS = 100_000
/** How long a disconnected producer session's last seq is remembered, to drop its resends. */
export const DEFAULT_DEDUP_WINDOW = 5 * 60_000
/**
 * Ready messages in a queue that has consumers at which the broker holds its producers' confirms
 * (publisher flow control), until the queue is back to half of it.
 */
export const DEFAULT_HIGH_WATER = 5_000
/**
 * ms a congested queue's consumers may complete nothing before the queue stops holding confirms
 * (it is stalled: a stuck consumer must not stall every producer; its backlog pages to disk).
 */
export const DEFAULT_STALL_TIMEOUT = 2_000
/** Backoff before a nacked message's next attempt: 100 ms, doubling, at most 30 s. */
export const DEFAULT_RETRY_DELAY = 100
export const DEFAULT_RETRY_FACTOR = 2
export const DEFAULT_RETRY_MAX_DELAY = 30_000
/** A failed message is republished to `<command><suffix>`, its dead-letter queue. */
export const DEFAULT_DEAD_LETTER_SUFFIX = '.dlq'
/** How long the record of a completed message is kept, to be listed (`p2pmq messages`). */
export const DEFAULT_COMPLETED_RETENTION = 10 * 60_000
/** With a store: ready messages a queue keeps in memory; the rest are read back a page at a time. */
export const DEFAULT_PAGE_SIZE = 5_000
/** With a store: payload bytes a page holds at most (a queue's ready messages, or the delayed ones in memory). */
export const DEFAULT_PAGE_BYTES = 8 * 1024 * 1024
/** Messages a broker with a store holds (mostly on disk) before it refuses publishes. */
export const DEFAULT_MAX_STORED_MESSAGES = 100_000_000
/** Messages a broker without a store holds in memory before it refuses publishes. */
export const DEFAULT_MAX_MESSAGES = 2_000_000

/**
 * Connections one peer may hold to a broker at once. A client process needs one, but the CLI's
 * commands share the user's identity: a user's consumers, producers and admin commands on one host
 * are one peer. What a peer's connections can hold is bounded per peer anyway (subscriptions,
 * prefetch, watches), so this bounds only the connections' own cost.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 64
/** Subscriptions one peer may hold on a broker at once, across its consumer streams. */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER = 1_024
/** Sum of the prefetch of one peer's subscriptions: the deliveries it may hold unacknowledged at once. */
export const DEFAULT_MAX_PREFETCH_PER_PEER = 65_535
/** Standing `watch` requests one peer may hold at once, across its admin streams. */
export const DEFAULT_MAX_WATCHES_PER_PEER = 16
/**
 * Messages one peer may have in flight (publishes not yet confirmed, requests not yet answered),
 * and their payload bytes: as many as the answers kept for it. A producer keeps at most `window`
 * (2,000 by default) unconfirmed, so mostly a peer that ignores its confirms, or sends requests
 * far faster than they are answered, meets the count; the bytes slow producers of large messages.
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_PEER = 100_000
export const DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER = 64 * 1024 * 1024
/** Payload bytes of the answers kept for one producer (not connected, or not reading its stream). */
export const DEFAULT_MAX_KEPT_ANSWER_BYTES = 64 * 1024 * 1024
/** Bytes of partly received frames a broker holds at once, over all its streams. */
export const DEFAULT_MAX_PARTIAL_FRAME_BYTES = 64 * 1024 * 1024
/**
 * A broker's connection manager, against peers that open connections and never finish their
 * handshake: connections being upgraded at once (libp2p's default, 10, let ten idle sockets lock
 * every new client out), how long one may take (libp2p's 10 s: a relayed client's handshake through
 * a busy relay needs it; 5 s made such clients redial), new connections a second from one host (so
 * one host holds at most 5 x 10 s = 50 pending: locking clients out takes 6 hosts), and connections
 * in all.
 */
export const BROKER_MAX_PENDING_CONNECTIONS = 256
export const BROKER_INBOUND_UPGRADE_TIMEOUT = 10_000
export const BROKER_INBOUND_CONNECTIONS_PER_SECOND = 5
export const BROKER_MAX_CONNECTIONS = 1_024

/**
 * ms between samples of the broker's event loop delay (prom-client's `nodejs_eventloop_lag_*`).
 * Its default, 10 ms, wakes an idle broker 100 times a second: 1.2% of a core here, against 0.1% at 100 ms.
 */
export const EVENT_LOOP_MONITORING_PRECISION = 100

/** Reconnect backoff: first delay, ceiling, growth factor. */
export const RECONNECT_MIN_DELAY = 100
export const RECONNECT_MAX_DELAY = 5_000
export const RECONNECT_FACTOR = 2

/** Where identities and the broker address book live unless P2PMQ_HOME says otherwise. */
export const DEFAULT_HOME_DIRNAME = '.p2pmq'

/** Largest producer window. */
export const MAX_PRODUCER_WINDOW = 65_536

/**
 * Names: a command, a pattern or a group name is at most 255 bytes of UTF-8 (AMQP's limit for
 * routing keys and queue names), with no control characters. Names are stored, listed every
 * second in the stats and copied into every queue's records, so they must stay short.
 */
export const MAX_NAME_BYTES = 255
/** Patterns one subscription may name. */
export const MAX_PATTERNS_PER_SUBSCRIPTION = 64
/** Subscriptions one consumer stream may hold at once. */
export const MAX_SUBSCRIPTIONS_PER_STREAM = 256
/** Distinct patterns a group may have bound (bindings are stored and outlive subscriptions). */
export const MAX_BINDINGS_PER_GROUP = 1_024
/** Groups a broker holds before it refuses a subscription to a new one (configurable per broker). */
export const DEFAULT_MAX_GROUPS = 10_000
/** Largest prefetch: a larger one is taken as this (RabbitMQ's limit too). */
export const MAX_PREFETCH = 65_535
/** ms between sweeps of idle queues: one that holds nothing and did nothing between two sweeps is removed. */
export const DEFAULT_QUEUE_SWEEP_INTERVAL = 30_000

/** The DHT of p2pmq's relays and peers: its own protocol id, never the public IPFS DHT. */
export const DHT_PROTOCOL = `${PROTOCOL_PREFIX}/kad/1.0.0`
/**
 * Where `p2pmq relay` listens unless -listen says otherwise (libp2p's usual port, on every
 * interface: a relay is for other hosts): TCP for Node peers, WebRTC Direct on the same port
 * number over UDP for browsers (no TLS certificate needed, so a page served over https can dial it).
 */
export const DEFAULT_RELAY_LISTEN = '/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/webrtc-direct'
/** Brokers (and other peers) one relay holds reservations for (libp2p's default, 15, is for a node that relays on the side). */
export const DEFAULT_RELAY_MAX_RESERVATIONS = 1_024
/**
 * A relay's connections at most, per reservation slot: a broker's connection plus its clients'
 * (libp2p's default, 300, would prune brokers' connections long before the slots are full).
 */
export const RELAY_CONNECTIONS_PER_RESERVATION = 2
/** A relay's connections at most whatever its slots (libp2p's default). */
export const RELAY_MIN_MAX_CONNECTIONS = 300
/**
 * A relay's bounds against a hostile peer (it serves anyone who dials it): streams one connection
 * may have open at once (a broker or client needs a handful: a reservation, a relayed connection per
 * broker it reaches, the DHT, identify, ping; yamux resets the rest), the receive window one stream
 * may grow to (what the relay buffers for it), and how long a new stream may take to name its
 * protocol (multistream-select answers every proposal, so a stream that keeps proposing costs CPU
 * until then).
 */
export const RELAY_MAX_INBOUND_STREAMS = 64
export const RELAY_MAX_STREAM_WINDOW = 1024 * 1024
export const RELAY_PROTOCOL_NEGOTIATION_TIMEOUT = 2_000
/** A lost relay reservation is made again after this wait, doubling up to the ceiling while the relay stays away. */
export const RELAY_RETRY_MIN_DELAY = 500
export const RELAY_RETRY_MAX_DELAY = 10_000
/** ms a client gives one address of a broker before trying the next (libp2p's default, 6 s, makes an unreachable LAN address cost 6 s). */
export const CLIENT_ADDRESS_DIAL_TIMEOUT = 3_000
/** ms a relayed peer gives a direct WebRTC connection to come up (ICE through two NATs took ~0.1 s; a NAT that cannot be punched fails it at libp2p's 6 s anyway). */
export const DIRECT_UPGRADE_TIMEOUT = 10_000

/** The farthest an admin `messages` request may page: each skipped message is still read (those paged out, from disk, whole). */
export const MAX_MESSAGES_OFFSET = 10_000
