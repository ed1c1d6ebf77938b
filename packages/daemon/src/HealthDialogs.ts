/**
 * The health probe's per-protocol dialogs, as a client of a Dovecot backend speaks them:
 *
 * - IMAP: greeting `* OK`; `a STARTTLS` → `a OK`; `b LOGIN "user" "password"` → `b OK`;
 *   `c LOGOUT`.
 * - POP3: greeting `+OK`; `STLS` → `+OK`; `USER` / `PASS` → `+OK`; `QUIT`.
 * - submission (SMTP): greeting `220`; `EHLO` → `250`; `STARTTLS` → `220`, then `EHLO` again;
 *   `AUTH PLAIN <base64>` → `235`; `QUIT` → `221`.
 * - LMTP: greeting `220`; `LHLO` → `250`; `STARTTLS` → `220`, then `LHLO` again; `QUIT`.
 *
 * Each returns the greeting's first line, or throws a `ProbeFailure` whose message quotes the
 * server's reply (never what we sent: the login line holds the password). The closing
 * LOGOUT/QUIT is polite, not checked: a server that closes at once still passed.
 *
 * @since 0.1.0
 */
import type { HealthProtocol } from "./HealthSettings.js"
import { ProbeFailure, shown, type Wire } from "./HealthWire.js"

export interface DialogOptions {
  /** Upgrade the connection to TLS after the server agreed to STARTTLS; undefined = no STARTTLS. */
  readonly startTls: (() => Promise<void>) | undefined
  readonly login: { readonly user: string; readonly password: string } | undefined
  /** Our name in EHLO/LHLO. */
  readonly heloName: string
}

type Dialog = (w: Wire, o: DialogOptions) => Promise<string>

const protocolError = (text: string) => new ProbeFailure("protocol", text)

/** Send the closing command and wait briefly for its reply; failures are ignored. */
const politeQuit = async (w: Wire, line: string, read: () => Promise<unknown>): Promise<void> => {
  w.phase = "logout"
  w.send(line)
  await read().catch(() => undefined)
}

/** IMAP quoted string (the name and password never hold CR or LF: settings and secret files refuse them). */
const quoted = (s: string): string => `"${s.replace(/[\\"]/g, (c) => "\\" + c)}"`

/** A one-line greeting that must start with `prefix` (IMAP, POP3). */
const lineGreeting = async (w: Wire, prefix: string, name: string): Promise<string> => {
  w.phase = "greeting"
  const greeting = await w.line()
  if (!greeting.startsWith(prefix)) throw protocolError(`unexpected ${name} greeting: ${shown(greeting)}`)
  return greeting
}

/** With STARTTLS asked for: send `command`, let `accepted` check the reply, then upgrade. */
const startTls = async (w: Wire, o: DialogOptions, command: string, accepted: () => Promise<unknown>): Promise<void> => {
  if (o.startTls === undefined) return
  w.phase = "STARTTLS"
  w.send(command)
  await accepted()
  await o.startTls()
}

/** Read up to the tagged reply of `tag`; returns its status word and line. */
const imapTagged = async (w: Wire, tag: string): Promise<{ readonly status: string; readonly line: string }> => {
  for (;;) {
    const line = await w.line()
    if (line.startsWith(`${tag} `)) return { status: line.slice(tag.length + 1).split(" ")[0]!.toUpperCase(), line }
    if (/^\* BYE/i.test(line)) throw protocolError(`server closed the session: ${shown(line)}`)
  }
}

const imap: Dialog = async (w, o) => {
  const greeting = await lineGreeting(w, "* OK", "IMAP")
  await startTls(w, o, "a STARTTLS", async () => {
    const r = await imapTagged(w, "a")
    if (r.status !== "OK") throw protocolError(`STARTTLS refused: ${shown(r.line)}`)
  })
  if (o.login !== undefined) {
    w.phase = "login"
    w.send(`b LOGIN ${quoted(o.login.user)} ${quoted(o.login.password)}`)
    const r = await imapTagged(w, "b")
    if (r.status !== "OK") throw new ProbeFailure("login", `login as ${o.login.user} refused: ${shown(r.line)}`)
  }
  await politeQuit(w, "c LOGOUT", () => imapTagged(w, "c"))
  return greeting
}

