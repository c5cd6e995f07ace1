/**
 * Real NATs for network tests: Linux network namespaces joined by veth pairs, built with `ip` and
 * `iptables` (root only; `netnsUnavailable()` says why not elsewhere).
 *
 * A public segment (a bridge in its own namespace) with a few hosts on it, and private LANs, each
 * behind its own NAT namespace doing iptables MASQUERADE. Every veth is created inside the
 * namespaces, never in the host's; no namespace has a default route out of the public segment, so
 * nothing can reach the host's interfaces and no packet goes to an address that is not in the
 * test's own namespaces. Namespace names are global per host: each network has a prefix of its
 * own (pid and random), and a new network first removes those left by runs that died.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const exec = promisify(execFile)

/** Every namespace a harness makes is named `p2pmq-net-<pid>-<random>-<name>`. */
const PREFIX_PATTERN = /^p2pmq-net-(\d+)-[0-9a-f]+-/
/** The public segment (TEST-NET-2: documentation, never routed anywhere). */
const PUBLIC_NET = '198.51.100'
/** LAN k is `10.201.<k+1>.0/24`, its NAT at `.1`. */
const LAN_NET = '10.201'
/** How long an `ip`/`iptables` command may take. */
const COMMAND_TIMEOUT_MS = 10_000
/** How long a process killed at teardown may take to be gone. */
const EXIT_TIMEOUT_MS = 5_000

export interface NetworkOptions {
  /**
   * Hosts on the public segment, each a namespace at `198.51.100.10`, `.11`, …
   * @default ['relay', 'stun', 'peer']
   */
  publicHosts?: string[]
  /**
   * Private LANs by name, each with its hosts (`10.201.<k>.10`, `.11`, …) behind its own NAT
   * (public address `198.51.100.2`, `.3`, …). Host names are unique across the network.
   * @default { a: ['a1'], b: ['b1'] }
   */
  lans?: Record<string, string[]>
  /**
   * MASQUERADE with `--random-fully`: every flow gets a random public port, so the port a peer
   * learns from STUN is not the one its next flow uses, and hole punching must fail. `true` for
   * every NAT, or the names of the LANs whose NAT does it.
   * @default false
   */
  randomFully?: boolean | string[]
  /**
   * Each NAT drops what comes in on its public side unasked (conntrack NEW), as a home router does.
   * WebRTC hole punching needs it: without it, a punch packet that reaches a NAT before its own
   * host's first packet out is delivered to the NAT itself and leaves a conntrack entry, and
   * MASQUERADE then moves the host's flow to another port (the port its peer was told is dead):
   * measured, the upgrade then never happened. Off, a TCP connect to a NAT's public address is
   * refused rather than left unanswered.
   * @default false
   */
  dropUnsolicited?: boolean
}

/** A machine in the network: a namespace with one interface, `eth0`, at `ip`. */
export interface Host {
  name: string
  ns: string
  ip: string
}

/** A LAN's router: a namespace with `wan` on the public segment and the bridge `lan`. */
export interface Nat {
  lan: string
  ns: string
  /** Its address on the public segment: what every flow from its LAN appears to come from. */
  publicIp: string
  /** Its address in the LAN (the LAN hosts' default route). */
  lanIp: string
  /** The LAN's range, e.g. `10.201.1.0/24`. */
  subnet: string
  /** Whether it MASQUERADEs with `--random-fully`. */
  randomFully: boolean
}

export interface Network {
  /** The prefix of every namespace of this network. */
  prefix: string
  hosts: Record<string, Host>
  nats: Record<string, Nat>
  /** The namespace of the public segment's bridge. */
  switchNs: string
  /** Every namespace of this network. */
  namespaces: string[]
  /** How long building it took, in ms. */
  setupMs: number
  /**
   * Spawns `cmd args` inside `host`'s namespace (`ip netns exec`), in its own process group; it is
   * killed (the whole group) at teardown. The child's `pid` is the command's own (ip execs it).
   */
  run: (host: Host | string, cmd: string, args?: string[], options?: SpawnOptions) => ChildProcess
  /** Kills every process it ran and removes every namespace (and so every veth and rule). */
  teardown: () => Promise<void>
}

