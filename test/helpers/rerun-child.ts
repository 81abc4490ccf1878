/**
 * A rerunHttp in a process of its own (started by rerun-process.ts), so a test can kill it with SIGKILL.
 * Env: the product's RERUN_* and CLOUD_TASKS_EMULATOR_HOST, PORT, and TEST_ARMING_MS (the redrive arming
 * delay). It sends 'ready' over IPC once it listens on 127.0.0.1:PORT.
 */
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import '../../functions/framework-errors.js';
import { rerunHttpHandler } from '../../functions/rerun-http.js';
import { createRuntime } from '../../shared/platform/runtime.js';

const runtime = createRuntime(process.env, {
  // TEST_LOG=1 shows its log lines on stderr.
  logDestination: process.env.TEST_LOG ? process.stderr : { write: () => undefined },
  redriveArmingDelayMs: Number(process.env.TEST_ARMING_MS),
});
ff.http('rerunHttpChild', rerunHttpHandler(runtime));
const server = getTestServer('rerunHttpChild');
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
