/**
 * Server-side figures from /proc (Linux): resident memory (VmRSS, peak VmHWM) and CPU time
 * (utime + stime) of a set of processes, to report peak RSS and CPU µs per request.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

let ticks: number | undefined

/** Clock ticks per second (`getconf CLK_TCK`, normally 100). */
export const clockTicks = (): number => {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      ticks = 100
    }
  }
  return ticks
}

export interface MemInfo {
  /** Current resident set in KiB. */
  readonly rssKb: number
  /** Peak resident set (high-water mark) in KiB. */
  readonly hwmKb: number
}

/** VmRSS and VmHWM of a process, undefined when it is gone. */
export const memInfo = (pid: number): MemInfo | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  } catch {
    return undefined
  }
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)
    return m === null ? 0 : Number(m[1])
  }
  return { rssKb: kb("VmRSS"), hwmKb: kb("VmHWM") }
}

/** Fields of /proc/PID/stat after the command name (field 3 = state is index 0). */
const statFields = (pid: number): Array<string> | undefined => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return s.slice(s.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** utime + stime of a process in clock ticks (undefined when gone). */
export const cpuTicks = (pid: number): number | undefined => {
  const f = statFields(pid)
  if (f === undefined) return undefined
  return Number(f[11]) + Number(f[12]) // fields 14 and 15
}

/** Direct children of a process. */
export const childrenOf = (pid: number): Array<number> => {
  const out: Array<number> = []
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue
    const f = statFields(Number(e))
    if (f !== undefined && Number(f[1]) === pid) out.push(Number(e))
  }
  return out
}

/** The command line of a process with NULs as spaces ("" when gone). */
export const cmdline = (pid: number): string => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim()
  } catch {
    return ""
  }
}

/**
 * CPU time of a changing set of processes between `start()` and `stop()`. Processes that appear
 * in between count from zero; processes that exit in between lose their share (rare here).
 */
export class CpuMeter {
  private base = new Map<number, number>()
  constructor(private readonly pids: () => ReadonlyArray<number>) {}

  start(): void {
    this.base = new Map()
    for (const p of this.pids()) {
      const t = cpuTicks(p)
      if (t !== undefined) this.base.set(p, t)
    }
  }

  /** CPU milliseconds used since `start()`. */
  stop(): number {
    let sum = 0
    for (const p of this.pids()) {
      const t = cpuTicks(p)
      if (t !== undefined) sum += t - (this.base.get(p) ?? 0)
    }
    return (sum * 1000) / clockTicks()
  }
}