/** One POP3 reply line: `+OK` passes, anything else throws (`kind` login for USER/PASS). */
const pop3Reply = async (w: Wire, what: string, kind: "protocol" | "login" = "protocol"): Promise<string> => {
  const line = await w.line()
  if (!line.startsWith("+OK")) throw new ProbeFailure(kind, `${what}: ${shown(line)}`)
  return line
}

const pop3: Dialog = async (w, o) => {
  const greeting = await lineGreeting(w, "+OK", "POP3")
  await startTls(w, o, "STLS", () => pop3Reply(w, "STLS refused"))
  if (o.login !== undefined) {
    w.phase = "login"
    w.send(`USER ${o.login.user}`)
    await pop3Reply(w, `USER ${o.login.user} refused`, "login")
    w.send(`PASS ${o.login.password}`)
    await pop3Reply(w, `login as ${o.login.user} refused`, "login")
  }
  await politeQuit(w, "QUIT", () => w.line())
  return greeting
}

/** One SMTP/LMTP reply (`250-…` lines up to `250 …`). */
const smtpReply = async (w: Wire): Promise<{ readonly code: number; readonly lines: ReadonlyArray<string> }> => {
  const lines: Array<string> = []
  for (;;) {
    const line = await w.line()
    const m = /^(\d{3})([ -]|$)/.exec(line)
    if (m === null) throw protocolError(`not an SMTP reply: ${shown(line)}`)
    lines.push(line)
    if (m[2] !== "-") return { code: Number(m[1]), lines }
  }
}

const expectCode = async (w: Wire, code: number, what: string, kind: "protocol" | "login" = "protocol") => {
  const r = await smtpReply(w)
  if (r.code !== code) throw new ProbeFailure(kind, `${what}: ${shown(r.lines[r.lines.length - 1]!)}`)
  return r
}

/** The SMTP family: submission (EHLO, AUTH PLAIN) and LMTP (LHLO, no login). */
const smtpLike = (hello: "EHLO" | "LHLO"): Dialog => async (w, o) => {
  w.phase = "greeting"
  const greeting = await smtpReply(w)
  if (greeting.code !== 220) throw protocolError(`unexpected ${hello === "LHLO" ? "LMTP" : "SMTP"} greeting: ${shown(greeting.lines[0]!)}`)
  w.phase = hello
  w.send(`${hello} ${o.heloName}`)
  const caps = await expectCode(w, 250, `${hello} refused`)
  if (o.startTls !== undefined) {
    if (!caps.lines.some((l) => /^250[ -]STARTTLS\b/i.test(l))) throw protocolError(`the server does not offer STARTTLS after ${hello}`)
    await startTls(w, o, "STARTTLS", () => expectCode(w, 220, "STARTTLS refused"))
    w.phase = hello
    w.send(`${hello} ${o.heloName}`)
    await expectCode(w, 250, `${hello} after STARTTLS refused`)
  }
  if (o.login !== undefined) {
    w.phase = "login"
    const plain = Buffer.from(`\u0000${o.login.user}\u0000${o.login.password}`, "utf8").toString("base64")
    w.send(`AUTH PLAIN ${plain}`)
    await expectCode(w, 235, `login as ${o.login.user} refused`, "login")
  }
  await politeQuit(w, "QUIT", () => smtpReply(w))
  return greeting.lines[0]!
}

export const DIALOGS: Readonly<Record<HealthProtocol, Dialog>> = {
  imap,
  pop3,
  submission: smtpLike("EHLO"),
  lmtp: smtpLike("LHLO")
}
