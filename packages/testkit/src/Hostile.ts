/**
 * Hostile input for doveroute's listeners (issue 8): fast-check arbitraries for generated and
 * mutated protocol lines — invalid base64, unknown mechanisms, duplicate and huge request ids,
 * missing fields, tab-escape sequences, NUL bytes, non-UTF-8 bytes, lines around and over the
 * protocol limits, commands before the handshake — shared by the codec fuzz tests (millions of
 * lines, in-process) and the socket-level runs against a daemon child.
 *
 * Lines are byte strings in a JS string with one char per byte (`latin1`), so they can carry
 * bytes that are not UTF-8; {@link toBytes} turns one into a Buffer, {@link asText} decodes it as a
 * server would (UTF-8 with replacement).
 */
import { FastCheck as fc } from "effect"

/** Captured, valid lines of each protocol (docs/protocols.md), the corpus mutations start from. */
export const CORPUS = {
  authClient: [
    "VERSION\t1\t2",
    "VERSION\t1\t3",
    "VERSION\t1\t4",
    "CPID\t20788",
    "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=GhpGcWphVJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37204\tresp=AGFsaWNlAHNlY3JldA==",
    "AUTH\t1\tPLAIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=EE7+gGphAJR/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=20143\trport=37888\tresp=AGRhdmUAcGFzcw==",
    "AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tresp=YWxpY2UAYWxpY2UAc2VjcmV0",
    "AUTH\t2\tLOGIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=xyz",
    "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=10.0.0.1\trip=10.0.0.2\tsecured\tresp=AGFsaWNlAHNlY3JldA==",
    "AUTH\t4\tPLAIN\tservice=imap\tforward_fields=a=b\x01tc=d\tresp=",
    "CONT\t1\tAGFsaWNlAHNlY3JldA==",
    "CONT\t2\tbWFsbG9yeQ==",
    "CONT\t2\tcGFzcw==",
    "CANCEL\t1"
  ],
  authMaster: [
    "VERSION\t1\t0",
    "VERSION\t1\t3",
    "PASS\t1\talice\tservice=lmtp\tlip=127.0.0.1\tlport=20125\trip=127.0.0.1\trport=49412",
    "PASS\t2\terin@example.org\tprotocol=lmtp\tlip=127.0.0.1\tlport=20125",
    "USER\t3\talice\tservice=doveadm",
    "LIST\t4\tuser=*",
    "REQUEST\t1644167169\t328\t1\t669513f30ad082a7f790a4322d8b6352\tsession_pid=331\trequest_auth_token",
    "CACHE-FLUSH\t5\talice",
    "CPID\t1"
  ],
  authMasterReplies: [
    "VERSION\t1\t1",
    "SPID\t3934",
    "PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125",
    "PASS\t1\tuser=alice\thostip=127.0.0.2\thost=backend1.test\tproxy",
    "USER\t1\talice\tuid=5000\tgid=5000\thome=/home/alice",
    "NOTFOUND\t2",
    "FAIL\t3\treason=internal",
    "LIST\t4\talice",
    "DONE\t4\t",
    "OK\t5\t1"
  ],
  loginReplies: [
    "OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass",
    "OK\t2\tuser=erin\tproxy\thost=10.0.0.1\tport=143\tpass=x",
    "OK\t3\tuser=mallory",
    "OK\t4\tuser=alice*master\tproxy_maybe\tdestuser=alice",
    "FAIL\t5\tuser=mallory",
    "CONT\t6\tVXNlcm5hbWU6",
    "OK\t7\tuser=frank\tnologin\treason=go away"
  ],
  dict: [
    "H3\t2\t0\t\tdirector",
    "H4\t0\t0\t\tdirector",
    "Lshared/passdb/alice\talice",
    "Lshared/route/imap/alice\talice",
    "Lshared/director/alice\t",
    "Lpriv/x\talice",
    "Lshared/passdb/j\xc3\xb6rg\tj\xc3\xb6rg"
  ]
} as const

