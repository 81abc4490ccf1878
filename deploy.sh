#!/usr/bin/env bash
# deploy.sh: deploys cloud-tasks-rerun to one Google Cloud project, with least privilege.
#
# Idempotent: run it again with the same flags and nothing changes; run it with fewer queues or flags
# and it takes back what it granted or created for them. `--dry-run` prints every gcloud command and
# runs none; `--delete` removes everything it created, whatever the flags. Every input is validated
# before the first gcloud call. Run `./deploy.sh --help` for the flags.
set -euo pipefail

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  echo "deploy.sh: needs bash 4.4 or later (this is ${BASH_VERSION}; on macOS: brew install bash)" >&2
  exit 2
fi

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SOURCE_DIR
MONITORING_DIR=$SOURCE_DIR/scripts/monitoring

usage() {
  cat <<'EOF'
Usage: ./deploy.sh --project ID --queue projects/P/locations/L/queues/Q [options]

Deploys cloud-tasks-rerun to one project: one Cloud Run service, rerunHttp (authenticated callers only,
one instance), a runtime service account holding a custom role with exactly cloudtasks.queues.get,
tasks.list, tasks.get and tasks.run on each named queue (with --redrive, a second role on the queues and
one with exactly cloudtasks.operations.get on the project), the control queue, push subscriptions that
bring alerts, sweeps and build notifications to the service, the Cloud Scheduler sweep, the Monitoring
notification channel, log-based metrics and a dashboard. A second run changes nothing; a run with fewer
queues or flags takes back what they needed.

Where:
  --project ID           project to deploy to (env GOOGLE_CLOUD_PROJECT, then CLOUDSDK_CORE_PROJECT); required
  --region REGION        region of the service, the control queue and the scheduler job
                         (env GOOGLE_CLOUD_REGION; default: the location of the first queue)
  --name PREFIX          prefix of every resource name (env DEPLOY_NAME; default rerun)

Which queues (the allowlist, RERUN_QUEUES; at least one, in the deploy project):
  --queue NAME           one queue, projects/P/locations/L/queues/Q; repeat for more. The queue segment may
                         be `*` (every queue of that location): the role is then granted on the project,
                         with cloudtasks.queues.list
  --queues A,B           comma-separated queue names (env RERUN_QUEUES when no --queue/--queues is given)

Who may call rerunHttp (roles/run.invoker on it; allUsers and allAuthenticatedUsers are refused):
  --invoker MEMBER       e.g. serviceAccount:deployer@P.iam.gserviceaccount.com; repeat for more
                         (env DEPLOY_INVOKERS, comma-separated)

Redrive (copy and delete; needs the tasks' bodies):
  --redrive              also grant cloudtasks.tasks.fullView, tasks.create and tasks.delete on the queues,
                         and cloudtasks.operations.get on the project: batch redrive (tasks:batchCreate,
                         tasks:batchDelete) answers with operations, which are location resources, and
                         Cloud Tasks grants only on a project or a queue (not with RERUN_REDRIVE_BATCH=false:
                         one call per task reads no operation)
  --redrive-act-as EMAIL the runtime account may act as this account (the OIDC/OAuth account of the
                         tasks to redrive or unpark); repeat for more

Parking (the dead-letter queue Cloud Tasks lacks, docs/parking.md):
  --park                 create a PAUSED parking queue Q-parked beside each allowlisted queue Q (for a `*`
                         entry, each queue of its location at deploy time: queues made later get theirs on
                         the next run), grant the runtime account exactly what parking and unparking need
                         (the park role on the parking queues, the redrive role on the queues), and have the
                         sweep park (RERUN_PARK=true). Without it, those grants are taken back; parking
                         queues are never deleted, not even by --delete: they hold parked tasks
  --sweep-period D       RERUN_SWEEP_PERIOD, the sweep's period (e.g. 15m); derived from --schedule when it
                         is '*/N * * * *' (Nm) or 'M * * * *' (60m), else required with --park (env
                         RERUN_SWEEP_PERIOD); --park with --no-sweep is refused: parking runs on the sweep

Events:
  --schedule CRON        sweep schedule, unix-cron (env DEPLOY_SCHEDULE; default '*/15 * * * *')
  --time-zone TZ         time zone of the schedule (env DEPLOY_TIME_ZONE; default Etc/UTC)
  --no-sweep             no Cloud Scheduler sweep job
  --cloud-builds         also push Cloud Build notifications (topic cloud-builds) to the service
                         (env DEPLOY_CLOUD_BUILDS=true)
  --alert-policy FILE    create or update this alerting policy (JSON, the Monitoring API's AlertPolicy),
                         notifying the rerun channel; it must ask for notificationPrompts OPENED and CLOSED.
                         Repeat for more. Example: scripts/monitoring/queue-failing-attempts-policy.json
  --notify-channel NAME  notification channel (projects/P/notificationChannels/ID) of the dead-letter
                         alert, e.g. an e-mail channel; repeat for more (env DEPLOY_NOTIFY_CHANNELS)

Configuration of the service (each also read from the environment variable of the same name):
  --time-budget D        RERUN_TIME_BUDGET, e.g. 50s or 5m (default 50s); at most 590s: the service's
                         timeout and the push ack deadline are 600s
  --max-tasks N          RERUN_MAX_TASKS
  --concurrency N        RERUN_CONCURRENCY
  --redrive-concurrency N  RERUN_REDRIVE_CONCURRENCY
  --max-rate N           RERUN_MAX_RATE (RunTask calls per second; default 1, the quota of 60 per minute)
  --routes JSON|FILE     RERUN_ROUTES (a file is read here and its JSON deployed inline)
  --log-level LEVEL      LOG_LEVEL (fatal, error, warn, info, debug, trace, silent)
  --notify-topic NAME    RERUN_NOTIFY_TOPIC, projects/P/topics/T: run summaries are published there (the
                         runtime account gets roles/pubsub.publisher on it)
  --control-queue NAME   RERUN_CONTROL_QUEUE (default projects/P/locations/REGION/queues/PREFIX-control,
                         created here with maxAttempts -1 and the RunTask quota as its rate)
  --no-control-queue     no control queue (exactly once holds across instances only with one)
  --abandon-control-queue-tasks
                         move off the deployed control queue (another --control-queue, --no-control-queue,
                         --delete) even while it holds tasks: its claims and queued work are lost, and a
                         redrive move it was to settle may run its task twice. Without it, such a run is
                         refused before anything is changed
  --invoker-sa EMAIL     RERUN_INVOKER_SA: the account whose OIDC token control tasks carry
                         (default PREFIX-invoker, created here)
  --self-url URL         RERUN_SELF_URL (default the service's URL, https://SERVICE-NUMBER.REGION.run.app)

What to do:
  --dry-run              print every gcloud command, run none (lookups print their command and assume a
                         first deployment: nothing exists yet)
  --delete               remove everything this product created in the project under PREFIX, whatever the
                         other flags (APIs stay enabled, your queues and their tasks are never touched, nor
                         the parking queues and their parked tasks)
  -h, --help             this text

CLOUD_TASKS_EMULATOR_HOST is never deployed.
EOF
}

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 2
}

# SHA-256 of files or of standard input: coreutils' sha256sum, or shasum where there is none (macOS).
SHA256=(sha256sum)
command -v sha256sum >/dev/null 2>&1 || SHA256=(shasum -a 256)

# --- Inputs: flags first, then the environment ---------------------------------------------------------

PROJECT=${GOOGLE_CLOUD_PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}
REGION=${GOOGLE_CLOUD_REGION:-}
NAME=${DEPLOY_NAME:-rerun}
SCHEDULE=${DEPLOY_SCHEDULE:-'*/15 * * * *'}
TIME_ZONE=${DEPLOY_TIME_ZONE:-Etc/UTC}
SWEEP=true
CLOUD_BUILDS=${DEPLOY_CLOUD_BUILDS:-false}
REDRIVE=false
PARK=false
CONTROL_QUEUE_ON=true
ABANDON_CONTROL_TASKS=false
DRY_RUN=false
DELETE=false
QUEUE_ARGS=()
INVOKERS=()
ACT_AS=()
POLICY_FILES=()
NOTIFY_CHANNELS=()
if [[ -n ${DEPLOY_INVOKERS:-} ]]; then IFS=, read -r -a INVOKERS <<<"$DEPLOY_INVOKERS"; fi
if [[ -n ${DEPLOY_NOTIFY_CHANNELS:-} ]]; then IFS=, read -r -a NOTIFY_CHANNELS <<<"$DEPLOY_NOTIFY_CHANNELS"; fi

# The service's configuration, key for key as shared/platform/config.ts names it (CLOUD_TASKS_EMULATOR_HOST excepted).
CONFIG_KEYS=(RERUN_QUEUES RERUN_MAX_TASKS RERUN_CONCURRENCY RERUN_MAX_RATE RERUN_TIME_BUDGET
  RERUN_SERVICE_TIMEOUT RERUN_ACK_DEADLINE RERUN_ROUTES RERUN_CONTROL_QUEUE RERUN_SELF_URL RERUN_INVOKER_SA
  RERUN_NOTIFY_TOPIC RERUN_REDRIVE_CONCURRENCY RERUN_REDRIVE_BATCH RERUN_PARK RERUN_SWEEP_PERIOD LOG_LEVEL)
# Set by deploy.sh from what it deploys, never from the environment.
DERIVED_KEYS=(RERUN_SERVICE_TIMEOUT RERUN_ACK_DEADLINE)
declare -A CONFIG=()
for key in "${CONFIG_KEYS[@]}"; do
  if [[ " ${DERIVED_KEYS[*]} " != *" $key "* && -n ${!key:-} ]]; then CONFIG[$key]=${!key}; fi
done

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  flag=$1
  value=
  if [[ $flag == --*=* ]]; then
    value=${flag#*=}
    flag=${flag%%=*}
    set -- "$flag" "$value" "${@:2}"
  fi
  case $flag in
    --project) need_value "$@"; PROJECT=$2; shift 2 ;;
    --region) need_value "$@"; REGION=$2; shift 2 ;;
    --name) need_value "$@"; NAME=$2; shift 2 ;;
    --queue) need_value "$@"; QUEUE_ARGS+=("$2"); shift 2 ;;
    --queues)
      need_value "$@"
      IFS=, read -r -a more <<<"$2"
      QUEUE_ARGS+=("${more[@]}")
      shift 2
      ;;
    --invoker) need_value "$@"; INVOKERS+=("$2"); shift 2 ;;
    --redrive) REDRIVE=true; shift ;;
    --redrive-act-as) need_value "$@"; ACT_AS+=("$2"); shift 2 ;;
    --park) PARK=true; shift ;;
    --sweep-period) need_value "$@"; CONFIG[RERUN_SWEEP_PERIOD]=$2; shift 2 ;;
    --schedule) need_value "$@"; SCHEDULE=$2; shift 2 ;;
    --time-zone) need_value "$@"; TIME_ZONE=$2; shift 2 ;;
    --no-sweep) SWEEP=false; shift ;;
    --cloud-builds) CLOUD_BUILDS=true; shift ;;
    --alert-policy) need_value "$@"; POLICY_FILES+=("$2"); shift 2 ;;
    --notify-channel) need_value "$@"; NOTIFY_CHANNELS+=("$2"); shift 2 ;;
    --time-budget) need_value "$@"; CONFIG[RERUN_TIME_BUDGET]=$2; shift 2 ;;
    --max-tasks) need_value "$@"; CONFIG[RERUN_MAX_TASKS]=$2; shift 2 ;;
    --concurrency) need_value "$@"; CONFIG[RERUN_CONCURRENCY]=$2; shift 2 ;;
    --redrive-concurrency) need_value "$@"; CONFIG[RERUN_REDRIVE_CONCURRENCY]=$2; shift 2 ;;
    --max-rate) need_value "$@"; CONFIG[RERUN_MAX_RATE]=$2; shift 2 ;;
    --routes) need_value "$@"; CONFIG[RERUN_ROUTES]=$2; shift 2 ;;
    --log-level) need_value "$@"; CONFIG[LOG_LEVEL]=$2; shift 2 ;;
    --notify-topic) need_value "$@"; CONFIG[RERUN_NOTIFY_TOPIC]=$2; shift 2 ;;
    --control-queue) need_value "$@"; CONFIG[RERUN_CONTROL_QUEUE]=$2; shift 2 ;;
    --no-control-queue) CONTROL_QUEUE_ON=false; shift ;;
    --abandon-control-queue-tasks) ABANDON_CONTROL_TASKS=true; shift ;;
    --invoker-sa) need_value "$@"; CONFIG[RERUN_INVOKER_SA]=$2; shift 2 ;;
    --self-url) need_value "$@"; CONFIG[RERUN_SELF_URL]=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    --delete) DELETE=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# --- Validation: the same rules as shared/cloud-tasks/names.ts and shared/platform/config.ts, before any gcloud call ----------

