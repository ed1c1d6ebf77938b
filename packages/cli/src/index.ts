export * from "./Cli.js"
