/**
 * The arguments of `p2pmq acl allow <peer>` that grant something, quoted for a POSIX shell: the
 * lines the CLI and the page tell a refused peer to ask its operator for. Command and group names
 * may hold quotes, `$(…)`, `;` and the like, and may start with `-`: pasted, the line must give
 * p2pmq exactly that name, run nothing else, and not have it read as a flag.
 */
import type { Grant } from './broker/api.js'

/** `s` quoted for a POSIX shell when it needs it. */
export function shellQuote (s: string): string {
  return /^[\w.@%+=:,/-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`
}

/** `produce 'orders.*'`, `consume 'orders.#' -group=billing` or `admin read`; a name starting with `-` comes last, after `--`. */
export function grantArgs (grant: Grant): string {
  if ('admin' in grant) return `admin ${grant.admin}`
  const [right, pattern] = 'produce' in grant ? ['produce', grant.produce] : ['consume', grant.consume]
  const group = 'consume' in grant && grant.group != null ? ` -group=${shellQuote(grant.group)}` : ''
  return pattern.startsWith('-') ? `${right}${group} -- ${shellQuote(pattern)}` : `${right} ${shellQuote(pattern)}${group}`
}