# shared/cloud-tasks/names.ts: PROJECT_ID, LOCATION_ID, QUEUE_ID.
PROJECT_RE='^([a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]$'
LOCATION_RE='^[a-z][a-z0-9-]{0,62}$'
QUEUE_ID_RE='^[A-Za-z0-9-]{1,100}$'
EMAIL_RE='^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$'

[[ -n $PROJECT ]] || die "no project: pass --project ID (or set GOOGLE_CLOUD_PROJECT)"
[[ $PROJECT =~ $PROJECT_RE ]] || die "--project \"$PROJECT\" is not a project ID"
[[ $NAME =~ ^[a-z][a-z0-9-]{0,20}[a-z0-9]$ ]] ||
  die "--name \"$NAME\" must be 2-22 lowercase letters, digits or hyphens, starting with a letter"

# Checks one full queue name; prints "location queue-id" for it. WILDCARD=allow accepts `*` as queue id.
parse_queue() {
  local what=$1 name=$2 wildcard=${3:-} project='' location='' queue=''
  if [[ $name =~ ^projects/([^/]+)/locations/([^/]+)/queues/([^/]+)$ ]]; then
    project=${BASH_REMATCH[1]} location=${BASH_REMATCH[2]} queue=${BASH_REMATCH[3]}
  fi
  if [[ $queue == '*' && $wildcard == allow && $project != *'*'* && $location != *'*'* ]]; then
    queue=wildcard
  elif [[ $name == *'*'* ]]; then
    die "$what \"$name\" has a wildcard outside the queue segment: name the project and the location"
  fi
  if ! [[ $project =~ $PROJECT_RE && $location =~ $LOCATION_RE && $queue =~ $QUEUE_ID_RE ]]; then
    die "$what \"$name\" is not a queue name projects/P/locations/L/queues/Q (Cloud Tasks' rules)"
  fi
  if [[ $project != "$PROJECT" ]]; then
    die "$what \"$name\" is in project $project, not in the deploy project $PROJECT: deploy once per project"
  fi
  if [[ $queue == wildcard ]]; then queue='*'; fi
  printf '%s %s\n' "$location" "$queue"
}

