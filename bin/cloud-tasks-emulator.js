#!/usr/bin/env node
// The Cloud Tasks emulator (emulator/cli.ts), on Node 22 or later.
import { runOnNode22 } from './run-on-node22.js';

runOnNode22('cloud-tasks-emulator', 'emulator/cli.js');
