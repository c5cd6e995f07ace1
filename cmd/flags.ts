/**
 * Flag parsing for every p2pmq command, in both styles: Go's `-broker=X` (as teomq had) and GNU's
 * `--broker X` / `--broker=X`. Each command declares its flags once; `--help` prints them.
 */

export type FlagType = 'string' | 'number' | 'boolean'

export interface FlagSpec {
  type: FlagType
  help: string
  default?: string | number | boolean
  /** Shown in help instead of the type, e.g. `<peerId|multiaddr>`. */
  value?: string
  /**
   * Numbers are whole (`1.5` and `1e3` are refused: plain decimal digits only) unless `fraction`
   * allows decimals such as `1.5`. `integer` is the default and kept for specs that say it.
   */
  integer?: boolean
  fraction?: boolean
  /** For strings: the flag may be given several times; the values are joined with ','. */
  repeatable?: boolean
  /** For strings: a comma-separated list (a config file may give it as an array). */
  list?: boolean
  /** For numbers: at least `min` (default 0) and at most `max`. */
  min?: number
  max?: number
  /** Its environment variable, where it is not the command's prefix and its name (`P2PMQ_RELAY`, shared by every command). */
  env?: string
}

/**
 * Values a command's flags take below its command line (flag-sources.ts: a config file, the
 * environment), as text the flag would take; `origin` names where one came from, for errors.
 */
export interface FlagLayer {
  values: Record<string, string>
  origin: (name: string) => string
}

/** Longest wait a Node timer takes (ms): a longer one fires at once. For flags in ms that set a timer. */
export const MAX_TIMER = 2 ** 31 - 1

export type FlagSpecs = Record<string, FlagSpec>
export type Flags<S extends FlagSpecs> = { [K in keyof S]: S[K]['type'] extends 'number' ? number : S[K]['type'] extends 'boolean' ? boolean : string } & { help: boolean }

export class UsageError extends Error {
  name = 'UsageError'
}

/**
 * Parses `args` by `specs`. A command that takes arguments beside its flags (`p2pmq acl allow
 * <peer> …`) passes `positionals`: the arguments that are no flag go there in order (everything
 * after `--` too), and flags may come anywhere among them; otherwise such an argument is an error.
 * `layers` give values over the defaults, each over the one before, and the command line over them all.
 */
export function parseFlags<S extends FlagSpecs> (args: string[], specs: S, positionals?: string[], layers: FlagLayer[] = []): Flags<S> {
  const out: Record<string, unknown> = { help: false }
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.default !== undefined) out[name] = spec.default
  }
  for (const layer of layers) {
    for (const [name, raw] of Object.entries(layer.values)) out[name] = convert(layer.origin(name), specs[name], raw)
  }
  const given = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (positionals != null && arg === '--') {
      positionals.push(...args.slice(i + 1))
      break
    }
    if (positionals != null && (!arg.startsWith('-') || arg === '-')) {
      positionals.push(arg)
      continue
    }
    if (!arg.startsWith('-') || arg === '-' || arg === '--') throw new UsageError(`Unexpected argument "${arg}"`)
    const body = arg.replace(/^--?/, '')
    const eq = body.indexOf('=')
    const name = eq < 0 ? body : body.slice(0, eq)
    if (name === 'help' || name === 'h') {
      out.help = true
      continue
    }
    const spec = specs[name]
    if (spec == null) throw new UsageError(`Unknown flag -${name}`)
    let raw: string
    if (eq >= 0) {
      raw = body.slice(eq + 1)
    } else if (spec.type === 'boolean') {
      raw = 'true'
    } else {
      if (i + 1 >= args.length) throw new UsageError(`Flag -${name} needs a value`)
      raw = args[++i]
    }
    const value = convert(`Flag -${name}`, spec, raw)
    out[name] = spec.repeatable === true && given.has(name) ? `${out[name] as string},${value as string}` : value
    given.add(name)
  }
  return out as Flags<S>
}

const WHOLE = /^[0-9]+$/
const DECIMAL = /^[0-9]+(\.[0-9]+)?$/

/** `raw` as the flag takes it; a UsageError says what is wrong with it, starting with `origin` (`Flag -x`, a variable, a file's key). */
function convert (origin: string, spec: FlagSpec, raw: string): string | number | boolean {
  const type = spec.type
  if (type === 'string') return raw
  if (type === 'boolean') {
    if (['true', '1', 'yes', ''].includes(raw)) return true
    if (['false', '0', 'no'].includes(raw)) return false
    throw new UsageError(`${origin} takes true or false, not "${raw}"`)
  }
  // Plain decimal digits only: Number() would also take hex (0x1F90), exponents (1e1) and spaces.
  const fraction = spec.fraction === true
  if (!(fraction ? DECIMAL : WHOLE).test(raw)) {
    throw new UsageError(`${origin} takes ${fraction ? 'a non-negative number' : 'a whole number'} in decimal digits, not "${raw}"`)
  }
  const n = Number(raw)
  const max = spec.max ?? Number.MAX_SAFE_INTEGER
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`${origin} must be at least ${spec.min}, not ${raw}`)
  if (n > max) throw new UsageError(`${origin} must be at most ${max}, not ${raw}`)
  return n
}

export function usage (command: string, summary: string, specs: FlagSpecs): string {
  const lines = [`Usage: p2pmq ${command} [flags]`, '', summary, '', 'Flags (-name=value or --name value):']
  for (const [name, spec] of Object.entries(specs)) {
    const value = spec.type === 'boolean' ? '' : `=${spec.value ?? `<${spec.type}>`}`
    const def = spec.default !== undefined && spec.default !== '' && spec.default !== false ? ` (default ${String(spec.default)})` : ''
    lines.push(`  -${name}${value}`.padEnd(34) + spec.help + def)
  }
  lines.push('  -help'.padEnd(34) + 'Show this help')
  return lines.join('\n')
}

/** Splits `a,b, c` into trimmed non-empty parts. */
export function list (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}
