/**
 * Has V8 optimize the message path of a producer or consumer sooner. One handling a message every
 * 10 ms ran it mostly in V8's baseline tier (perf: inline-cache stubs, no optimized code), because
 * V8 optimizes a function only after much work in it: on Node 20, 66 KB of bytecode run; on Node 22
 * and 24, 3,000 calls (30 s at that pace), and again after each deoptimization. With 4 KB and 300
 * calls, the CLI's request/answer at one every 10 ms went from p50 809-955 µs to 429-539 µs on
 * Node 20, 915-1,357 to 616-814 on Node 22, 507-562 to 430-485 on Node 24 (all three processes
 * set). Not the broker: at full load its path is hot anyway, and there the lower thresholds cost
 * the durable work queue (bench d) ~8%, median 114,500 against 125,600 acked/s over 16 and 10 runs.
 * Call it before the client's modules run. (A flag V8 does not have is reported on stderr: each
 * version gets its own.)
 */
import { setFlagsFromString } from 'node:v8'

export function tierUpSooner (): void {
  const v8Major = Number(process.versions.v8.split('.')[0])
  setFlagsFromString(v8Major < 12 ? '--interrupt-budget=4096' : '--invocation-count-for-turbofan=300')
}