/** Tokens that stress the parsers: bad ids, bad numbers, bad base64, unknown mechanisms, escapes. */
export const NASTY_TOKENS: ReadonlyArray<string> = [
  "0", "1", "2", "4294967295", "4294967296", "99999999999999999999999", "-1", "+1", " 1", "1 ", "0x10", "1e3", "01", "",
  "PLAIN", "LOGIN", "plain", "XOAUTH2", "GSSAPI", "CRAM-MD5", "EXTERNAL", "ANONYMOUS", "SCRAM-SHA-256",
  "service=imap", "protocol=lmtp", "service=", "protocol=", "service", "service=smtp", "nologin",
  "resp=", "resp==", "resp=AGFsaWNlAHNlY3JldA==", "resp=!!!!", "resp=AGFsaWNl", "resp=YQ", "resp=YQ=", "resp=Y Q==",
  "resp=AAAA", "resp=AA==", "resp=AGFsaWNlAA==", "resp=\x00", "resp=====",
  "secured", "secured=tls", "final-resp-ok", "lip=127.0.0.1", "lport=99999", "lport=-1", "real_lip=::1", "rip=",
  "forward_fields=a=b\x01tc", "forward_fields=\x01", "user=alice*master", "user=", "destuser=", "proxy", "proxy=y",
  "proxy_maybe", "host=", "hostip=", "port=0", "port=70000", "pass=secret", "session=", "cert_username=\x00",
  "\x01", "\x01t", "\x010", "\x011", "\x01n", "\x01r", "\x01\x01", "\x01x", "\x00", "\xff", "\xc3", "\xc3\x28", "\xed\xa0\x80",
  "\xef\xbf\xbd", "\xf4\x90\x80\x80", "=", "==", "a=b=c", "\r", " ", "\x7f",
  "VERSION", "CPID", "AUTH", "CONT", "CANCEL", "PASS", "USER", "LIST", "REQUEST", "CACHE-FLUSH", "OK", "FAIL", "DONE"
]

const TOKEN = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NASTY_TOKENS) },
  { weight: 2, arbitrary: fc.nat().map(String) },
  { weight: 2, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 10 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b).toString("latin1")) }
)

const CHARS = ["\t", "\x01", "\x00", "\r", "=", "\xff", "\xc3", "\x80", " ", "*", "0", "A"]

type Mutation =
  | { readonly op: "insert"; readonly at: number; readonly text: string }
  | { readonly op: "delete"; readonly at: number; readonly len: number }
  | { readonly op: "char"; readonly at: number; readonly ch: string }
  | { readonly op: "dupField"; readonly at: number }
  | { readonly op: "dropField"; readonly at: number }
  | { readonly op: "swapFields"; readonly at: number }
  | { readonly op: "truncate"; readonly at: number }

