/**
 * The shard key of `director-shard.lua`: `crc32(seed 120254, user UTF-8 bytes) & 0xFFFF`.
 *
 * The script's "16-bit fold" shifts the high half *left* through Lua 5.2 `bit32`, which truncates
 * to 32 bits, so only the low 16 bits survive; existing tables hold those values, so doveroute
 * reproduces them bit for bit (docs/lua-director.md §4). Test vectors: alice → 10670,
 * bob → 25494, testuser → 10406, jörg → 8669.
 *
 * @since 0.1.0
 */
import CRC32 from "crc-32"

/** The CRC-32 seed the script passes to luacrc32. */
export const SHARD_SEED = 120254

/** Unsigned zlib CRC-32 of the UTF-8 bytes of `user`, continuing from `SHARD_SEED`. */
export const crc32 = (user: string): number => CRC32.buf(Buffer.from(user, "utf8"), SHARD_SEED) >>> 0

/** Shard number 0..65535 for a user name (raw bytes, no case folding). */
export const shardKey = (user: string): number => crc32(user) & 0xffff
