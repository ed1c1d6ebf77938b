/**
 * What a Dovecot 2.3 Director ring prints, read line by line:
 *
 * - `doveadm director dump`: `doveadm director add [-a SOCKET] HOST[@TAG] VHOSTS` per host of
 *   the ring and `doveadm director remove [-a SOCKET] HOST` per host removed from it (HOST is
 *   always an IP: the ring knows hosts by address; the up/down state is not printed); with
 *   `doveadm -f tab`: `command socket-path host vhost_count` columns;
 * - `doveadm director status`: a header `mail server ip tag vhosts state state changed users`,
 *   then `IP [TAG] VHOSTS up|down CHANGED USERS` per host (the only output with the up/down state);
 * - `doveadm director map` (table, or `doveadm -f tab director map`): a header
 *   `user hash mail server ip expire time`, then `USER HASH IP YYYY-MM-DD HH:MM:SS` per user the
 *   ring has mapped. The ring keeps only the hash of `director_username_hash` (`%Lu`); doveadm
 *   prints the user names it was given (`-f FILE`, else the userdb's user iteration) whose hash
 *   matches, and `<unknown>` for a hash none of them has;
 * - the value of `director_mail_servers` (`doveconf -h director_mail_servers`, or a
 *   `director_mail_servers = …` line): hosts, `IP1-IP2` ranges and host names, each optionally
 *   `@TAG`.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"

/** One line of director output. */
export type DirectorLine =
  | { readonly kind: "host"; readonly ip: string; readonly tag: string; readonly vhosts: number }
  | { readonly kind: "status"; readonly ip: string; readonly tag: string; readonly vhosts: number; readonly down: boolean }
  | { readonly kind: "removed"; readonly ip: string }
  | { readonly kind: "user"; readonly user: string; readonly hash: string; readonly ip: string }
  | { readonly kind: "unknown"; readonly hash: string; readonly ip: string }

