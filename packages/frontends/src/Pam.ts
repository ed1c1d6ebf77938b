/**
 * PAM as an {@link Authenticator} for the standalone auth server (`auth_mode = pam`), through the
 * `node-linux-pam` binding (N-API; `pam_start` → `pam_authenticate` → `pam_acct_mgmt` →
 * `pam_end` on a libuv worker thread). The service name picks `/etc/pam.d/<service>` (default
 * `dovecot`, the stack Dovecot's own PAM passdb uses).
 *
 * In Dovecot's terms the standalone server then runs this passdb chain:
 * ```
 * passdb pam     { result_success = continue-ok }            # this file
 * passdb routing { skip = unauthenticated  noauthenticate
 *                  result_failure = return-fail  result_internalfail = return-fail }
 * ```
 * - PAM success → the routing step runs; a routing failure (no backend, store down) is
 *   `temp_fail`, never a local, unrouted login;
 * - PAM refusal (wrong password, unknown user, expired or locked account) → the routing step is
 *   skipped: plain `FAIL` after the failure delay, and no `user_backend` row is written;
 * - PAM itself failing (module missing, `PAM_AUTHINFO_UNAVAIL`, binding error, timeout) →
 *   `temp_fail`, never "wrong password".
 *
 * PAM result codes (Linux-PAM `_pam_types.h`) that mean "these credentials are not good":
 * {@link REJECTING_CODES}; any other non-zero code is a failure of PAM itself.
 *
 * Limits: at most `maxConcurrent` PAM conversations run at once (default 3, below libuv's 4
 * worker threads, which DNS and file I/O share; pam_unix's failure delay holds a thread for ~2 s);
 * more wait in a queue. A conversation that has not finished after `timeoutMs` (default 30 s) is
 * answered `temp_fail`; its thread stays busy until PAM returns. pam_unix can check other users'
 * passwords only as root (it reads /etc/shadow).
 *
 * @since 0.1.0
 */
import { createRequire } from "node:module"
import type { AuthenticationResult, Authenticator } from "./Authenticator.js"
import { Redacted } from "effect"

/** One PAM conversation's outcome: `code` 0 is PAM_SUCCESS. */
export interface PamOutcome {
  readonly code: number
  readonly message: string | undefined
}

/** The native call, injectable for tests. */
export interface PamBinding {
  readonly authenticate: (request: {
    readonly username: string
    readonly password: string
    readonly serviceName: string
    readonly remoteHost?: string
  }) => Promise<PamOutcome>
}

/** PAM codes answered as a plain authentication failure (everything else non-zero is `temp_fail`). */
export const REJECTING_CODES: ReadonlyMap<number, string> = new Map([
  [6, "PAM_PERM_DENIED"],
  [7, "PAM_AUTH_ERR"],
  [8, "PAM_CRED_INSUFFICIENT"],
  [10, "PAM_USER_UNKNOWN"],
  [11, "PAM_MAXTRIES"],
  [12, "PAM_NEW_AUTHTOK_REQD"],
  [13, "PAM_ACCT_EXPIRED"],
  [27, "PAM_AUTHTOK_EXPIRED"]
])

/** The binding could not be loaded (module missing or not built). */
export class PamUnavailableError extends Error {
  constructor(detail: string) {
    super(`auth_mode=pam needs the node-linux-pam module (built against libpam: apt-get install libpam0g-dev, then npm ci): ${detail}`)
    this.name = "PamUnavailableError"
  }
}

type NativePam = (
  options: { username: string; password: string; serviceName?: string; remoteHost?: string },
  callback: (err: Error | null, code: number) => void
) => void

/** Load `node-linux-pam` (at start, so a missing module stops the daemon with a clear message). */
export const loadBinding = (): PamBinding => {
  let native: NativePam
  try {
    const mod = createRequire(import.meta.url)("node-linux-pam") as { pamAuthenticate?: NativePam }
    if (typeof mod.pamAuthenticate !== "function") throw new Error("no pamAuthenticate export")
    native = mod.pamAuthenticate
  } catch (e) {
    throw new PamUnavailableError(e instanceof Error ? e.message : String(e))
  }
  return {
    authenticate: (request) =>
      new Promise((resolve, reject) => {
        try {
          native(
            {
              username: request.username,
              password: request.password,
              serviceName: request.serviceName,
              ...(request.remoteHost !== undefined ? { remoteHost: request.remoteHost } : {})
            },
            (err, code) => resolve({ code: typeof code === "number" ? code : err === null ? 0 : -1, message: err?.message })
          )
        } catch (e) {
          reject(e)
        }
      })
  }
}

/** Options for {@link pam}. */
export interface PamOptions {
  /** PAM service name (`/etc/pam.d/<service>`). */
  readonly service: string
  /** Default: {@link loadBinding}(). */
  readonly binding?: PamBinding
  /** Concurrent PAM conversations; default 3. */
  readonly maxConcurrent?: number
  /** Per conversation; default 30 000 ms. */
  readonly timeoutMs?: number
}

const SERVICE_RE = /^[A-Za-z0-9_.-]+$/

/** A PAM-backed {@link Authenticator}. Throws {@link PamUnavailableError} when the binding cannot load. */
export const pam = (options: PamOptions): Authenticator => {
  if (!SERVICE_RE.test(options.service)) throw new RangeError(`invalid PAM service name ${JSON.stringify(options.service)}`)
  const binding = options.binding ?? loadBinding()
  const max = Math.max(1, options.maxConcurrent ?? 3)
  const timeoutMs = options.timeoutMs ?? 30_000
  let running = 0
  const queue: Array<() => void> = []
  const acquire = (): Promise<void> =>
    running < max ? (running++, Promise.resolve()) : new Promise<void>((resolve) => queue.push(resolve))
  const release = (): void => {
    const next = queue.shift()
    if (next !== undefined) next()
    else running--
  }

  return {
    name: "pam",
    verifiesPassword: true,
    authenticate: async (request): Promise<AuthenticationResult> => {
      await acquire()
      const call = Promise.resolve().then(() =>
        binding.authenticate({
          username: request.user,
          password: Redacted.value(request.password),
          serviceName: options.service,
          ...(request.remoteIp !== undefined ? { remoteHost: request.remoteIp } : {})
        })
      )
      // the permit is held until PAM really returns (a timed-out call still occupies a thread)
      call.then(release, release)
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs)
      })
      try {
        const outcome = await Promise.race([call, timeout])
        if (outcome === "timeout") return { _tag: "Unavailable", detail: `PAM (${options.service}) did not answer within ${timeoutMs} ms` }
        if (outcome.code === 0) return { _tag: "Accepted" }
        const name = REJECTING_CODES.get(outcome.code)
        if (name !== undefined) return { _tag: "Rejected", detail: `pam(${options.service}): ${name}: ${outcome.message ?? ""}`.trim() }
        return { _tag: "Unavailable", detail: `pam(${options.service}) failed with code ${outcome.code}: ${outcome.message ?? ""}`.trim() }
      } catch (e) {
        return { _tag: "Unavailable", detail: `pam(${options.service}) error: ${e instanceof Error ? e.message : String(e)}` }
      } finally {
        clearTimeout(timer)
      }
    }
  }
}
