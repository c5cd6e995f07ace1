/**
 * Has V8 optimize the message path of a broker, producer or consumer sooner. One handling a message
 * every 10 ms ran it mostly in V8's baseline tier (perf: inline-cache stubs, no optimized code),
 * because V8 optimizes a function only after much work in it: on Node 20, 66 KB of bytecode run; on
 * Node 22 and 24, 3,000 calls (30 s at that pace), and again after each deoptimization. A broker
 * that had relayed 6,000 requests at that pace still ran its frame codec, yamux's frame handler and
 * its sessions' frame readers in the baseline tier. With 4 KB and 300 calls, the CLI's
 * request/answer at one every 10 ms went from p50 809-955 µs to 429-539 µs on Node 20, 915-1,357
 * to 616-814 on Node 22, 507-562 to 430-485 on Node 24 (all three processes set). The broker's
 * share, alone, on Node 20 (2-core Xeon VM, interleaved bench runs): j at one every 10 ms p50 1,202
 * against 1,377 µs in memory, 1,725 against 2,130 durable (medians of 3), and no cost at full load:
 * d 50,300 against 44,000 acked/s (medians of 4). (On the AMD EPYC VM it had measured d ~8% lower,
 * 114,500 against 125,600 over 16 and 10 runs; the two machines disagree, the 10 ms gain does not.)
 * On Node 24 it costs the first seconds' p99 at one request every 10 ms (9-11 ms against 5-7.7
 * without, after 1 s; Performance in the README), and saves ~150 µs of p50 at one every 1 ms.
 * Call it before the program's modules run. (A flag V8 does not have is reported on stderr: each
 * version gets its own.)
 */
import { setFlagsFromString } from 'node:v8'

export function tierUpSooner (): void {
  const v8Major = Number(process.versions.v8.split('.')[0])
  setFlagsFromString(v8Major < 12 ? '--interrupt-budget=4096' : '--invocation-count-for-turbofan=300')
}