const DUMP = /^doveadm\s+director\s+(add|remove)\s+(?:-a\s+\S+\s+)?(\S+?)(?:@(\S*))?(?:\s+(\d+))?\s*$/
const MAP_TABLE = /^(.*\S)\s+(\d+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*$/
const MAP_HEADER = /^user\s+hash\s+mail server ip\s+expire time\s*$/
const STATUS_HEADER = /^mail server ip\s+tag\s+vhosts\s+state\s+state changed\s+users\s*$/
const STATUS_TABLE = /^(\S+)\s+(?:(\S+)\s+)?(\d+)\s+(up|down)\s+(?:-|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+\d+\s*$/
const DATE = /^(?:-|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$/
/** What doveadm prints for a hash no given user name has. */
export const UNKNOWN_USER = "<unknown>"

const dumpRow = (cmd: string, ip: string, tag: string, vhosts: string, where: string): DirectorLine => {
  if (isIP(ip) === 0) throw new Error(`${where}: "${ip}" is not an IP address (the Director's dump names hosts by IP)`)
  if (cmd === "remove") return { kind: "removed", ip }
  if (!/^\d+$/.test(vhosts)) throw new Error(`${where}: "doveadm director add" without a vhost count`)
  return { kind: "host", ip, tag, vhosts: Number(vhosts) }
}

const statusRow = (ip: string, tag: string, vhosts: string, state: string, where: string): DirectorLine => {
  if (isIP(ip) === 0) throw new Error(`${where}: "${ip}" is not an IP address`)
  return { kind: "status", ip, tag, vhosts: Number(vhosts), down: state === "down" }
}

const mapRow = (user: string, hash: string, ip: string, where: string): DirectorLine => {
  if (isIP(ip) === 0) throw new Error(`${where}: "${ip}" is not an IP address`)
  if (/[\t\r\n\x00]/.test(user) || user === "") throw new Error(`${where}: invalid user name`)
  return user === UNKNOWN_USER ? { kind: "unknown", hash, ip } : { kind: "user", user, hash, ip }
}

/**
 * One line of `doveadm director dump` or `doveadm director map` output (`lineNo` from 1):
 * undefined for a blank line, a `#` comment or the map's header; throws naming the line otherwise.
 */
export const parseDirectorLine = (line: string, lineNo: number): DirectorLine | undefined => {
  const where = `line ${lineNo}`
  if (line.trim() === "" || line.startsWith("#") || MAP_HEADER.test(line) || STATUS_HEADER.test(line.replace(/\t/g, " "))) return undefined
  const dump = DUMP.exec(line)
  if (dump !== null) return dumpRow(dump[1]!, dump[2]!, dump[3] ?? "", dump[4] ?? "", where)
  const tab = line.split("\t")
  if (tab.length === 4) {
    if ((tab[0] === "user" && tab[1] === "hash") || (tab[0] === "command" && tab[1] === "socket-path")) return undefined
    if (/^\d+$/.test(tab[1]!)) return mapRow(tab[0]!, tab[1]!, tab[2]!, where)
    // `doveadm -f tab director dump`: command, socket path, host[@tag], vhost count
    const host = /^([^@]+)(?:@(.*))?$/.exec(tab[2]!)
    if ((tab[0] === "add" || tab[0] === "remove") && host !== null) return dumpRow(tab[0], host[1]!, host[2] ?? "", tab[3]!, where)
  }
  if (tab.length === 6 && /^\d+$/.test(tab[2]!) && /^(up|down)$/.test(tab[3]!) && DATE.test(tab[4]!)) {
    return statusRow(tab[0]!, tab[1]!, tab[2]!, tab[3]!, where)
  }
  const status = STATUS_TABLE.exec(line)
  if (status !== null) return statusRow(status[1]!, status[2] ?? "", status[3]!, status[4]!, where)
  const table = MAP_TABLE.exec(line)
  if (table !== null) return mapRow(table[1]!, table[2]!, table[3]!, where)
  throw new Error(`${where}: not a line of "doveadm director dump", "status" or "map": ${JSON.stringify(line.slice(0, 120))}`)
}

/** One entry of `director_mail_servers`: an IP, or a host name to resolve; `tag` "" when none. */
export interface MailServer {
  readonly host: string
  readonly tag: string
}

const ipv4 = (s: string) => s.split(".").reduce((a, o) => a * 256 + Number(o), 0)
const ipv4Text = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".")

/** `IP1-IP2` as its addresses (IPv4, differing in the last octet only, as the Director accepts). */
const expandRange = (from: string, to: string): Array<string> => {
  if (isIP(from) !== 4 || isIP(to) !== 4) throw new Error(`range ${from}-${to}: only IPv4 ranges are read here; list IPv6 hosts one by one`)
  const a = ipv4(from)
  const b = ipv4(to)
  if (a > b) throw new Error(`range ${from}-${to}: addresses reversed`)
  if (Math.floor(a / 256) !== Math.floor(b / 256)) throw new Error(`range ${from}-${to}: too large (the Director allows the last octet only)`)
  return Array.from({ length: b - a + 1 }, (_, i) => ipv4Text(a + i))
}

/**
 * The entries of a `director_mail_servers` value, or of a text holding a
 * `director_mail_servers = …` line (doveconf output, a config file). Ranges are expanded.
 */
export const parseMailServers = (text: string): Array<MailServer> => {
  const setting = /^\s*director_mail_servers\s*=(.*)$/m.exec(text)
  const value = setting !== null ? setting[1]! : text.split(/\r?\n/).filter((l) => l.trim() !== "" && !l.trim().startsWith("#")).join(" ")
  if (setting === null && value.includes("=")) throw new Error("no director_mail_servers setting found")
  const out: Array<MailServer> = []
  for (const word of value.trim().split(/\s+/).filter((w) => w !== "")) {
    const at = word.indexOf("@")
    const host = at < 0 ? word : word.slice(0, at)
    const tag = at < 0 ? "" : word.slice(at + 1)
    const dash = host.indexOf("-")
    if (dash > 0 && isIP(host.slice(0, dash)) !== 0 && isIP(host.slice(dash + 1)) !== 0) {
      for (const ip of expandRange(host.slice(0, dash), host.slice(dash + 1))) out.push({ host: ip, tag })
    } else if (isIP(host) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) out.push({ host, tag })
    else throw new Error(`director_mail_servers: "${word}" is neither an IP, an IP range nor a host name`)
  }
  if (out.length === 0) throw new Error("director_mail_servers is empty")
  return out
}
