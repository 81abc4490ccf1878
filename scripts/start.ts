/**
 * `npm start`: the product on localhost against the embedded emulator. Starts the Cloud Tasks emulator
 * seeded with the demo queue, the demo target, a local Pub/Sub publish endpoint that prints each run's
 * end notification, and the Functions Framework serving rerunHttp and rerunPubsub, each as its own
 * process, as on Cloud Run functions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startPubsubServer, type PublishedMessage } from '../emulator/pubsub-server.js';
import { startEmulator } from '../emulator/server.js';
import { DEMO_EMAILS_QUEUE, DEMO_QUEUE, demoSeed, startDemoTarget } from './demo.js';

const PORTS = { emulator: 8123, http: 8081, pubsub: 8082, target: 8090, publish: 8085 };
const DEMO_TOPIC = 'projects/demo-project/topics/rerun-runs';

// The framework's CLI (its package `bin`), started with node directly: npx would add ~0.45 s.
const frameworkMain = join(
  dirname(createRequire(import.meta.url).resolve('@google-cloud/functions-framework')),
  'main.js',
);

async function main(): Promise<void> {
  const target = await startDemoTarget(PORTS.target);
  const emulator = await startEmulator({ port: PORTS.emulator, seed: demoSeed(target.url, Date.now()) });
  const publish = await startPubsubServer({ port: PORTS.publish, onMessage: printMessage });
  const env = {
    ...process.env,
    RERUN_QUEUES: process.env.RERUN_QUEUES ?? `${DEMO_QUEUE},${DEMO_EMAILS_QUEUE}`,
    RERUN_PARK: process.env.RERUN_PARK ?? 'true',
    RERUN_NOTIFY_TOPIC: process.env.RERUN_NOTIFY_TOPIC ?? DEMO_TOPIC,
    CLOUD_TASKS_EMULATOR_HOST: emulator.host,
    PUBSUB_EMULATOR_HOST: publish.host,
  };
  const children = [serve('rerunHttp', PORTS.http, env), serve('rerunPubsub', PORTS.pubsub, env)];
  console.log(`
cloud-tasks-rerun demo
  Cloud Tasks emulator  ${emulator.url}   (queues ${DEMO_QUEUE}, ${DEMO_EMAILS_QUEUE})
  demo target           ${target.url}     (fails with 503 until: curl -X POST ${target.url}/fix)
  rerunHttp             http://127.0.0.1:${PORTS.http}
  rerunPubsub           http://127.0.0.1:${PORTS.pubsub}
  Pub/Sub publish       ${publish.url}     (prints each message to ${env.RERUN_NOTIFY_TOPIC})

See what would be rerun, ship the fix, then tell rerun (from the command line, or through rerunHttp):
  CLOUD_TASKS_EMULATOR_HOST=${emulator.host} npx cloud-tasks-rerun plan --queue ${DEMO_QUEUE}
  curl -X POST ${target.url}/fix
  CLOUD_TASKS_EMULATOR_HOST=${emulator.host} npx cloud-tasks-rerun run --queue ${DEMO_QUEUE} --reason demo
  curl -s -X POST http://127.0.0.1:${PORTS.http} -H 'Content-Type: application/json' -d '{"kind":"fix-deployed","reason":"demo"}'
Park the e-mail about to be dropped (before the fix), look at it, and bring it home (after):
  curl -s -X POST http://127.0.0.1:${PORTS.http} -H 'Content-Type: application/json' -d '{"kind":"sweep","queues":["${DEMO_EMAILS_QUEUE}"]}'
  CLOUD_TASKS_EMULATOR_HOST=${emulator.host} npx cloud-tasks-rerun parked --queue ${DEMO_EMAILS_QUEUE}
  curl -s -X POST http://127.0.0.1:${PORTS.http} -H 'Content-Type: application/json' -d '{"kind":"unpark","queues":["${DEMO_EMAILS_QUEUE}"]}'
Ctrl-C stops everything.
`);
  const stop = () => {
    for (const child of children) child.kill('SIGTERM');
    void emulator
      .stop()
      .then(() => publish.close())
      .then(() => target.close())
      .then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

function printMessage(message: PublishedMessage): void {
  console.log(
    `\n── Pub/Sub message ${message.messageId} on ${message.topic}\n   attributes ${JSON.stringify(message.attributes)}\n   data ${message.data}\n`,
  );
}

function serve(target: string, port: number, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [frameworkMain, `--target=${target}`, `--port=${port}`], {
    env: { ...env, NODE_ENV: 'production' },
    stdio: 'inherit',
  });
  child.on('exit', (code, signal) => {
    if (signal === null && code !== 0) {
      console.error(`${target} exited with code ${code}`);
      process.exit(1);
    }
  });
  return child;
}

await main();
