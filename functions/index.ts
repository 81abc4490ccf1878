/**
 * The Functions Framework entry: registers rerunHttp and rerunPubsub. The only module with import-time
 * side effects: the configuration is read here, once, and a bad value stops start-up with its name.
 */
import * as ff from '@google-cloud/functions-framework';
import { createRuntime } from '../shared/platform/runtime.js';
import './framework-errors.js';
import { rerunHttpHandler } from './rerun-http.js';
import { rerunPubsubHandler } from './rerun-pubsub.js';

const runtime = createRuntime(process.env);

ff.http('rerunHttp', rerunHttpHandler(runtime));
ff.cloudEvent('rerunPubsub', rerunPubsubHandler(runtime));
