/**
 * What a long-running command (`broker`) reports as it runs, after the lines it starts with: one
 * line per event, `<ISO time> <LEVEL> <text>`, INFO on stdout, WARN and ERROR on stderr. (libp2p's
 * and p2pmq's debug output is separate: the DEBUG variable, in the README's `p2pmq broker` paragraph.)
 */

export type LogLevel = 'INFO' | 'WARN' | 'ERROR'

/** `text` as a log line at `level`, stamped now. */
export function logLine (level: LogLevel, text: string, now = new Date()): string {
  return `${now.toISOString()} ${level} ${text}`
}

export const log = {
  info: (text: string): void => { console.log(logLine('INFO', text)) },
  warn: (text: string): void => { console.error(logLine('WARN', text)) },
  error: (text: string): void => { console.error(logLine('ERROR', text)) }
}