/** Why network namespaces cannot be built here, or undefined when they can. */
export function netnsUnavailable (): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'building network namespaces needs root'
  for (const [cmd, args] of [['ip', ['netns', 'list']], ['iptables', ['--version']]] as const) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS })
    } catch {
      return `\`${cmd}\` is missing or fails (.ci/run installs ${cmd === 'ip' ? 'iproute2' : 'iptables'})`
    }
  }
  return undefined
}

/** Namespaces on this host whose name starts with `prefix`. */
export function namespacesWithPrefix (prefix: string): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS })
  return out.split('\n').map((line) => line.split(' ')[0]).filter((name) => name !== '' && name.startsWith(prefix))
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Kills every process still inside `ns` and removes it; synchronous, so it also runs on exit. */
function removeNamespaceSync (ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS })
    for (const pid of pids.split('\n').filter((p) => p !== '')) {
      try { process.kill(Number(pid), 'SIGKILL') } catch {}
    }
  } catch {}
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS }) } catch {}
}

/** Removes the namespaces (and their processes) of harness runs whose process is gone. */
export function sweepStaleNamespaces (): string[] {
  const stale = namespacesWithPrefix('p2pmq-net-').filter((ns) => {
    const pid = Number(PREFIX_PATTERN.exec(ns)?.[1])
    return Number.isInteger(pid) && pid > 0 && !isAlive(pid)
  })
  for (const ns of stale) removeNamespaceSync(ns)
  return stale
}

async function ip (args: string[], input?: string): Promise<void> {
  if (input == null) {
    await exec('ip', args, { timeout: COMMAND_TIMEOUT_MS })
    return
  }
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', args, { timeout: COMMAND_TIMEOUT_MS }, (err) => { err == null ? resolve() : reject(err) })
    child.stdin?.end(input)
  })
}

/** Runs `ip` commands (one per line, without `ip`) inside `ns` in one process. */
async function ipBatch (ns: string, lines: string[]): Promise<void> {
  await ip(['-n', ns, '-batch', '-'], lines.join('\n') + '\n')
}

