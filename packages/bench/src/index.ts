/**
 * @doveroute/bench: the load generator (auth-client, dict and raw-line modes, every reply checked),
 * the bare `node:net` limit server, /proc figures, CPU-profile summaries and the side-by-side
 * benchmark behind `npm run bench`.
 */
export * from "./LoadGen.js"
export * from "./Latency.js"
export * from "./BareServer.js"
export * from "./ProcStats.js"
export * from "./Profile.js"
export * from "./Servers.js"
export * from "./Bench.js"
export * from "./Report.js"
