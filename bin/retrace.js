#!/usr/bin/env node
// The package's bin: the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
import '../dist/src/cli/main.js';