const MUTATION: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), text: TOKEN }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant("char" as const), at: fc.nat(), ch: fc.constantFrom(...CHARS) }),
  fc.record({ op: fc.constant("dupField" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("dropField" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("swapFields" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() })
)

/** Apply one mutation to a line (byte string). */
export const mutate = (line: string, m: Mutation): string => {
  const at = line.length === 0 ? 0 : m.at % (line.length + 1)
  switch (m.op) {
    case "insert":
      return line.slice(0, at) + m.text + line.slice(at)
    case "delete":
      return line.slice(0, at) + line.slice(at + m.len)
    case "char":
      return line.slice(0, at) + m.ch + line.slice(at + 1)
    case "truncate":
      return line.slice(0, at)
    default: {
      const f = line.split("\t")
      const i = m.at % f.length
      if (m.op === "dupField") f.splice(i, 0, f[i]!)
      else if (m.op === "dropField") f.splice(i, 1)
      else if (f.length > 1) {
        const j = (i + 1) % f.length
        const t = f[i]!
        f[i] = f[j]!
        f[j] = t
      }
      return f.join("\t")
    }
  }
}

/** A corpus line with 1–4 mutations. */
export const mutated = (corpus: ReadonlyArray<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom(...corpus), fc.array(MUTATION, { minLength: 1, maxLength: 4 })).map(([l, ms]) => ms.reduce(mutate, l))

/** A known command (or garbage) followed by 0–8 nasty tokens. */
export const generated = (commands: ReadonlyArray<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.oneof(fc.constantFrom(...commands), TOKEN), fc.array(TOKEN, { maxLength: 8 })).map(([c, a]) => [c, ...a].join("\t"))

/** Random bytes without LF (one char per byte). */
export const randomBytesLine: fc.Arbitrary<string> = fc.uint8Array({ maxLength: 120 }).map((b) =>
  Buffer.from(b.map((x) => (x === 10 ? 11 : x))).toString("latin1")
)

/** Lengths around the limits: 1 KiB, 8 KiB, 16 KiB (auth), 64 KiB (dict), and over. */
export const LIMIT_LENGTHS = [1023, 1024, 1025, 8191, 8192, 8193, 16383, 16384, 16385, 65535, 65536, 65537, 70000] as const

/** A line of exactly `n` bytes starting with `prefix` (filled with base64-ish `A`). */
export const longLine = (prefix: string, n: number): string => prefix + "A".repeat(Math.max(0, n - prefix.length))

/** Long lines built from a prefix and a length around a limit. */
export const long = (prefixes: ReadonlyArray<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom(...prefixes), fc.constantFrom(...LIMIT_LENGTHS)).map(([p, n]) => longLine(p, n))

/**
 * Any hostile line for a protocol: mutated corpus lines, generated command lines, random bytes,
 * the corpus itself and (rarely, they are big) lines around the length limits.
 */
export const hostileLine = (corpus: ReadonlyArray<string>, commands: ReadonlyArray<string>, longPrefixes: ReadonlyArray<string>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 1200, arbitrary: mutated(corpus) },
    { weight: 960, arbitrary: generated(commands) },
    { weight: 360, arbitrary: randomBytesLine },
    { weight: 360, arbitrary: fc.constantFrom(...corpus) },
    { weight: 120, arbitrary: fc.string({ unit: "binary", maxLength: 40 }).map((s) => Buffer.from(s, "utf8").toString("latin1")) },
    { weight: 120, arbitrary: fc.constant("") },
    // about 1 line in 3000: they are big (up to 70 000 bytes)
    { weight: 1, arbitrary: long(longPrefixes) }
  ).map((l) => l.replace(/\n/g, "\x0b"))

export const AUTH_CLIENT_COMMANDS = ["VERSION", "CPID", "AUTH", "CONT", "CANCEL"] as const
export const AUTH_MASTER_COMMANDS = ["VERSION", "CPID", "PASS", "USER", "LIST", "REQUEST", "CACHE-FLUSH"] as const
export const DICT_COMMANDS = ["H3", "H4", "H", "L", "Lshared/passdb/", "Lshared/route/imap/", "I", "B", "S", "C", "R", "T"] as const

/** Hostile auth-client lines (client → server). */
export const authClientLine = hostileLine(CORPUS.authClient, AUTH_CLIENT_COMMANDS, ["AUTH\t1\tPLAIN\tservice=imap\tresp=", "CONT\t1\t", "VERSION\t1\t"])
/** Hostile auth-master/userdb lines (client → server). */
export const authMasterLine = hostileLine(CORPUS.authMaster, AUTH_MASTER_COMMANDS, ["PASS\t1\t", "USER\t1\talice\tservice=lmtp\tx="])
/** Hostile dict lines. */
export const dictLine = hostileLine(CORPUS.dict, DICT_COMMANDS, ["Lshared/passdb/", "H3\t2\t0\t\t"])
/** Hostile reply lines from an auth server (what a relay reads from Dovecot). */
export const replyLine = hostileLine([...CORPUS.loginReplies, ...CORPUS.authMasterReplies], ["OK", "FAIL", "PASS", "USER", "NOTFOUND", "CONT", "DONE"], ["OK\t1\tuser=", "PASS\t1\tuser=a\tproxy\tx="])

const FLIP = ["\t", "\x01", "\x00", "\xff", "\xc3", "=", "\r", "0", "9", " "]

/**
 * Cheap deterministic mutants of one line (the first is the line itself): truncated, a nasty
 * token inserted, a byte replaced, a field duplicated or dropped — `k` lines from `seed`. Lets
 * one fast-check value stand for several fuzz lines at a fraction of the generation cost.
 */
export const expand = (line: string, seed: number, k: number): Array<string> => {
  let x = (seed | 0) || 0x9e3779b9
  const rnd = (n: number): number => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % Math.max(1, n)
  }
  const out = [line]
  for (let i = 1; i < k; i++) {
    const at = rnd(line.length + 1)
    switch (rnd(5)) {
      case 0:
        out.push(line.slice(0, at))
        break
      case 1:
        out.push(line.slice(0, at) + NASTY_TOKENS[rnd(NASTY_TOKENS.length)]! + line.slice(at))
        break
      case 2:
        out.push(line.slice(0, at) + FLIP[rnd(FLIP.length)]! + line.slice(at + 1))
        break
      default: {
        const f = line.split("\t")
        const j = rnd(f.length)
        if (rnd(2) === 0) f.splice(j, 0, f[j]!)
        else f.splice(j, 1)
        out.push(f.join("\t"))
      }
    }
  }
  return out
}

/** One hostile line as bytes. */
export const toBytes = (line: string): Buffer => Buffer.from(line, "latin1")

/** One hostile line decoded as a server decodes it (UTF-8, invalid bytes → U+FFFD). */
export const asText = (line: string): string => toBytes(line).toString("utf8")

/** `n` lines from an arbitrary with a fixed seed (socket-level runs are reproducible). */
export const sampleLines = (arb: fc.Arbitrary<string>, n: number, seed: number): Array<string> => fc.sample(arb, { numRuns: n, seed })
