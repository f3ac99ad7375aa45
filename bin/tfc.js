#!/usr/bin/env node
// The `tfc` command: runs the compiled CLI (npm run build makes dist/); src/cli/launch.ts says how.
import { launch } from '../dist/src/cli/launch.js';

process.exitCode = await launch(process.argv.slice(2));
