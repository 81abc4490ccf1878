#!/usr/bin/env node
// The `cloud-tasks-rerun` command line (scripts/cli/main.ts), on Node 22 or later.
import { runOnNode22 } from './run-on-node22.js';

runOnNode22('cloud-tasks-rerun', 'scripts/cli/main.js');
