/**
 * Where a command's flags come from besides its command line, each a layer for `parseFlags`: a
 * config file (`-config=<file>`, JSON with the flags' names as keys) and environment variables
 * (`<prefix><NAME>`, e.g. P2PMQ_BROKER_MAX_PAYLOAD). The command line wins over the environment,
 * which wins over the file. Anything wrong in either is a UsageError naming the variable, or the
 * file and the key, before anything starts.
 */
import { jsonObject, NotSmallFileError, readSmallFile } from '../src/small-file.js'
import { UsageError, type FlagLayer, type FlagSpec, type FlagSpecs } from './flags.js'

/** A config file is a few dozen lines; a larger one is not one (and is not read into memory). */
const MAX_CONFIG_BYTES = 64 * 1024

/** The environment variable of flag `name`: its own (`env`), else `<prefix>` and its name in capitals, `-` as `_`. */
export function envName (prefix: string, name: string, spec: FlagSpec): string {
  return spec.env ?? `${prefix}${name.toUpperCase().replaceAll('-', '_')}`
}

/** The flags set in the environment (an empty variable is unset). */
export function envLayer (prefix: string, specs: FlagSpecs, env: NodeJS.ProcessEnv = process.env): FlagLayer {
  const values: Record<string, string> = {}
  const names = new Map<string, string>()
  for (const [name, spec] of Object.entries(specs)) {
    const variable = envName(prefix, name, spec)
    names.set(name, variable)
    const value = env[variable]
    if (value != null && value !== '') values[name] = value
  }
  return { values, origin: (name) => names.get(name) ?? name }
}

/**
 * The flags a config file sets: a JSON object whose keys are flag names (`"max-payload": 1048576`),
 * a number for a number, true or false for a switch, a string for the rest (a list flag also
 * takes an array of strings). `config` itself is not a key: a file names no other file.
 */
export function configFileLayer (path: string, specs: FlagSpecs): FlagLayer {
  const fail = (why: string): never => { throw new UsageError(`${path}: ${why}`) }
  let text: string
  try {
    text = readSmallFile(path, MAX_CONFIG_BYTES).bytes.toString('utf8')
  } catch (err: any) {
    if (err instanceof NotSmallFileError) return fail(err.reason)
    return fail(err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err.code as string | undefined) ?? (err as Error).message})`)
  }
  const json = jsonObject(text, '{ "max-payload": 1048576, "memory": true } (the keys are the flags\' names)', fail)
  const values: Record<string, string> = {}
  for (const [key, value] of Object.entries(json)) {
    const spec = key === 'config' ? undefined : specs[key]
    if (spec == null) return fail(`unknown key ${JSON.stringify(key)}: the keys are the flags' names, without the dash`)
    const raw = flagText(spec, value)
    if (raw == null) return fail(`"${key}" must be ${spec.type === 'number' ? 'a number' : spec.type === 'boolean' ? 'true or false' : spec.list === true ? 'a string or a list of strings' : 'a string'}, not ${JSON.stringify(value)}`)
    values[key] = raw
  }
  return { values, origin: (name) => `${path}: "${name}"` }
}

/** A JSON value as the text its flag takes, or undefined when it is of the wrong type. */
function flagText (spec: FlagSpec, value: unknown): string | undefined {
  if (spec.type === 'number') return typeof value === 'number' ? String(value) : undefined
  if (spec.type === 'boolean') return typeof value === 'boolean' ? String(value) : undefined
  if (typeof value === 'string') return value
  if (spec.list === true && Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(',')
  return undefined
}