async function inNs (ns: string, cmd: string, args: string[], input?: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: COMMAND_TIMEOUT_MS }, (err, _out, stderr) => {
      err == null ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} in ${ns}: ${stderr.trim() !== '' ? stderr.trim() : err.message}`))
    })
    if (input != null) child.stdin?.end(input)
  })
}

/** No IPv6 (not even link-local) and no forwarding unless asked: only the addresses given here exist. */
function sysctls (forward: boolean): string[] {
  return ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', `net.ipv4.ip_forward=${forward ? 1 : 0}`]
}

/** The NAT's rules: MASQUERADE out of `wan`; from `wan` into the LAN only replies. */
function natRules (randomFully: boolean, dropUnsolicited: boolean): string {
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
    `-A POSTROUTING -o wan -j MASQUERADE${randomFully ? ' --random-fully' : ''}`,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
    ...(dropUnsolicited ? ['-A INPUT -i wan -m conntrack --ctstate NEW -j DROP'] : []),
    '-A FORWARD -i lan -o wan -j ACCEPT',
    '-A FORWARD -i lan -o lan -j ACCEPT',
    '-A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    'COMMIT',
    ''
  ].join('\n')
}

/** Refuses to build where the host itself uses our ranges: its packets could then leave the test's namespaces. */
function checkRangesFree (): void {
  const out = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS })
  for (const prefix of [`${PUBLIC_NET}.`, `${LAN_NET}.`]) {
    if (out.includes(` ${prefix}`)) throw new Error(`The host already has an address in ${prefix}*; the NAT harness needs that range for itself`)
  }
}

const NAME = /^[a-z][a-z0-9]{0,11}$/

/** Builds the network; call `teardown()` after (it also runs when the process exits). */
export async function createNetwork (options: NetworkOptions = {}): Promise<Network> {
  const publicHosts = options.publicHosts ?? ['relay', 'stun', 'peer']
  const lans = options.lans ?? { a: ['a1'], b: ['b1'] }
  const lanNames = Object.keys(lans)
  const allNames = [...publicHosts, ...Object.values(lans).flat(), ...lanNames.map((l) => `nat${l}`), 'switch']
  for (const name of [...allNames, ...lanNames]) {
    if (!NAME.test(name)) throw new Error(`Network name ${JSON.stringify(name)}: lower-case letters and digits, at most 12, starting with a letter`)
  }
  if (new Set(allNames).size !== allNames.length) throw new Error(`Network names must be unique: ${allNames.join(', ')}`)
  const randomFully = options.randomFully ?? false
  for (const lan of Array.isArray(randomFully) ? randomFully : []) {
    if (!lanNames.includes(lan)) throw new Error(`randomFully names ${JSON.stringify(lan)}, which is not a LAN (${lanNames.join(', ')})`)
  }
  if (publicHosts.length > 100 || lanNames.length > 8 || Object.values(lans).some((h) => h.length > 100)) throw new Error('Too many hosts or LANs')
  checkRangesFree()
  sweepStaleNamespaces()

  const started = performance.now()
  const prefix = `p2pmq-net-${process.pid}-${randomBytes(3).toString('hex')}`
  const nsOf = (name: string): string => `${prefix}-${name}`
  const switchNs = nsOf('switch')
  const hosts: Record<string, Host> = {}
  const nats: Record<string, Nat> = {}
  publicHosts.forEach((name, i) => { hosts[name] = { name, ns: nsOf(name), ip: `${PUBLIC_NET}.${10 + i}` } })
  lanNames.forEach((lan, k) => {
    const net = `${LAN_NET}.${k + 1}`
    nats[lan] = {
      lan,
      ns: nsOf(`nat${lan}`),
      publicIp: `${PUBLIC_NET}.${2 + k}`,
      lanIp: `${net}.1`,
      subnet: `${net}.0/24`,
      randomFully: Array.isArray(randomFully) ? randomFully.includes(lan) : randomFully
    }
    lans[lan].forEach((name, i) => { hosts[name] = { name, ns: nsOf(name), ip: `${net}.${10 + i}` } })
  })
  const namespaces = [switchNs, ...Object.values(nats).map((n) => n.ns), ...Object.values(hosts).map((h) => h.ns)]
  const children = new Set<ChildProcess>()

  let tornDown = false
  const teardownSync = (): void => {
    if (tornDown) return
    tornDown = true
    for (const child of children) {
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
    }
    for (const ns of namespaces) removeNamespaceSync(ns)
  }
  // Also when the test run ends early: on exit, and on SIGINT/SIGTERM (then die of it as before).
  const onSignal = (signal: NodeJS.Signals): void => {
    teardownSync()
    removeHooks()
    process.kill(process.pid, signal)
  }
  const removeHooks = (): void => {
    process.off('exit', teardownSync)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  process.on('exit', teardownSync)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const teardown = async (): Promise<void> => {
    if (tornDown) return
    const exits = [...children].filter((c) => c.exitCode == null && c.signalCode == null)
      .map(async (c) => { await new Promise((resolve) => { c.once('exit', resolve) }) })
    for (const child of children) {
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
    }
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, EXIT_TIMEOUT_MS))])
    teardownSync()
    removeHooks()
  }

  try {
    await Promise.all(namespaces.map(async (ns) => { await ip(['netns', 'add', ns]) }))
    await Promise.all(namespaces.map(async (ns) => { await inNs(ns, 'sysctl', sysctls(Object.values(nats).some((n) => n.ns === ns))) }))

    // Switch ports p0, p1, …: the NATs' wan first, then the public hosts' eth0.
    const switchLines = ['link set lo up', 'link add br0 type bridge', 'link set br0 up']
    let port = 0
    const veths: string[][] = []
    for (const nat of Object.values(nats)) veths.push(['link', 'add', 'name', `p${port++}`, 'netns', switchNs, 'type', 'veth', 'peer', 'name', 'wan', 'netns', nat.ns])
    for (const name of publicHosts) veths.push(['link', 'add', 'name', `p${port++}`, 'netns', switchNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hosts[name].ns])
    for (const lan of lanNames) {
      lans[lan].forEach((name, i) => veths.push(['link', 'add', 'name', `p${i}`, 'netns', nats[lan].ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hosts[name].ns]))
    }
    await Promise.all(veths.map(async (args) => { await ip(args) }))
    for (let p = 0; p < port; p++) switchLines.push(`link set p${p} master br0`, `link set p${p} up`)

    const hostLines = (host: Host, gateway?: string): string[] => [
      'link set lo up', `addr add ${host.ip}/24 dev eth0`, 'link set eth0 up',
      ...(gateway != null ? [`route add default via ${gateway}`] : [])
    ]
    await Promise.all([
      ipBatch(switchNs, switchLines),
      ...publicHosts.map(async (name) => { await ipBatch(hosts[name].ns, hostLines(hosts[name])) }),
      ...lanNames.map(async (lan) => {
        const nat = nats[lan]
        await ipBatch(nat.ns, [
          'link set lo up', `addr add ${nat.publicIp}/24 dev wan`, 'link set wan up',
          'link add lan type bridge', `addr add ${nat.lanIp}/24 dev lan`, 'link set lan up',
          ...lans[lan].flatMap((_, i) => [`link set p${i} master lan`, `link set p${i} up`])
        ])
        await inNs(nat.ns, 'iptables-restore', [], natRules(nat.randomFully, options.dropUnsolicited ?? false))
        await Promise.all(lans[lan].map(async (name) => { await ipBatch(hosts[name].ns, hostLines(hosts[name], nat.lanIp)) }))
      })
    ])
  } catch (err) {
    teardownSync()
    removeHooks()
    throw err
  }

  const run = (host: Host | string, cmd: string, args: string[] = [], spawnOptions: SpawnOptions = {}): ChildProcess => {
    const ns = typeof host === 'string' ? host : host.ns
    if (tornDown) throw new Error('The network is torn down')
    if (!namespaces.includes(ns)) throw new Error(`${ns} is not a namespace of this network`)
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { ...spawnOptions, detached: true })
    children.add(child)
    return child
  }

  return { prefix, hosts, nats, switchNs, namespaces, setupMs: performance.now() - started, run, teardown }
}

/** What a TCP connection attempt from a namespace gave: `connected` with the peer's view of us, or the error code. */
export type TcpResult = { connected: true, seenAs: string } | { connected: false, code: string }

/**
 * A TCP server in `host` on `ip:port` that writes each client's address (as it sees it) and
 * closes; resolves once it listens. Killed at teardown (or with `kill()`).
 */
export async function listenTcp (net: Network, host: Host, port: number, ip = host.ip): Promise<ChildProcess> {
  const script = `require('net').createServer((s) => s.end(s.remoteAddress)).listen(${port}, ${JSON.stringify(ip)}, () => console.log('listening'))`
  const child = net.run(host, process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`TCP server in ${host.name} did not listen within 5 s`)) }, 5_000)
    child.stdout?.once('data', () => { clearTimeout(timer); resolve() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`TCP server in ${host.name} exited (${code})`)) })
  })
  return child
}

/** Connects from `host` to `ip:port`, giving up after `timeoutMs` (code `ETIMEDOUT`). */
export async function connectTcp (net: Network, host: Host, ip: string, port: number, timeoutMs = 1_000): Promise<TcpResult> {
  const script = `const s = require('net').connect(${port}, ${JSON.stringify(ip)}); let got = '';
