/** The help text of every command, with examples. */

export type CommandName = 'main' | 'plan' | 'run' | 'unpark' | 'queues' | 'parked' | 'status' | 'cancel';

const QUEUE = 'projects/demo-project/locations/us-central1/queues/orders';

const EXIT_CODES = `Exit codes:
  0  nothing left to do and nothing failed again
  1  some tasks failed, failed again or were held
  2  bad input (the message names the flag or the name); nothing was called
  3  incomplete: work left for later (the summary prints the command that continues it)`;

const WHERE = `Where it runs:
  By default the core runs in this process, against CLOUD_TASKS_EMULATOR_HOST if it is set, else with
  Application Default Credentials (gcloud auth application-default login). The queues named with --queue
  are the allowlist (RERUN_QUEUES, if set, takes precedence). RERUN_MAX_RATE (default 1 call per second,
  the RunTask quota) and the other RERUN_* variables apply as in the function. A run here paces on its
  own, beside any deployed service using the same project's RunTask quota, and handles 429s as the
  service does; --url keeps one pacer. On a terminal a run has no time budget unless --budget (or
  RERUN_TIME_BUDGET) sets one; a pipeline step keeps RERUN_TIME_BUDGET (default 50s).
  --url URL sends the event to a deployed rerunHttp instead, with an ID token for that URL (none for
  http://127.0.0.1 or http://localhost).`;

const MATCH = `  --task-id ID            only this task ID (repeat for more)
  --cluster ID            only tasks in this failure cluster, as plan prints it (repeat for more)
  --task-id-glob GLOB     task IDs matching * and ?
  --url-prefix PREFIX     tasks whose URL starts with PREFIX
  --response-code CODE    last attempt's status: an HTTP code or a canonical name (repeat for more)
  --min-attempts N, --max-attempts N        bounds on the attempts made so far
  --failed-since TIME, --failed-until TIME  window on the last attempt (RFC 3339)
  --created-after TIME, --created-before TIME`;

const OPTIONS = `  --reason TEXT           why (logged and reported)
  --max-tasks N           at most N tasks forced
  --canary N[:WAIT]       force N tasks first, wait (default 20s), go on only if they succeeded
  --verify DURATION       how long to read forced tasks back for their verdict (default 30s; 0s = off)
  --request-id ID         the request's identity (deliveries of one request force a task at most once)
  --no-breaker            go on forcing however many reruns fail again (the breaker holds the rest
                          once more than half of 5 or more verdicts failed again)
  --budget DURATION       how long a run here may take: none on a terminal, else RERUN_TIME_BUDGET
                          (default 50s); not with --url, which keeps the deployed function's budget`;

const OUTPUT = `Output:
  --json                  print the report (JSON) and nothing else
  --url URL               send the event to a deployed rerunHttp
  -h, --help              this help`;

const SELECT = `Selection (the event's fields, docs/events.md):
  --queue NAME            a queue to rerun, projects/P/locations/L/queues/Q (repeat for more)
${MATCH}
  --deployed-at TIME      the cutoff: only tasks last attempted before it (default now)
${OPTIONS}
  --max-rate N            at most N RunTask calls per second
  --mode run|redrive      RunTask (default) or copy-and-delete
  --force                 also paused queues and queues with maxConcurrentDispatches 1
  --last-attempts         also tasks on their last allowed attempt
  --min-backoff-left DURATION  leave tasks due within DURATION to their own schedule (default 30s)

${OUTPUT}`;

