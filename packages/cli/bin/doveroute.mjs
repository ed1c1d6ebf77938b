#!/usr/bin/env node
// Launcher for the doveroute command: runs the TypeScript entry point through tsx.
import { register } from "tsx/esm/api"
register()
await import("../src/bin.ts")
