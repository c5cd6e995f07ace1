import { readFileSync } from 'node:fs'

/**
 * The version of the installed package: its package.json is two levels above this file when built
 * (dist/src/package-version.js), one when run from the source (the tests).
 */
export function packageVersion (): string {
  for (const path of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'p2pmq' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  return 'unknown'
}