s.setTimeout(${timeoutMs}, () => { console.log(JSON.stringify({ connected: false, code: 'ETIMEDOUT' })); process.exit(0) });
s.on('data', (d) => { got += d }); s.on('end', () => { console.log(JSON.stringify({ connected: true, seenAs: got })); process.exit(0) });
s.on('error', (e) => { console.log(JSON.stringify({ connected: false, code: e.code })); process.exit(0) })`
  const child = net.run(host, process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }, timeoutMs + 5_000)
    child.once('exit', () => { clearTimeout(timer); resolve() })
  })
  try {
    return JSON.parse(out) as TcpResult
  } catch {
    return { connected: false, code: `no result (${out.trim() !== '' ? out.trim() : 'no output'})` }
  }
}

/** A STUN server run by `startStun`. */
export interface StunServer {
  ip: string
  port: number
  process: ChildProcess
}

/**
 * Starts a STUN server (coturn's `turnserver --stun-only`, a Debian package) in `host` on
 * `host.ip:port` (UDP and TCP), with its pid file and database in `dir`; resolves once it answers
 * a binding request. Killed at teardown.
 */
export async function startStun (net: Network, host: Host, dir: string, port = 3478): Promise<StunServer> {
  const child = net.run(host, 'turnserver', [
    '-c', '/dev/null', '--stun-only', `--listening-ip=${host.ip}`, `--listening-port=${port}`,
    '--no-tls', '--no-dtls', '--no-cli', '--no-software-attribute', '--log-file=stdout', '--simple-log',
    `--pidfile=${dir}/turnserver.pid`, `--userdb=${dir}/turndb`
  ], { stdio: 'ignore' })
  const end = Date.now() + 10_000
  for (;;) {
    const [answer] = await stunBinding(net, host, [{ ip: host.ip, port }], 300)
    if (answer != null) return { ip: host.ip, port, process: child }
    if (child.exitCode != null || child.signalCode != null) throw new Error(`turnserver in ${host.name} exited (${child.exitCode ?? child.signalCode})`)
    if (Date.now() > end) throw new Error(`turnserver in ${host.name} did not answer within 10 s`)
  }
}

/** Where a STUN server saw a binding request come from. */
export interface MappedAddress { ip: string, port: number }

/**
 * Sends STUN binding requests (RFC 8489) from `host`, all from one UDP socket, to each server in
 * turn; gives each server's XOR-MAPPED-ADDRESS, or undefined where none answered within
 * `timeoutMs`. One socket, so the mapped ports show whether the NAT maps per destination.
 */
export async function stunBinding (net: Network, host: Host, servers: Array<{ ip: string, port: number }>, timeoutMs = 2_000): Promise<Array<MappedAddress | undefined>> {
  // A binding request is 20 bytes: type 0x0001, length 0, the magic cookie, a transaction id.
  const script = `const dgram = require('dgram'); const crypto = require('crypto');