/** Help by command. */
export const HELP: Record<CommandName, string> = {
  main: `Usage: cloud-tasks-rerun <command> [flags]

Forces failed Cloud Tasks to run again, safely.

Commands:
  plan     what would be rerun (a dry run: nothing is forced)
  run      rerun the failed tasks, with a live progress line on a terminal
  unpark   bring parked tasks home to their queue (docs/parking.md)
  queues   each queue's state, limits, tasks, failing tasks, largest failure clusters, oldest failure
  parked   the tasks parked from a queue: when, their attempts, their last status
  status   how many control tasks of a queued request are still waiting
  cancel   delete the waiting control tasks of a queued request

Examples:
  cloud-tasks-rerun plan --queue ${QUEUE}
  cloud-tasks-rerun run --queue ${QUEUE} --response-code 503 --reason "fix #42"
  cloud-tasks-rerun status --request-id deploy-42

Run "cloud-tasks-rerun <command> --help" for a command's flags, "cloud-tasks-rerun --version" for the
version and the Node.js it runs on.

${EXIT_CODES}`,
  plan: `Usage: cloud-tasks-rerun plan --queue NAME [flags]

A dry run: the same selection and report as run, and no task is forced.

${SELECT}

${WHERE}

Examples:
  cloud-tasks-rerun plan --queue ${QUEUE}
  cloud-tasks-rerun plan --queue ${QUEUE} --task-id-glob 'order-1*' --json

${EXIT_CODES}`,
  run: `Usage: cloud-tasks-rerun run --queue NAME [flags]

Forces the failed tasks of the named queues again, at the pace the quota and the queues allow. On a
terminal a progress line shows the tasks forced, their verdicts, the held ones, the rate and the time
left (or elapsed); at the end a table of outcomes by queue and the tasks that failed again. On a
terminal a run has no time budget unless --budget sets one. Ctrl-C starts no new task, lets the ones
under way finish, and prints the command that continues; a second Ctrl-C quits at once.

${SELECT}

${WHERE}

Examples:
  cloud-tasks-rerun run --queue ${QUEUE} --deployed-at 2026-11-22T10:00:00Z --reason "orders-api 00042"
  cloud-tasks-rerun run --queue ${QUEUE} --canary 3:30s --max-tasks 200
  cloud-tasks-rerun run --queue ${QUEUE} --url https://REGION-PROJECT.cloudfunctions.net/rerunHttp

${EXIT_CODES}`,
  unpark: `Usage: cloud-tasks-rerun unpark --queue NAME [flags]

Brings the parked tasks of the named home queues back home (docs/parking.md "Unparking"): each goes home
as a redrive copy, with its token back, and its parked copy is deleted. Selection reads the values the
parked copy recorded of its original; --task-id and --task-id-glob take the parked task's ID, as
parked prints it. Tasks parked while their last attempt may have run stay parked unless --possibly-done;
tasks parked more than 3 times stay parked. An incomplete unpark prints the command that continues it
(the same flags and its --request-id).

Selection:
  --queue NAME            a home queue, projects/P/locations/L/queues/Q (repeat for more)
${MATCH}
${OPTIONS}
  --possibly-done         also tasks parked while their last attempt may have run
  --dry-run               list what would go home (with notes), move nothing

${OUTPUT}

${WHERE}

Examples:
  cloud-tasks-rerun unpark --queue ${QUEUE} --dry-run
  cloud-tasks-rerun unpark --queue ${QUEUE} --response-code 503 --reason "fix #42"

${EXIT_CODES}`,
  parked: `Usage: cloud-tasks-rerun parked --queue NAME... [--json]

The tasks parked from each named home queue (docs/parking.md "Seeing them"), read from its parking
queue: one line each, with the parked task's ID (the ID unpark selects tasks by), the task it was parked
from, when it was parked and how often, its original's attempts and last status (code and message),
and when Cloud Tasks deletes it (31 days after it was parked), flagged "deleted soon" within 3 days and
"possibly done" if parked while its last attempt may have run. A parking queue that is not PAUSED is
warned of. No body or header value is shown. Nothing is changed. The queues must be in RERUN_QUEUES
when it is set.

  --queue NAME            a home queue, projects/P/locations/L/queues/Q (repeat for more)
  --json                  print, for each home queue, its parking queue and parked tasks as JSON
  -h, --help              this help

Examples:
  cloud-tasks-rerun parked --queue ${QUEUE}
  cloud-tasks-rerun parked --queue ${QUEUE} --json

Exit codes: 0 shown; 1 a parking queue could not be read (none yet: deploy.sh creates parking
queues, docs/parking.md); 2 bad input.`,
  queues: `Usage: cloud-tasks-rerun queues [--queue NAME]... [--max-list-calls N] [--json]

For each queue named (or each of RERUN_QUEUES), what someone on call looks for first: its state and rate
limits, its tasks and failing tasks, the largest failure clusters and the oldest failure. Counts come from
the queue's stats (Cloud Tasks v2beta3) where they answer. Nothing is changed.

  --queue NAME            a queue to show, projects/P/locations/L/queues/Q (repeat for more)
  --max-list-calls N      list calls in all, ListQueues pages included, shared by the queues (default
                          30; 1 to 600: the project shares 600 a minute). A queue not listed to the end
                          is shown as sampled; one with no call left, as not read.
  --json                  print the overview as JSON
  -h, --help              this help

Examples:
  cloud-tasks-rerun queues --queue ${QUEUE}
  RERUN_QUEUES='projects/P/locations/L/queues/*' cloud-tasks-rerun queues --max-list-calls 100 --json

Exit codes: 0 shown; 1 a queue could not be read (listed with its error); 2 bad input.`,
  status: `Usage: cloud-tasks-rerun status --request-id ID [--control-queue NAME] [--url URL] [--json]

How many control tasks of a queued request (queued mode) still wait in the control queue.

  --request-id ID         the request (the report's requestId)
  --control-queue NAME    the control queue (default RERUN_CONTROL_QUEUE)
  --url URL               ask a deployed rerunHttp instead ({"kind":"status","requestId":ID})
  --json                  print the answer as JSON
  -h, --help              this help

Examples:
  cloud-tasks-rerun status --request-id deploy-42 --control-queue projects/P/locations/L/queues/rerun-control`,
  cancel: `Usage: cloud-tasks-rerun cancel --request-id ID [--control-queue NAME] [--url URL] [--json]

Records the request as cancelled for 10 days, so no later delivery of it forces or queues anything, then
deletes its control tasks still waiting; tasks already forced stay forced. In process it also needs
RERUN_SELF_URL and RERUN_INVOKER_SA: the record is a control task sent to rerunHttp.

  --request-id ID         the request (the report's requestId)
  --control-queue NAME    the control queue (default RERUN_CONTROL_QUEUE)
  --url URL               ask a deployed rerunHttp instead ({"kind":"cancel","requestId":ID})
  --json                  print the answer as JSON
  -h, --help              this help

Examples:
  cloud-tasks-rerun cancel --request-id deploy-42`,
};