if [[ ${#QUEUE_ARGS[@]} -eq 0 && -n ${CONFIG[RERUN_QUEUES]:-} ]]; then
  IFS=, read -r -a QUEUE_ARGS <<<"${CONFIG[RERUN_QUEUES]}"
fi
QUEUES=()      # full names, in order, without duplicates
QUEUE_WHERE=() # "location queue-id" for each (queue-id `*` for a wildcard)
WILDCARD=false
for raw in "${QUEUE_ARGS[@]}"; do
  queue_name=${raw#"${raw%%[![:space:]]*}"}
  queue_name=${queue_name%"${queue_name##*[![:space:]]}"}
  [[ -n $queue_name ]] || continue
  where=$(parse_queue queue "$queue_name" allow)
  # shared/platform/config.ts: a parking queue is reached only through its home queue, never named.
  if [[ $where == *-parked ]]; then
    die "queue \"$queue_name\" is a parking queue (its ID ends in -parked): name its home queue (docs/parking.md)"
  fi
  if [[ " ${QUEUES[*]} " == *" $queue_name "* ]]; then continue; fi
  QUEUES+=("$queue_name")
  QUEUE_WHERE+=("$where")
  if [[ $where == *' *' ]]; then WILDCARD=true; fi
done
if ! $DELETE; then
  [[ ${#QUEUES[@]} -gt 0 ]] || die "no queues: pass --queue projects/$PROJECT/locations/L/queues/Q (or set RERUN_QUEUES)"
  CONFIG[RERUN_QUEUES]=$(IFS=,; echo "${QUEUES[*]}")
fi

if [[ -z $REGION && ${#QUEUE_WHERE[@]} -gt 0 ]]; then REGION=${QUEUE_WHERE[0]%% *}; fi
[[ -n $REGION ]] || die "no region: pass --region (or a --queue, whose location is the default)"
[[ $REGION =~ $LOCATION_RE ]] || die "--region \"$REGION\" is not a region like us-central1"

# shared/platform/duration.ts: a number and a unit. The budget must fit, with a margin, in the service's timeout
# and in the push subscriptions' ack deadline (both 600s; shared/platform/config.ts checks the same at start-up).
SERVICE_TIMEOUT_S=600
ACK_DEADLINE_S=600
TIMEOUT_MARGIN_S=10
CONFIG[RERUN_SERVICE_TIMEOUT]=${SERVICE_TIMEOUT_S}s
CONFIG[RERUN_ACK_DEADLINE]=${ACK_DEADLINE_S}s
CONFIG[RERUN_TIME_BUDGET]=${CONFIG[RERUN_TIME_BUDGET]:-50s}
budget=${CONFIG[RERUN_TIME_BUDGET]}
[[ $budget =~ ^([0-9]+(\.[0-9]+)?)(ms|s|m|h)$ ]] || die "RERUN_TIME_BUDGET \"$budget\" is not a duration like 50s or 5m"
case ${BASH_REMATCH[3]} in ms) unit_ms=1 ;; s) unit_ms=1000 ;; m) unit_ms=60000 ;; h) unit_ms=3600000 ;; esac
budget_s=$(awk -v n="${BASH_REMATCH[1]}" -v u="$unit_ms" 'BEGIN { ms = int(n * u + 0.5); s = int(ms / 1000); if (s * 1000 < ms) s++; print s }')
((budget_s + TIMEOUT_MARGIN_S <= SERVICE_TIMEOUT_S)) ||
  die "RERUN_TIME_BUDGET \"$budget\" does not fit: the service's timeout and the push ack deadline are ${SERVICE_TIMEOUT_S}s, so the budget is at most $((SERVICE_TIMEOUT_S - TIMEOUT_MARGIN_S))s (queued mode goes on past it)"

# shared/platform/config.ts: integer ranges, rate, level, URL, e-mail, topic.
check_int() {
  local key=$1 min=$2 max=$3 value=${CONFIG[$1]:-}
  [[ -z $value ]] && return 0
  if ! { [[ $value =~ ^[0-9]{1,9}$ ]] && ((10#$value >= min && 10#$value <= max)); }; then
    die "$key \"$value\" must be a whole number from $min to $max"
  fi
}
check_int RERUN_MAX_TASKS 1 100000
check_int RERUN_CONCURRENCY 1 100
check_int RERUN_REDRIVE_CONCURRENCY 1 500
if [[ -n ${CONFIG[RERUN_REDRIVE_BATCH]:-} && ! ${CONFIG[RERUN_REDRIVE_BATCH]} =~ ^(true|false)$ ]]; then
  die "RERUN_REDRIVE_BATCH \"${CONFIG[RERUN_REDRIVE_BATCH]}\" must be true or false"
fi
if [[ -n ${CONFIG[RERUN_MAX_RATE]:-} ]]; then
  rate=${CONFIG[RERUN_MAX_RATE]}
  if ! { [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0 && r <= 500) }'; }; then
    die "RERUN_MAX_RATE \"$rate\" must be a number above 0 and at most 500 (calls per second)"
  fi
fi
CONFIG[RERUN_MAX_RATE]=${CONFIG[RERUN_MAX_RATE]:-1}
if [[ -n ${CONFIG[LOG_LEVEL]:-} ]]; then
  [[ ${CONFIG[LOG_LEVEL]} =~ ^(fatal|error|warn|info|debug|trace|silent)$ ]] ||
    die "LOG_LEVEL \"${CONFIG[LOG_LEVEL]}\" must be one of fatal, error, warn, info, debug, trace, silent"
fi
if [[ -n ${CONFIG[RERUN_SELF_URL]:-} ]]; then
  [[ ${CONFIG[RERUN_SELF_URL]} =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?([/?#][^[:space:]]*)?$ ]] ||
    die "RERUN_SELF_URL \"${CONFIG[RERUN_SELF_URL]}\" is not an http(s) URL"
fi
if [[ -n ${CONFIG[RERUN_INVOKER_SA]:-} ]]; then
  [[ ${CONFIG[RERUN_INVOKER_SA]} =~ $EMAIL_RE ]] ||
    die "RERUN_INVOKER_SA \"${CONFIG[RERUN_INVOKER_SA]}\" is not a service account e-mail"
fi
if [[ -n ${CONFIG[RERUN_NOTIFY_TOPIC]:-} ]]; then
  [[ ${CONFIG[RERUN_NOTIFY_TOPIC]} =~ ^projects/[^/]+/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$ ]] ||
    die "RERUN_NOTIFY_TOPIC \"${CONFIG[RERUN_NOTIFY_TOPIC]}\" is not a topic name projects/P/topics/T"
fi
if [[ -n ${CONFIG[RERUN_ROUTES]:-} ]]; then
  routes=${CONFIG[RERUN_ROUTES]}
  if [[ ! $routes =~ ^[[:space:]]*[\[{] ]]; then
    [[ -f $routes && -r $routes ]] || die "RERUN_ROUTES \"$routes\" is neither JSON nor a readable file"
    CONFIG[RERUN_ROUTES]=$(<"$routes")
  fi
fi
for key in "${CONFIG_KEYS[@]}"; do
  value=${CONFIG[$key]:-}
  value=${value//[$'\n\r\t']/}
  if [[ $value =~ [[:cntrl:]] ]]; then die "$key has a control character"; fi
done

for member in "${INVOKERS[@]}"; do
  case $member in
    allUsers | allAuthenticatedUsers)
      die "--invoker $member would open rerunHttp to anyone: name the callers (e.g. serviceAccount:EMAIL)" ;;
    *[[:space:]]*) die "--invoker \"$member\" has a space" ;;
    user:?* | serviceAccount:?* | group:?* | domain:?* | principal:?* | principalSet:?*) ;;
    *) die "--invoker \"$member\" is not an IAM member like serviceAccount:EMAIL, user:EMAIL or group:EMAIL" ;;
  esac
done
for account in "${ACT_AS[@]}"; do
  [[ $account =~ $EMAIL_RE ]] || die "--redrive-act-as \"$account\" is not a service account e-mail"
done
if [[ ${CONFIG[RERUN_PARK]:-} == true ]]; then PARK=true; fi
if [[ -n ${CONFIG[RERUN_PARK]:-} && ! ${CONFIG[RERUN_PARK]} =~ ^(true|false)$ ]]; then
  die "RERUN_PARK \"${CONFIG[RERUN_PARK]}\" must be true or false"
fi
if [[ ${#ACT_AS[@]} -gt 0 ]] && ! $REDRIVE && ! $PARK; then die "--redrive-act-as needs --redrive or --park"; fi
for channel in "${NOTIFY_CHANNELS[@]}"; do
  [[ $channel =~ ^projects/[^/]+/notificationChannels/[0-9]+$ ]] ||
    die "--notify-channel \"$channel\" is not a channel name projects/P/notificationChannels/ID"
done
for file in "${POLICY_FILES[@]}"; do
  [[ -f $file && -r $file ]] || die "--alert-policy \"$file\" is not a readable file"
  grep -q '"CLOSED"' "$file" ||
    die "--alert-policy \"$file\" must ask for notificationPrompts [\"OPENED\", \"CLOSED\"]: a closed incident is what starts a rerun"
done

[[ $SCHEDULE =~ ^[^[:space:]]+([[:space:]]+[^[:space:]]+){4}$ ]] ||
  die "--schedule \"$SCHEDULE\" is not a unix-cron schedule of 5 fields, e.g. '*/15 * * * *'"
[[ $TIME_ZONE =~ ^[A-Za-z0-9_+/-]+$ ]] || die "--time-zone \"$TIME_ZONE\" is not a time zone like Etc/UTC"
# Parking protects what may be dropped before the next sweep: the service must know the sweep's period.
# '*/N * * * *' runs every N minutes (N from 1 to 59), 'M * * * *' every hour; any other schedule needs
# --sweep-period.
if $PARK && ! $DELETE; then
  $SWEEP || die "--park needs the sweep (not --no-sweep): parking runs on it"
  if [[ -z ${CONFIG[RERUN_SWEEP_PERIOD]:-} ]]; then
    if [[ $SCHEDULE =~ ^\*/([0-9]{1,2})[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*$ ]] &&
      ((10#${BASH_REMATCH[1]} >= 1 && 10#${BASH_REMATCH[1]} <= 59)); then
      CONFIG[RERUN_SWEEP_PERIOD]=$((10#${BASH_REMATCH[1]}))m
    elif [[ $SCHEDULE =~ ^([0-9]{1,2})[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*$ ]] &&
      ((10#${BASH_REMATCH[1]} <= 59)); then
      CONFIG[RERUN_SWEEP_PERIOD]=60m
    else
      die "--park needs --sweep-period D (e.g. 15m): the period of --schedule \"$SCHEDULE\" is read only from '*/N * * * *' or 'M * * * *'"
    fi
  fi
  [[ ${CONFIG[RERUN_SWEEP_PERIOD]} =~ ^[0-9]+(\.[0-9]+)?(ms|s|m|h)$ ]] ||
    die "RERUN_SWEEP_PERIOD \"${CONFIG[RERUN_SWEEP_PERIOD]}\" is not a duration like 15m"
  CONFIG[RERUN_PARK]=true
else
  unset 'CONFIG[RERUN_PARK]' 'CONFIG[RERUN_SWEEP_PERIOD]'
fi
[[ $CLOUD_BUILDS == true || $CLOUD_BUILDS == false ]] || die "DEPLOY_CLOUD_BUILDS must be true or false"
if ! $DRY_RUN && ! $DELETE; then
  if ! { [[ -f $SOURCE_DIR/package.json && -f $SOURCE_DIR/.gcloudignore ]] &&
    grep -q '"gcp-build"' "$SOURCE_DIR/package.json"; }; then
    die "$SOURCE_DIR is not the cloud-tasks-rerun source (package.json with gcp-build, .gcloudignore)"
  fi
fi

# --- Names ----------------------------------------------------------------------------------------------

# A service account's e-mail (domain-scoped projects `example.com:p` give `p.example.com`).
sa_email() {
  if [[ $PROJECT == *:* ]]; then
    printf '%s@%s.%s.iam.gserviceaccount.com' "$1" "${PROJECT#*:}" "${PROJECT%%:*}"
  else
    printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT"
  fi
}

SERVICE=$NAME-http
TOPIC=$NAME
DEAD_LETTER=$NAME-dead-letter
PUSH_SUB=$NAME-push
BUILDS_TOPIC=cloud-builds
BUILDS_SUB=$NAME-builds-push
JOB=$NAME-sweep
DASHBOARD_ID=$NAME-overview
RUNTIME_SA=$(sa_email "$NAME-runtime")
PUSH_SA=$(sa_email "$NAME-push")
BUILD_SA=$(sa_email "$NAME-build")
INVOKER_SA_OWN=$(sa_email "$NAME-invoker")
ROLE_PREFIX=${NAME//-/_}
RUNNER_ROLE=${ROLE_PREFIX}_runner
REDRIVE_ROLE=${ROLE_PREFIX}_redrive
LISTER_ROLE=${ROLE_PREFIX}_lister
CONTROL_ROLE=${ROLE_PREFIX}_control
OPERATIONS_ROLE=${ROLE_PREFIX}_operations
PARK_ROLE=${ROLE_PREFIX}_park
RUNNER_PERMISSIONS=cloudtasks.queues.get,cloudtasks.tasks.get,cloudtasks.tasks.list,cloudtasks.tasks.run
REDRIVE_PERMISSIONS=cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.fullView
LISTER_PERMISSIONS=cloudtasks.queues.list
# On each parking queue: its state (it must stay PAUSED), its parked tasks listed and read with their
# bodies, parked copies created and deleted (docs/parking.md).
PARK_PERMISSIONS=cloudtasks.queues.get,cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.fullView,cloudtasks.tasks.get,cloudtasks.tasks.list
CONTROL_PERMISSIONS=cloudtasks.queues.get,cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.get,cloudtasks.tasks.list
# Batch redrive reads the operations tasks:batchCreate and tasks:batchDelete answer with
# (v2/projects/*/locations/*/operations/*). A batch delete is checked as cloudtasks.tasks.delete (the
# redrive role's): IAM knows no cloudtasks.tasks.batchDelete, and a role naming it could not be created.
OPERATIONS_PERMISSIONS=cloudtasks.operations.get
# With --redrive, the service redrives by batch unless the deployment turns batches off.
REDRIVE_BATCH=false
if $REDRIVE && [[ ${CONFIG[RERUN_REDRIVE_BATCH]:-true} == true ]]; then REDRIVE_BATCH=true; fi
METRICS=("${NAME}_task_outcomes:task-outcomes-metric.json" "${NAME}_runs:runs-metric.json"
  "${NAME}_parked:parked-metric.json")
POLICY_LABEL=rerun_deployment
CONTROL_OWN=projects/$PROJECT/locations/$REGION/queues/$NAME-control
if $CONTROL_QUEUE_ON; then
  CONFIG[RERUN_CONTROL_QUEUE]=${CONFIG[RERUN_CONTROL_QUEUE]:-$CONTROL_OWN}
  CONFIG[RERUN_INVOKER_SA]=${CONFIG[RERUN_INVOKER_SA]:-$INVOKER_SA_OWN}
  CONTROL_WHERE=$(parse_queue --control-queue "${CONFIG[RERUN_CONTROL_QUEUE]}")
  if [[ " ${QUEUES[*]} " == *" ${CONFIG[RERUN_CONTROL_QUEUE]} "* ]]; then
    die "--control-queue ${CONFIG[RERUN_CONTROL_QUEUE]} is in the allowlist: the control queue is never a rerun target"
  fi
else
  unset 'CONFIG[RERUN_CONTROL_QUEUE]' 'CONFIG[RERUN_INVOKER_SA]' 'CONFIG[RERUN_SELF_URL]'
  CONTROL_WHERE=
fi
SWEEP_BODY="{\"kind\":\"sweep\",\"reason\":\"Cloud Scheduler job $JOB\"}"
APIS=(run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com pubsub.googleapis.com
  cloudscheduler.googleapis.com cloudtasks.googleapis.com iam.googleapis.com monitoring.googleapis.com
  logging.googleapis.com)

# --- Running gcloud -------------------------------------------------------------------------------------

COMMON=("--project=$PROJECT" --quiet)
FRESH_ACCOUNTS=() # accounts this run creates: IAM may take a moment to see them
RETRIES=${DEPLOY_RETRIES:-6}
RETRY_DELAY_S=${DEPLOY_RETRY_DELAY:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-rerun.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# gcloud's answers for a resource that is not there, and nothing else (a bare "404" could be a project
# number): NOT_FOUND from the APIs, Cloud Run's "Cannot find service", IAM's missing binding (worded
# with the condition by the commands that take one, without it by the others).
NOT_FOUND_RE='NOT_FOUND|Cannot find service|Policy bindings? with the specified principal(, role, and condition| and role) not found|Resource not found \(resource='

# Appends one word to LINE, quoted for a shell only when it needs it, so printed commands can be pasted.
append_quoted() {
  local word=$1 prefix=''
  if [[ -n $word && $word =~ ^[A-Za-z0-9_./:=@,+%-]*$ ]]; then
    LINE+=" $word"
    return
  fi
  if [[ $word =~ ^(--[a-z0-9-]+=)(.*)$ ]]; then
    prefix=${BASH_REMATCH[1]}
    word=${BASH_REMATCH[2]}
  fi
  LINE+=" $prefix'${word//\'/\'\\\'\'}'"
}

# Prints a gcloud command: the plan in a dry run, a trace otherwise.
show() {
  local word
  LINE=gcloud
  for word in "$@" "${COMMON[@]}"; do append_quoted "$word"; done
  if $DRY_RUN; then printf '%s\n' "$LINE"; else printf '+ %s\n' "$LINE"; fi
}

note() {
  if $DRY_RUN; then printf '# %s\n' "$*"; else printf '==> %s\n' "$*"; fi
}

failed() {
  printf 'deploy.sh: this gcloud command failed:\n  gcloud' >&2
  printf ' %s' "$@" >&2
  printf '\n' >&2
  if [[ -s $WORK/out ]]; then sed 's/^/  | /' "$WORK/out" >&2; fi
  exit 1
}

# Runs a gcloud command, its output shown as it comes.
run() {
  show "$@"
  $DRY_RUN && return 0
  : >"$WORK/out"
  gcloud "$@" "${COMMON[@]}" || failed "$@"
}

# Runs a gcloud command; a failure whose output matches PATTERN counts as done (NOTE says so).
run_tolerating() {
  local pattern=$1 done_note=$2
  shift 2
  show "$@"
  $DRY_RUN && return 0
  if gcloud "$@" "${COMMON[@]}" >"$WORK/out" 2>&1; then return 0; fi
  if grep -qE "$pattern" "$WORK/out"; then
    note "  $done_note"
    return 0
  fi
  failed "$@"
}

# Runs a delete command; "not found" counts as done.
remove() { run_tolerating "$NOT_FOUND_RE" 'already gone' "$@"; }

# Runs a command that names an account this run may have created a moment ago: IAM may not see it yet
# ("does not exist"), so that answer is retried for about a minute. Eventarc is not used (push
# subscriptions deliver every message), so its first-run service-agent race cannot happen here.
patient() {
  show "$@"
  $DRY_RUN && return 0
  local attempt=1 fresh=false account
  for account in "${FRESH_ACCOUNTS[@]}"; do
    if [[ " $* " == *"$account"* ]]; then fresh=true; fi
  done
  until gcloud "$@" "${COMMON[@]}" >"$WORK/out" 2>&1; do
    if ! $fresh || ((attempt >= RETRIES)) || ! grep -qE 'does not exist|is not a valid service account' "$WORK/out"; then
      failed "$@"
    fi
    note "  the account is not visible to IAM yet; trying again in ${RETRY_DELAY_S}s"
    sleep "$RETRY_DELAY_S"
    attempt=$((attempt + 1))
  done
}

# Runs a read-only lookup into REPLY. Returns 1 when the thing is not there (NOT_FOUND or nothing
# listed). A dry run prints the command and takes the answer of a first deployment: $1, empty = not there.
lookup() {
  local dry_answer=$1
  shift
  show "$@"
  REPLY=
  if $DRY_RUN; then
    REPLY=$dry_answer
    [[ -n $REPLY ]]
    return
  fi
  if REPLY=$(gcloud "$@" "${COMMON[@]}" 2>"$WORK/out"); then
    [[ -n $REPLY ]]
    return
  fi
  grep -qE "$NOT_FOUND_RE" "$WORK/out" && return 1
  failed "$@"
}

# --- IAM: read a resource's policy, then add what is missing and remove what is no longer wanted ----------

# The gcloud words that name a resource for its IAM commands: KIND ID (queue ids are "location queue").
iam_words() {
  local kind=$1 id=$2
  case $kind in
    queue) IAM_GROUP=(tasks queues) IAM_TARGET=("${id#* }" "--location=${id%% *}") ;;
    project) IAM_GROUP=(projects) IAM_TARGET=("$PROJECT") ;;
    service) IAM_GROUP=(run services) IAM_TARGET=("$SERVICE" "--region=$REGION") ;;
    account) IAM_GROUP=(iam service-accounts) IAM_TARGET=("$id") ;;
    topic) IAM_GROUP=(pubsub topics) IAM_TARGET=("$id") ;;
    subscription) IAM_GROUP=(pubsub subscriptions) IAM_TARGET=("$id") ;;
  esac
}

# The roles MEMBER holds on a resource, one a line, into REPLY (empty when the resource is not there).
roles_of() {
  local kind=$1 id=$2 member=$3
  iam_words "$kind" "$id"
  lookup '' "${IAM_GROUP[@]}" get-iam-policy "${IAM_TARGET[@]}" '--flatten=bindings[].members' \
    "--filter=bindings.members=$member" '--format=value(bindings.role)' || true
}

# The members holding ROLE on a resource, one a line, into REPLY.
members_of() {
  local kind=$1 id=$2 role=$3
  iam_words "$kind" "$id"
  lookup '' "${IAM_GROUP[@]}" get-iam-policy "${IAM_TARGET[@]}" '--flatten=bindings[].members' \
    "--filter=bindings.role=$role" '--format=value(bindings.members)' || true
}

bind() {
  local kind=$1 id=$2 member=$3 role=$4 extra=()
  iam_words "$kind" "$id"
  if [[ $kind == project ]]; then extra=(--condition=None); fi
  patient "${IAM_GROUP[@]}" add-iam-policy-binding "${IAM_TARGET[@]}" "--member=$member" "--role=$role" "${extra[@]}"
}

unbind() {
  local kind=$1 id=$2 member=$3 role=$4 extra=()
  iam_words "$kind" "$id"
  if [[ $kind == project ]]; then extra=(--condition=None); fi
  remove "${IAM_GROUP[@]}" remove-iam-policy-binding "${IAM_TARGET[@]}" "--member=$member" "--role=$role" "${extra[@]}"
}

# converge KIND ID MEMBER MANAGED_ROLES WANTED_ROLES: of the roles this product manages (space-separated),
# MEMBER ends up holding exactly the wanted ones on the resource; other roles are left alone.
converge() {
  local kind=$1 id=$2 member=$3 managed=" $4 " wanted=" $5 " role held
  roles_of "$kind" "$id" "$member"
  held=" ${REPLY//$'\n'/ } "
  for role in $5; do
    if [[ $held != *" $role "* ]]; then bind "$kind" "$id" "$member" "$role"; fi
  done
  for role in $held; do
    if [[ $managed == *" $role "* && $wanted != *" $role "* ]]; then unbind "$kind" "$id" "$member" "$role"; fi
  done
}

# --- Parking queues ------------------------------------------------------------------------------------

# The parking queue's ID of a queue ID (shared/cloud-tasks/names.ts parkingQueueOf): ID-parked, or a hashed
# form within the 100 characters of a queue ID.
parking_id() {
  local id=$1
  if ((${#id} + 7 <= 100)); then
    printf '%s-parked' "$id"
    return
  fi
  printf '%s-%s-parked' "${id:0:84}" "$(printf '%s' "$id" | "${SHA256[@]}" | cut -c1-8)"
}

# The full names of a location's queues, one a line, into REPLY (listed once per run).
declare -A LISTED=()
queues_of_location() {
  local location=$1
  if [[ -z ${LISTED[$location]+set} ]]; then
    lookup '' tasks queues list "--location=$location" '--format=value(name)' || true
    LISTED[$location]=$REPLY
  fi
  REPLY=${LISTED[$location]}
}

# parking_queues PARK: "location parking-id" of the parking queues this run wants (PARKING_WANTED: with
# --park, beside each allowlisted queue; for a `*` entry, beside each queue of the location now, leaving out
# parking queues and the control queue) and of those that may hold the park role and no longer should
# (PARKING_DROPPED, each followed by "listed" when the listing showed it exists, else "named"): beside the
# queues this run and the last one allowlisted, and for a `*` entry the location's parking queues.
parking_queues() {
  local park=$1 where location id name entries=() previous=()
  local -A is_wanted=() is_dropped=()
  PARKING_WANTED=()
  PARKING_DROPPED=()
  IFS=, read -r -a entries <<<"${PREVIOUS[RERUN_QUEUES]:-}"
  for name in "${entries[@]}"; do
    if [[ $name =~ ^projects/[^/]+/locations/([^/]+)/queues/([^/]+)$ ]]; then
      previous+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]}")
    fi
  done
  if $park; then
    for where in "${QUEUE_WHERE[@]}"; do
      read -r location id <<<"$where"
      if [[ $id != '*' ]]; then
        where="$location $(parking_id "$id")"
        if [[ -z ${is_wanted[$where]:-} ]]; then PARKING_WANTED+=("$where"); fi
        is_wanted[$where]=1
        continue
      fi
      note "projects/$PROJECT/locations/$location/queues/*: a parking queue beside each queue there now; a queue created later gets its parking queue on the next deploy run"
      queues_of_location "$location"
      while IFS= read -r name; do
        id=${name##*/}
        if [[ -z $name || $id == *-parked || $name == "${CONFIG[RERUN_CONTROL_QUEUE]:-}" ]]; then continue; fi
        where="$location $(parking_id "$id")"
        if [[ -z ${is_wanted[$where]:-} ]]; then PARKING_WANTED+=("$where"); fi
        is_wanted[$where]=1
      done <<<"$REPLY"
    done
  fi
  for where in "${QUEUE_WHERE[@]}" "${previous[@]}"; do
    read -r location id <<<"$where"
    if [[ $id != '*' ]]; then
      where="$location $(parking_id "$id")"
      if [[ -z ${is_wanted[$where]:-} && -z ${is_dropped[$where]:-} ]]; then PARKING_DROPPED+=("$where named"); fi
      is_dropped[$where]=1
      continue
    fi
    queues_of_location "$location"
    while IFS= read -r name; do
      id=${name##*/}
      [[ $id == *-parked ]] || continue
      where="$location $id"
      if [[ -z ${is_wanted[$where]:-} && -z ${is_dropped[$where]:-} ]]; then PARKING_DROPPED+=("$where listed"); fi
      is_dropped[$where]=1
    done <<<"$REPLY"
  done
}

# Creates the parking queue if it is missing, and pauses it unless it is PAUSED.
ensure_parking_queue() {
  local location id state=''
  read -r location id <<<"$1"
  if lookup '' tasks queues describe "$id" "--location=$location" '--format=value(state)'; then
    state=$REPLY
  else
    run tasks queues create "$id" "--location=$location"
  fi
  if [[ $state != PAUSED ]]; then run tasks queues pause "$id" "--location=$location"; fi
}

# Takes the park role (ROLE) back from MEMBER on each parking queue of PARKING_DROPPED that exists. The
# queues stay, PAUSED, with their parked tasks: never deleted, never resumed.
take_back_parking() {
  local member=$1 role=$2 entry location id how
  for entry in "${PARKING_DROPPED[@]}"; do
    read -r location id how <<<"$entry"
    if [[ $how != listed ]] && ! lookup '' tasks queues describe "$id" "--location=$location" '--format=value(name)'; then
      continue
    fi
    converge queue "$location $id" "$member" "$role" ''
  done
}

# --- What the previous deployment left --------------------------------------------------------------------

# Reads the deployed service: its labels (REPLY_LABELS) and configuration (PREVIOUS[KEY]).
declare -A PREVIOUS=()
read_previous() {
  PREVIOUS=()
  lookup '' run services describe "$SERVICE" "--region=$REGION" \
    '--format=yaml(metadata.labels,spec.template.spec.containers[0].env)' || return 0
  local line key='' value
  while IFS= read -r line; do
    if [[ $line =~ ^[[:space:]]*-[[:space:]]name:[[:space:]](.*)$ ]]; then
      key=${BASH_REMATCH[1]}
    elif [[ -n $key && $line =~ ^[[:space:]]+value:[[:space:]](.*)$ ]]; then
      value=${BASH_REMATCH[1]}
      value=${value#[\'\"]}
      PREVIOUS[$key]=${value%[\'\"]}
      key=''
    elif [[ $line =~ ^[[:space:]]+(rerun-source|rerun-config):[[:space:]](.*)$ ]]; then
      PREVIOUS[label:${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    fi
  done <<<"$REPLY"
}

# "location queue" for each queue of a comma-separated list (wildcards and bad names left out).
where_of_list() {
  local name list=$1
  WHERE_LIST=()
  IFS=, read -r -a names <<<"$list"
  for name in "${names[@]}"; do
    if [[ $name =~ ^projects/[^/]+/locations/([^/]+)/queues/([^/*]+)$ ]]; then
      WHERE_LIST+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]}")
    fi
  done
}

# The accounts the runtime account may act as for redrive, as recorded in its description.
read_act_as() {
  ACT_AS_BEFORE=()
  lookup '' iam service-accounts describe "$RUNTIME_SA" '--format=value(description)' || return 0
  if [[ $REPLY =~ act-as:[[:space:]]*([^[:space:]]+) ]]; then
    IFS=, read -r -a ACT_AS_BEFORE <<<"${BASH_REMATCH[1]}"
  fi
}

# check_control_queue_empty NEW WHY: a run that stops using the deployed service's control queue (NEW is
# another queue, or empty) is refused while that queue holds tasks, unless --abandon-control-queue-tasks.
# Called before anything is changed (docs/deploy.md "Moving the control queue").
CONTROL_LIST_LIMIT=100
check_control_queue_empty() {
  local new=$1 why=$2 old=${PREVIOUS[RERUN_CONTROL_QUEUE]:-} location id count noun=tasks
  if [[ -z $old || $old == "$new" ]]; then return 0; fi
  where_of_list "$old"
  [[ ${#WHERE_LIST[@]} -eq 1 ]] || return 0
  read -r location id <<<"${WHERE_LIST[0]}"
  note "The control queue $old: left only once it holds no task"
  lookup '' tasks list "--queue=$id" "--location=$location" "--limit=$CONTROL_LIST_LIMIT" \
    "--page-size=$CONTROL_LIST_LIMIT" '--format=value(name)' || return 0
  count=$(grep -c . <<<"$REPLY")
  if ((count == 1)); then noun=task; fi
  if ((count >= CONTROL_LIST_LIMIT)); then count="at least $count"; fi
  if $ABANDON_CONTROL_TASKS; then
    note "WARNING: --abandon-control-queue-tasks: $old still holds $count $noun; they are abandoned"
    return 0
  fi
  die "the control queue $old still holds $count $noun, and this run would stop using it ($why).
  They are the deployed service's own work: claims and queued work of requests, recovery tasks of redrive
  moves not yet settled, and records (docs/claims.md). Left behind, the claims and queued work are lost, a
  move that is not settled runs its task twice, and a record no longer guards a request sent again.
  Nothing was created, granted, deleted or deployed. Wait until the queue is empty (claims and queued work
  within minutes, records up to 10 days), then run deploy.sh again. What waits there:
    gcloud tasks list --queue=$id --location=$location --project=$PROJECT
  The product's status and cancel count and stop a queued request's work (docs/cli.md \"status and
  cancel\"); never delete a recovery task or a record by hand. To go on and lose them anyway:
  --abandon-control-queue-tasks (docs/deploy.md \"Moving the control queue\")."
}

# --- Files: the service's environment, the monitoring JSON ---------------------------------------------

# YAML with JSON-escaped double-quoted values: gcloud's --set-env-vars would split RERUN_QUEUES at commas.
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

write_env_file() {
  local path=$1 key
  : >"$path"
  for key in "${CONFIG_KEYS[@]}"; do
    [[ -n ${CONFIG[$key]:-} ]] || continue
    {
      printf '%s: ' "$key"
      json_string "${CONFIG[$key]}"
      printf '\n'
    } >>"$path"
  done
  # Not configuration but V8 tuning: a small young generation keeps the memory of a long scan flat
  # (npm run bench: +5 MB instead of +32 MB peak RSS from 1k to 100k listed tasks, at the same CPU).
  printf '%s: %s\n' NODE_OPTIONS '"--max-semi-space-size=4"' >>"$path"
  note "environment in $path:"
  if $DRY_RUN; then sed 's/^/#   /' "$path"; else sed 's/^/      /' "$path"; fi
}

# A monitoring file of scripts/monitoring with its placeholders filled in, written to the work folder.
fill() {
  local from=$1 to=$WORK/${1##*/}
  sed -e "s|@PROJECT@|$PROJECT|g" -e "s|@NAME@|$NAME|g" -e "s|@SERVICE@|$SERVICE|g" "$from" >"$to"
  FILLED=$to
}

# A hash of what `gcloud run deploy --source` uploads (what .gcloudignore keeps), for the service label.
source_hash() {
  # One hashing process for all the files (the hash is the same as hashing them one by one).
  (
    cd "$SOURCE_DIR"
    find package.json package-lock.json tsconfig.json tsconfig.build.json .gcloudignore functions shared \
      -type f 2>/dev/null | LC_ALL=C sort | tr '\n' '\0' | xargs -0 "${SHA256[@]}"
  ) | "${SHA256[@]}" | cut -c1-40
}

text_hash() { printf '%s' "$1" | "${SHA256[@]}" | cut -c1-40; }

# --- Deploy ---------------------------------------------------------------------------------------------

# A custom role with exactly these permissions: created, undeleted (a deleted role keeps its id for
# weeks) or updated, whichever it needs.
ensure_role() {
  local role=$1 permissions=$2 title=$3
  if ! lookup '' iam roles describe "$role" '--format=yaml(name,deleted,includedPermissions)'; then
    run iam roles create "$role" "--title=$title" "--permissions=$permissions" --stage=GA \
      '--description=cloud-tasks-rerun (deploy.sh)'
    return
  fi
  local current
  current=$(sed -n 's/^- //p' <<<"$REPLY" | LC_ALL=C sort | paste -sd, -)
  if [[ $REPLY == *'deleted: true'* ]]; then run iam roles undelete "$role"; fi
  if [[ $current != "$permissions" ]]; then run iam roles update "$role" "--permissions=$permissions"; fi
}

ensure_account() {
  local id=$1 display=$2
  if ! lookup '' iam service-accounts describe "$(sa_email "$id")" '--format=value(email)'; then
    run iam service-accounts create "$id" "--display-name=$display"
    FRESH_ACCOUNTS+=("$(sa_email "$id")")
  fi
}

ensure_topic() {
  lookup '' pubsub topics describe "$1" '--format=value(name)' || run pubsub topics create "$1"
}

# A push subscription to the service: OIDC token of the push account, ack deadline, retry policy,
# dead-letter topic after a bounded number of deliveries. Created, or updated to these settings.
ensure_push_subscription() {
  local sub=$1 topic=$2 url=$3 verb=create settings
  if lookup '' pubsub subscriptions describe "$sub" '--format=value(name)'; then verb=update; fi
  settings=("--push-endpoint=$url" "--push-auth-service-account=$PUSH_SA" "--ack-deadline=$ACK_DEADLINE_S"
    --min-retry-delay=10s --max-retry-delay=600s "--dead-letter-topic=$DEAD_LETTER" --max-delivery-attempts=10)
  if [[ $verb == create ]]; then
    patient pubsub subscriptions create "$sub" "--topic=$topic" "${settings[@]}"
  else
    patient pubsub subscriptions update "$sub" "${settings[@]}"
  fi
}

# The service: deployed when its source or configuration changed, skipped when both labels match.
deploy_service() {
  local env_file=$1 source_label config_label
  source_label=$(source_hash)
  config_label=$(text_hash "$(<"$env_file") $RUNTIME_SA $BUILD_SA")
  if [[ ${PREVIOUS[label:rerun-source]:-} == "$source_label" && ${PREVIOUS[label:rerun-config]:-} == "$config_label" ]]; then
    note "$SERVICE is up to date (same source and configuration): not redeployed"
    return
  fi
  local labels="--update-labels=managed-by=cloud-tasks-rerun,rerun-source=$source_label,rerun-config=$config_label"
  local settings=("--region=$REGION" "--service-account=$RUNTIME_SA" "--env-vars-file=$env_file"
    "--timeout=${SERVICE_TIMEOUT_S}s" --max-instances=1 --concurrency=8 --cpu=1 --memory=512Mi "$labels")
  if [[ ${PREVIOUS[label:rerun-source]:-} == "$source_label" ]]; then
    note "$SERVICE: same source, new configuration: updated without a rebuild"
    patient run services update "$SERVICE" "${settings[@]}"
  else
    patient run deploy "$SERVICE" "--source=$SOURCE_DIR" --function=rerunHttp --base-image=nodejs22 \
      "--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SA" --no-allow-unauthenticated \
      "${settings[@]}"
  fi
}

deploy() {
  if $DRY_RUN; then
    note "dry run: the gcloud commands of a first deployment; none is run"
  fi
  local where location queue_id i

  note "Preflight: the project and every queue exist"
  lookup PROJECT_NUMBER projects describe "$PROJECT" '--format=value(projectNumber)' ||
    die "project $PROJECT not found, or not visible to the account gcloud uses"
  local number=$REPLY
  local url=https://$SERVICE-$number.$REGION.run.app
  MONITORING_AGENT=service-$number@gcp-sa-monitoring-notification.iam.gserviceaccount.com
  PUBSUB_AGENT=service-$number@gcp-sa-pubsub.iam.gserviceaccount.com
  for i in "${!QUEUES[@]}"; do
    read -r location queue_id <<<"${QUEUE_WHERE[$i]}"
    [[ $queue_id == '*' ]] && continue
    lookup "${QUEUES[$i]}" tasks queues describe "$queue_id" "--location=$location" '--format=value(name)' ||
      die "queue ${QUEUES[$i]} not found: create it first, or fix --queue"
  done

  note "APIs"
  run services enable "${APIS[@]}"

  note "What is deployed now (to take back what this run no longer asks for)"
  read_previous
  read_act_as
  local new_control=${CONFIG[RERUN_CONTROL_QUEUE]:-} old_control=${PREVIOUS[RERUN_CONTROL_QUEUE]:-}
  if [[ -n $new_control ]]; then
    check_control_queue_empty "$new_control" "its control queue becomes $new_control"
  else
    check_control_queue_empty '' --no-control-queue
  fi
  # At once after the check, so the deployed service can write nothing there that would be left behind:
  # until the new service serves, its runs cannot claim, so they defer their tasks (docs/deploy.md "Moving
  # the control queue").
  if [[ -n $old_control && $old_control != "$new_control" ]]; then
    note "The control queue $old_control: no longer used; the runtime account's grant taken back"
    where_of_list "$old_control"
    for where in "${WHERE_LIST[@]}"; do
      converge queue "$where" "serviceAccount:$RUNTIME_SA" "projects/$PROJECT/roles/$CONTROL_ROLE" ''
    done
    if [[ $old_control == "$CONTROL_OWN" ]]; then remove tasks queues delete "$NAME-control" "--location=$REGION"; fi
  fi

  note "Service accounts: runtime, push (Pub/Sub's OIDC identity), build (Cloud Build)"
  ensure_account "$NAME-runtime" 'cloud-tasks-rerun runtime'
  ensure_account "$NAME-push" 'cloud-tasks-rerun Pub/Sub push'
  ensure_account "$NAME-build" 'cloud-tasks-rerun Cloud Build'
  if [[ ${CONFIG[RERUN_INVOKER_SA]:-} == "$INVOKER_SA_OWN" ]]; then
    ensure_account "$NAME-invoker" 'cloud-tasks-rerun control tasks'
  fi

  note "Custom roles: exactly the permissions the product uses"
  ensure_role "$RUNNER_ROLE" "$RUNNER_PERMISSIONS" 'cloud-tasks-rerun: list, get and run tasks'
  if $REDRIVE || $PARK; then ensure_role "$REDRIVE_ROLE" "$REDRIVE_PERMISSIONS" 'cloud-tasks-rerun: redrive tasks'; fi
  if $PARK; then ensure_role "$PARK_ROLE" "$PARK_PERMISSIONS" 'cloud-tasks-rerun: park and unpark tasks'; fi
  if $REDRIVE_BATCH; then
    ensure_role "$OPERATIONS_ROLE" "$OPERATIONS_PERMISSIONS" 'cloud-tasks-rerun: read batch operations'
  fi
  if $WILDCARD; then ensure_role "$LISTER_ROLE" "$LISTER_PERMISSIONS" 'cloud-tasks-rerun: list queues'; fi
  if [[ -n $CONTROL_WHERE ]]; then
    ensure_role "$CONTROL_ROLE" "$CONTROL_PERMISSIONS" 'cloud-tasks-rerun: control queue claims'
  fi
  local project_roles="projects/$PROJECT/roles"
  local runner="$project_roles/$RUNNER_ROLE" redrive="$project_roles/$REDRIVE_ROLE"
  local lister="$project_roles/$LISTER_ROLE" control="$project_roles/$CONTROL_ROLE"
  local operations="$project_roles/$OPERATIONS_ROLE"
  local queue_roles="$runner" managed="$runner $redrive"
  # Parking reads the queues' tasks with their bodies and deletes them; unparking creates: the redrive role.
  if $REDRIVE || $PARK; then queue_roles+=" $redrive"; fi

  if [[ -n $CONTROL_WHERE ]]; then
    note "Control queue ${CONFIG[RERUN_CONTROL_QUEUE]}: never gives a claim up, paced at the RunTask quota"
    read -r location queue_id <<<"$CONTROL_WHERE"
    local verb=create
    if lookup '' tasks queues describe "$queue_id" "--location=$location" '--format=value(name)'; then verb=update; fi
    run tasks queues "$verb" "$queue_id" "--location=$location" --max-attempts=-1 --min-backoff=1s \
      --max-backoff=10s --max-doublings=3 --max-dispatches-per-second=1 --max-concurrent-dispatches=8
  fi

  note "Grants on the allowlisted queues (and on the project: batch operations, a * queue segment)"
  local member=serviceAccount:$RUNTIME_SA
  local -A seen=()
  for where in "${QUEUE_WHERE[@]}"; do
    [[ $where == *' *' ]] && continue
    converge queue "$where" "$member" "$managed" "$queue_roles"
    seen[$where]=1
  done
  where_of_list "${PREVIOUS[RERUN_QUEUES]:-}"
  for where in "${WHERE_LIST[@]}"; do
    if [[ -z ${seen[$where]:-} ]]; then converge queue "$where" "$member" "$managed" ''; fi
  done
  # Operations live under a location, and Cloud Tasks IAM has only project and queue levels: the
  # operations role is granted on the project.
  local project_wanted=''
  if $WILDCARD; then project_wanted="$queue_roles $lister"; fi
  if $REDRIVE_BATCH; then project_wanted+=" $operations"; fi
  converge project "$PROJECT" "$member" "$managed $lister $control $operations" "$project_wanted"
  converge project "$PROJECT" "serviceAccount:$BUILD_SA" roles/run.builder roles/run.builder

  note "Parking queues: PAUSED, beside each allowlisted queue (docs/parking.md); never deleted"
  parking_queues "$PARK"
  local park="$project_roles/$PARK_ROLE"
  for where in "${PARKING_WANTED[@]}"; do
    ensure_parking_queue "$where"
    converge queue "$where" "$member" "$park" "$park"
  done
  take_back_parking "$member" "$park"

  note "Control queue grants: claims, and control tasks signed as ${CONFIG[RERUN_INVOKER_SA]:-nobody}"
  if [[ -n $CONTROL_WHERE ]]; then converge queue "$CONTROL_WHERE" "$member" "$control" "$control"; fi

  note "Accounts the runtime account may act as (control tasks' invoker; redrive's task accounts)"
  local acting=("${ACT_AS[@]}") account
  if [[ -n ${CONFIG[RERUN_INVOKER_SA]:-} ]]; then acting+=("${CONFIG[RERUN_INVOKER_SA]}"); fi
  local before=("${ACT_AS_BEFORE[@]}")
  if [[ -n ${PREVIOUS[RERUN_INVOKER_SA]:-} ]]; then before+=("${PREVIOUS[RERUN_INVOKER_SA]}"); fi
  for account in "${acting[@]}"; do
    converge account "$account" "$member" roles/iam.serviceAccountUser roles/iam.serviceAccountUser
  done
  for account in "${before[@]}"; do
    if [[ " ${acting[*]} " != *" $account "* ]]; then
      converge account "$account" "$member" roles/iam.serviceAccountUser ''
    fi
  done
  local record
  record="cloud-tasks-rerun runtime; act-as: $(IFS=,; echo "${ACT_AS[*]}")"
  if [[ "${ACT_AS_BEFORE[*]}" != "${ACT_AS[*]}" ]]; then
    run iam service-accounts update "$RUNTIME_SA" "--description=$record"
  fi

  note "Topics: $TOPIC (alerts, sweeps, events) and $DEAD_LETTER"
  ensure_topic "$TOPIC"
  ensure_topic "$DEAD_LETTER"
  if $CLOUD_BUILDS; then ensure_topic "$BUILDS_TOPIC"; fi
  if [[ -n ${CONFIG[RERUN_NOTIFY_TOPIC]:-} ]]; then
    converge topic "${CONFIG[RERUN_NOTIFY_TOPIC]}" "$member" roles/pubsub.publisher roles/pubsub.publisher
  fi
  if [[ -n ${PREVIOUS[RERUN_NOTIFY_TOPIC]:-} && ${PREVIOUS[RERUN_NOTIFY_TOPIC]} != "${CONFIG[RERUN_NOTIFY_TOPIC]:-}" ]]; then
    converge topic "${PREVIOUS[RERUN_NOTIFY_TOPIC]}" "$member" roles/pubsub.publisher ''
  fi

  note "The service $SERVICE (Cloud Run, rerunHttp; Cloud Build runs npm run gcp-build)"
  CONFIG[RERUN_SELF_URL]=${CONFIG[RERUN_SELF_URL]:-}
  if [[ -n $CONTROL_WHERE && -z ${CONFIG[RERUN_SELF_URL]} ]]; then CONFIG[RERUN_SELF_URL]=$url; fi
  write_env_file "$WORK/env.yaml"
  deploy_service "$WORK/env.yaml"

  note "Who may invoke $SERVICE: the push account, the control tasks' account, the --invoker members"
  local wanted=("serviceAccount:$PUSH_SA" "${INVOKERS[@]}")
  if [[ -n ${CONFIG[RERUN_INVOKER_SA]:-} ]]; then wanted+=("serviceAccount:${CONFIG[RERUN_INVOKER_SA]}"); fi
  members_of service "$SERVICE" roles/run.invoker
  local current=" ${REPLY//$'\n'/ } "
  for member in "${wanted[@]}"; do
    if [[ $current != *" $member "* ]]; then bind service "$SERVICE" "$member" roles/run.invoker; fi
  done
  for member in $current; do
    if [[ " ${wanted[*]} " != *" $member "* ]]; then unbind service "$SERVICE" "$member" roles/run.invoker; fi
  done

  note "Pub/Sub push: the service agent signs the push tokens, dead-letters, and may publish there"
  converge account "$PUSH_SA" "serviceAccount:$PUBSUB_AGENT" roles/iam.serviceAccountTokenCreator \
    roles/iam.serviceAccountTokenCreator
  converge topic "$DEAD_LETTER" "serviceAccount:$PUBSUB_AGENT" roles/pubsub.publisher roles/pubsub.publisher
  lookup '' pubsub subscriptions describe "$DEAD_LETTER" '--format=value(name)' ||
    run pubsub subscriptions create "$DEAD_LETTER" "--topic=$DEAD_LETTER" --message-retention-duration=7d
  ensure_push_subscription "$PUSH_SUB" "$TOPIC" "$url"
  converge subscription "$PUSH_SUB" "serviceAccount:$PUBSUB_AGENT" roles/pubsub.subscriber roles/pubsub.subscriber
  if $CLOUD_BUILDS; then
    ensure_push_subscription "$BUILDS_SUB" "$BUILDS_TOPIC" "$url"
    converge subscription "$BUILDS_SUB" "serviceAccount:$PUBSUB_AGENT" roles/pubsub.subscriber roles/pubsub.subscriber
  elif lookup '' pubsub subscriptions describe "$BUILDS_SUB" '--format=value(name)'; then
    run pubsub subscriptions delete "$BUILDS_SUB"
  fi

  if $SWEEP; then
    note "Sweep: Cloud Scheduler publishes a sweep event on $TOPIC"
    local verb=create
    if lookup '' scheduler jobs describe "$JOB" "--location=$REGION" '--format=value(name)'; then verb=update; fi
    run scheduler jobs "$verb" pubsub "$JOB" "--location=$REGION" "--schedule=$SCHEDULE" \
      "--time-zone=$TIME_ZONE" "--topic=$TOPIC" "--message-body=$SWEEP_BODY" \
      '--description=cloud-tasks-rerun sweep'
  elif lookup '' scheduler jobs describe "$JOB" "--location=$REGION" '--format=value(name)'; then
    run scheduler jobs delete "$JOB" "--location=$REGION"
  fi

  note "Cloud Monitoring: a Pub/Sub notification channel on $TOPIC (found by its topic, else created)"
  local channel_filter="type=\"pubsub\" AND labels.topic=\"projects/$PROJECT/topics/$TOPIC\""
  local channel
  if lookup '' beta monitoring channels list "--filter=$channel_filter" '--format=value(name)'; then
    channel=${REPLY%%$'\n'*}
  else
    lookup "projects/$PROJECT/notificationChannels/CHANNEL_ID" beta monitoring channels create \
      "--display-name=$NAME" --type=pubsub "--channel-labels=topic=projects/$PROJECT/topics/$TOPIC" \
      '--description=cloud-tasks-rerun: closed incidents become failure-alert reruns' '--format=value(name)' ||
      die "no notification channel was created"
    channel=$REPLY
  fi
  # The notification service agent exists once the project has a Pub/Sub channel.
  converge topic "$TOPIC" "serviceAccount:$MONITORING_AGENT" roles/pubsub.publisher roles/pubsub.publisher

  note "Log-based metrics and the dashboard (scripts/monitoring)"
  local entry metric
  for entry in "${METRICS[@]}"; do
    metric=${entry%%:*}
    fill "$MONITORING_DIR/${entry#*:}"
    if lookup '' logging metrics describe "$metric" '--format=value(name)'; then
      run logging metrics update "$metric" "--config-from-file=$FILLED"
    else
      run logging metrics create "$metric" "--config-from-file=$FILLED"
    fi
  done
  fill "$MONITORING_DIR/dashboard.json"
  local dashboard=projects/$PROJECT/dashboards/$DASHBOARD_ID
  if lookup '' monitoring dashboards describe "$dashboard" '--format=value(etag)'; then
    sed -i.bak "1s|{|{ \"etag\": \"$REPLY\", \"name\": \"$dashboard\",|" "$FILLED"
    run monitoring dashboards update "$dashboard" "--config-from-file=$FILLED"
  else
    sed -i.bak "1s|{|{ \"name\": \"$dashboard\",|" "$FILLED"
    run monitoring dashboards create "--config-from-file=$FILLED"
  fi

  note "Alerting policies: the dead-letter alert, and the --alert-policy files on the rerun channel"
  lookup '' monitoring policies list "--filter=userLabels.$POLICY_LABEL=\"$NAME\"" \
    '--format=value(name,userLabels.rerun_policy)' || true
  local existing=$REPLY
  local kept=()
  if [[ ${#NOTIFY_CHANNELS[@]} -eq 0 ]]; then
    note "WARNING: no --notify-channel: the dead-letter alert opens incidents that notify nobody"
  fi
  fill "$MONITORING_DIR/dead-letter-policy.json"
  ensure_policy "$FILLED" dead-letter "$existing" "$(IFS=,; echo "${NOTIFY_CHANNELS[*]}")"
  kept+=(dead-letter)
  local file slug
  for file in "${POLICY_FILES[@]}"; do
    slug=$(basename "$file" .json | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_\n-' '-' | cut -c1-60)
    ensure_policy "$file" "$slug" "$existing" "$channel"
    kept+=("$slug")
  done
  local name label
  while IFS=$'\t' read -r name label; do
    if [[ -n $name && " ${kept[*]} " != *" $label "* ]]; then run monitoring policies delete "$name"; fi
  done <<<"$existing"

  print_usage "$url" "$number" "$channel"
}

# ensure_policy FILE SLUG EXISTING CHANNELS: the policy labelled SLUG is created or replaced by FILE.
ensure_policy() {
  local file=$1 slug=$2 existing=$3 channels=$4 name='' line label
  while IFS=$'\t' read -r line label; do
    if [[ $label == "$slug" ]]; then name=$line; fi
  done <<<"$existing"
  local labels="$POLICY_LABEL=$NAME,rerun_policy=$slug"
  if [[ -z $name ]]; then
    local with=()
    if [[ -n $channels ]]; then with=("--notification-channels=$channels"); fi
    run monitoring policies create "--policy-from-file=$file" "${with[@]}" "--user-labels=$labels"
  else
    local with=(--clear-notification-channels)
    if [[ -n $channels ]]; then with=("--set-notification-channels=$channels"); fi
    run monitoring policies update "$name" "--policy-from-file=$file" "${with[@]}" "--update-user-labels=$labels"
  fi
}

print_usage() {
  local url=$1 project_number=$2 channel=$3
  local caller=DEPLOYER@$PROJECT.iam.gserviceaccount.com member
  for member in "${INVOKERS[@]}"; do
    if [[ $member == serviceAccount:* ]]; then
      caller=${member#serviceAccount:}
      break
    fi
  done
  # shellcheck disable=SC2016 # Cloud Build substitutions and GitHub expressions, printed as they are
  local body_build='{"kind":"fix-deployed","reason":"Cloud Build $BUILD_ID"}'
  # shellcheck disable=SC2016
  local body_gha='{"kind":"fix-deployed","reason":"${{ github.repository }}@${{ github.sha }}"}'
  local done_line="cloud-tasks-rerun is deployed in $PROJECT ($REGION)."
  $DRY_RUN && done_line="After this deployment (dry run: nothing was changed):"
  cat <<EOF

$done_line

rerunHttp ($SERVICE): $url
Callers present a Google ID token whose audience is that URL and hold roles/run.invoker on it
(run deploy.sh again with --invoker serviceAccount:EMAIL to add one).

From Cloud Build, a step after the deploy (the build's service account is the caller):

  - name: gcr.io/google.com/cloudsdktool/cloud-sdk:slim
    entrypoint: bash
    args:
      - -c
      - |
        curl -fsS -X POST '$url' \\
          -H "Authorization: Bearer \$\$(gcloud auth print-identity-token --audiences='$url')" \\
          -H 'Content-Type: application/json' \\
          -d '$body_build'

From GitHub Actions, with Workload Identity Federation (the service account is the caller):

    permissions:
      contents: read
      id-token: write
    steps:
      - id: auth
        uses: google-github-actions/auth@v2
        with:
          workload_identity_provider: projects/$project_number/locations/global/workloadIdentityPools/POOL/providers/PROVIDER
          service_account: $caller
          token_format: id_token
          id_token_audience: $url
          id_token_include_email: true
      - run: |
          curl -fsS -X POST '$url' \\
            -H 'Authorization: Bearer \${{ steps.auth.outputs.id_token }}' \\
            -H 'Content-Type: application/json' \\
            -d '$body_gha'

Alerts: the notification channel $channel notifies on OPENED and CLOSED for the policies
deploy.sh creates (--alert-policy FILE); a closed incident reruns its queue (a canary first).
Dashboard: https://console.cloud.google.com/monitoring/dashboards/builder/$DASHBOARD_ID?project=$PROJECT
EOF
  if $SWEEP; then
    printf 'Sweeps: Cloud Scheduler job %s publishes %s on %s (%s).\n' "$JOB" "$SWEEP_BODY" "$TOPIC" "$SCHEDULE"
  fi
  if $PARK; then
    printf 'Parking: each sweep parks the tasks at risk in the PAUSED parking queues (Q-parked); %s\n' \
      'send {"kind":"unpark","queues":[...]} to bring them home. A queue created later under a * entry gets its parking queue on the next deploy run.'
  fi
  if $CLOUD_BUILDS; then
    printf 'Cloud Build: %s pushes the cloud-builds notifications to %s; RERUN_ROUTES maps triggers to queues.\n' "$BUILDS_SUB" "$SERVICE"
  fi
  cat <<EOF

Logs (JSON lines, one per task outcome and one summary per run):
  gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="$SERVICE"' --project=$PROJECT --limit=50
EOF
}

# --- Delete ---------------------------------------------------------------------------------------------

# Removes everything of PREFIX in the project, found from what is deployed rather than from the flags.
delete_all() {
  if $DRY_RUN; then note "dry run: the gcloud commands that remove the deployment; none is run"; fi
  local where member=serviceAccount:$RUNTIME_SA project_roles=projects/$PROJECT/roles
  local managed="$project_roles/$RUNNER_ROLE $project_roles/$REDRIVE_ROLE"

  note "What is deployed (its queues, control queue, notify topic and act-as accounts)"
  read_previous
  read_act_as
  check_control_queue_empty '' --delete

  note "Grants on the queues, the control queue, the project, the accounts and the notify topic"
  where_of_list "${PREVIOUS[RERUN_QUEUES]:-}"
  for where in "${WHERE_LIST[@]}"; do converge queue "$where" "$member" "$managed" ''; done
  where_of_list "${PREVIOUS[RERUN_CONTROL_QUEUE]:-}"
  for where in "${WHERE_LIST[@]}"; do converge queue "$where" "$member" "$project_roles/$CONTROL_ROLE" ''; done
  # The parking queues stay, PAUSED, with their parked tasks: only the grant on them goes.
  parking_queues false
  take_back_parking "$member" "$project_roles/$PARK_ROLE"
  # Its own control queue goes, whichever queue the last deployment used (Cloud Tasks keeps the name
  # reserved for up to 7 days: a redeployment within them needs --control-queue with another name).
  remove tasks queues delete "$NAME-control" "--location=$REGION"
  converge project "$PROJECT" "$member" \
    "$managed $project_roles/$LISTER_ROLE $project_roles/$CONTROL_ROLE $project_roles/$OPERATIONS_ROLE" ''
  converge project "$PROJECT" "serviceAccount:$BUILD_SA" roles/run.builder ''
  local account
  for account in "${ACT_AS_BEFORE[@]}" "${PREVIOUS[RERUN_INVOKER_SA]:-}"; do
    if [[ -n $account && $account != "$INVOKER_SA_OWN" ]]; then
      converge account "$account" "$member" roles/iam.serviceAccountUser ''
    fi
  done
  if [[ -n ${PREVIOUS[RERUN_NOTIFY_TOPIC]:-} ]]; then
    converge topic "${PREVIOUS[RERUN_NOTIFY_TOPIC]}" "$member" roles/pubsub.publisher ''
  fi

  note "Alerting policies, dashboard, metrics, channel"
  lookup '' monitoring policies list "--filter=userLabels.$POLICY_LABEL=\"$NAME\"" '--format=value(name)' || true
  local name
  while IFS= read -r name; do
    if [[ -n $name ]]; then remove monitoring policies delete "$name"; fi
  done <<<"$REPLY"
  remove monitoring dashboards delete "projects/$PROJECT/dashboards/$DASHBOARD_ID"
  local entry
  for entry in "${METRICS[@]}"; do remove logging metrics delete "${entry%%:*}"; done
  local channel_filter="type=\"pubsub\" AND labels.topic=\"projects/$PROJECT/topics/$TOPIC\""
  if lookup "projects/$PROJECT/notificationChannels/CHANNEL_ID" beta monitoring channels list \
    "--filter=$channel_filter" '--format=value(name)'; then
    while IFS= read -r name; do
      if [[ -n $name ]]; then remove beta monitoring channels delete "$name" --force; fi
    done <<<"$REPLY"
  fi

  note "Sweep job, subscriptions, topics (cloud-builds stays: Cloud Build and others use it), service"
  remove scheduler jobs delete "$JOB" "--location=$REGION"
  remove pubsub subscriptions delete "$PUSH_SUB"
  remove pubsub subscriptions delete "$BUILDS_SUB"
  remove pubsub subscriptions delete "$DEAD_LETTER"
  remove pubsub topics delete "$TOPIC"
  remove pubsub topics delete "$DEAD_LETTER"
  remove run services delete "$SERVICE" "--region=$REGION"

  note "Custom roles and service accounts"
  local role
  for role in "$RUNNER_ROLE" "$REDRIVE_ROLE" "$LISTER_ROLE" "$CONTROL_ROLE" "$OPERATIONS_ROLE" "$PARK_ROLE"; do
    if lookup '' iam roles describe "$role" '--format=yaml(name,deleted)' && [[ $REPLY != *'deleted: true'* ]]; then
      run iam roles delete "$role"
    fi
  done
  for account in "$RUNTIME_SA" "$PUSH_SA" "$BUILD_SA" "$INVOKER_SA_OWN"; do
    remove iam service-accounts delete "$account"
  done
  note "Removed. The APIs stay enabled; your queues and their tasks were never touched."
}

if ! $DRY_RUN && ! command -v gcloud >/dev/null 2>&1; then
  die "gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
fi
if $DELETE; then delete_all; else deploy; fi