const servers = ${JSON.stringify(servers)}; const results = []; const s = dgram.createSocket('udp4');
const ask = (i) => {
  if (i === servers.length) { console.log(JSON.stringify(results)); s.close(); return }
  const req = Buffer.alloc(20); req.writeUInt16BE(1, 0); req.writeUInt32BE(0x2112a442, 4); crypto.randomFillSync(req, 8, 12);
  const send = () => s.send(req, servers[i].port, servers[i].ip);
  const resend = setInterval(send, 100);
  const give = (r) => { clearInterval(resend); clearTimeout(timer); s.removeListener('message', onMessage); results.push(r); ask(i + 1) };
  const timer = setTimeout(() => give(null), ${timeoutMs});
  const onMessage = (m) => {
    if (m.length < 20 || m.readUInt16BE(0) !== 0x0101 || !m.subarray(8, 20).equals(req.subarray(8, 20))) return;
    for (let at = 20; at + 4 <= m.length;) {
      const type = m.readUInt16BE(at); const len = m.readUInt16BE(at + 2);
      if (type === 0x0020 && m[at + 5] === 1) {
        const port = m.readUInt16BE(at + 6) ^ 0x2112; const a = m.readUInt32BE(at + 8) ^ 0x2112a442;
        return give({ ip: [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.'), port });
      }
      at += 4 + Math.ceil(len / 4) * 4;
    }
  };
  s.on('message', onMessage); send();
};
s.bind(0, () => ask(0));`
  const child = net.run(host, process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }, servers.length * timeoutMs + 5_000)
    child.once('exit', () => { clearTimeout(timer); resolve() })
  })
  const results = JSON.parse(out.trim() !== '' ? out : '[]') as Array<MappedAddress | null>
  return servers.map((_, i) => results[i] ?? undefined)
}

/** Why coturn's `turnserver` (the STUN server of `startStun`) cannot run here, or undefined when it can. */
export function turnserverUnavailable (): string | undefined {
  try {
    execFileSync('turnserver', ['--version'], { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS })
    return undefined
  } catch {
    return '`turnserver` is missing (coturn, a Debian package; .ci/run installs it)'
  }
}

/**
 * The UDP flows NAT `from` saw replies on to NAT `to`'s public address: holes punched between the
 * two LANs (a direct WebRTC connection), from the NAT's conntrack table.
 */
export function punchedFlows (net: Network, from = 'b', to = 'a'): string[] {
  return execFileSync('ip', ['netns', 'exec', net.nats[from].ns, 'cat', '/proc/net/nf_conntrack'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS })
    .split('\n').filter((l) => l.includes('udp') && l.includes(`dst=${net.nats[to].publicIp}`) && !l.includes('UNREPLIED'))
}
