/**
 * The daemon's version, exported as `doveroute_build_info{version}`. It must equal what
 * `doveroute --version` prints (packages/cli/src/Cli.ts); the metrics e2e test compares the two.
 *
 * @since 0.1.0
 */
export const VERSION = "0.1.0"
