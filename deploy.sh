#!/usr/bin/env bash
# deploy.sh: deploys cloud-tasks-rerun to one Google Cloud project, with least privilege.
#
# Idempotent: run it again with the same flags and it converges, changing nothing that is already right.
# `--dry-run` prints every gcloud command without running any; `--delete` removes what it created.
# Everything is validated before the first gcloud call. Run `./deploy.sh --help` for the flags.
set -euo pipefail

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  echo "deploy.sh: needs bash 4.4 or later (this is ${BASH_VERSION}; on macOS: brew install bash)" >&2
  exit 2
fi

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SOURCE_DIR

usage() {
  cat <<'EOF'
Usage: ./deploy.sh --project ID --queue projects/P/locations/L/queues/Q [options]

Deploys cloud-tasks-rerun to one project: a runtime service account with roles/cloudtasks.viewer and
roles/cloudtasks.taskRunner on each named queue only (nothing project-wide), rerunHttp (authenticated
callers only), rerunPubsub on the rerun topic, the Cloud Scheduler sweep job, and the Cloud Monitoring
Pub/Sub notification channel. Safe to run again: a second run changes nothing.

Where:
  --project ID           project to deploy to (env GOOGLE_CLOUD_PROJECT, then CLOUDSDK_CORE_PROJECT); required
  --region REGION        region of the functions and the scheduler job (env GOOGLE_CLOUD_REGION;
                         default: the location of the first queue)
  --name PREFIX          prefix of every resource name (env DEPLOY_NAME; default rerun): functions
                         PREFIX-http, PREFIX-pubsub, PREFIX-builds; topic PREFIX; job PREFIX-sweep;
                         service accounts PREFIX-runtime, PREFIX-trigger, PREFIX-invoker

Which queues (the allowlist, RERUN_QUEUES; at least one; full names in the deploy project, no `*`):
  --queue NAME           one queue, projects/P/locations/L/queues/Q; repeat for more
  --queues A,B           comma-separated queue names (env RERUN_QUEUES when no --queue/--queues is given)

Who may call rerunHttp (roles/run.invoker on it; allUsers and allAuthenticatedUsers are refused):
  --invoker MEMBER       e.g. serviceAccount:deployer@P.iam.gserviceaccount.com; repeat for more
                         (env DEPLOY_INVOKERS, comma-separated)

Events:
  --schedule CRON        sweep schedule, unix-cron (env DEPLOY_SCHEDULE; default '*/15 * * * *')
  --time-zone TZ         time zone of the schedule (env DEPLOY_TIME_ZONE; default Etc/UTC)
  --no-sweep             no Cloud Scheduler sweep job
  --cloud-builds         also deploy PREFIX-builds on the cloud-builds topic (Cloud Build notifications)
                         (env DEPLOY_CLOUD_BUILDS=true)

Configuration of the functions (each also read from the environment variable of the same name):
  --time-budget D        RERUN_TIME_BUDGET, e.g. 50s or 5m (default 50s); the functions' timeout is this
                         plus 10s, so at most 530s (rerunPubsub is an event function: 540s at most)
  --max-tasks N          RERUN_MAX_TASKS
  --concurrency N        RERUN_CONCURRENCY
  --max-rate N           RERUN_MAX_RATE (RunTask calls per second; the quota is 60 per minute)
  --routes JSON|FILE     RERUN_ROUTES (a file is read here and its JSON deployed inline)
  --log-level LEVEL      LOG_LEVEL (fatal, error, warn, info, debug, trace, silent)
  --control-queue NAME   RERUN_CONTROL_QUEUE: turns on queued mode; the runtime account gets
                         roles/cloudtasks.enqueuer on this queue
  --invoker-sa EMAIL     RERUN_INVOKER_SA: the account whose OIDC token control tasks carry
                         (default with --control-queue: PREFIX-invoker, created here)
  --self-url URL         RERUN_SELF_URL (default with --control-queue: rerunHttp's own URL)
  --max-instances N      instances per function (env DEPLOY_MAX_INSTANCES; default 1: the RunTask quota
                         is per project, and each instance paces itself)

What to do:
  --dry-run              print every gcloud command, run none (lookups print their command and assume a
                         first deployment: nothing exists yet)
  --delete               remove everything a deploy with the same flags created (APIs stay enabled)
  -h, --help             this text

The functions get exactly the configuration variables given (RERUN_QUEUES and RERUN_TIME_BUDGET always);
CLOUD_TASKS_EMULATOR_HOST is never deployed.
EOF
}

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 2
}

# --- Inputs: flags first, then the environment ---------------------------------------------------------

PROJECT=${GOOGLE_CLOUD_PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}
REGION=${GOOGLE_CLOUD_REGION:-}
NAME=${DEPLOY_NAME:-rerun}
SCHEDULE=${DEPLOY_SCHEDULE:-'*/15 * * * *'}
TIME_ZONE=${DEPLOY_TIME_ZONE:-Etc/UTC}
SWEEP=true
CLOUD_BUILDS=${DEPLOY_CLOUD_BUILDS:-false}
MAX_INSTANCES=${DEPLOY_MAX_INSTANCES:-1}
DRY_RUN=false
DELETE=false
QUEUE_ARGS=()
INVOKERS=()
if [[ -n ${DEPLOY_INVOKERS:-} ]]; then IFS=, read -r -a INVOKERS <<<"$DEPLOY_INVOKERS"; fi

# The function's configuration, key for key as shared/config.ts names it (CLOUD_TASKS_EMULATOR_HOST excepted).
CONFIG_KEYS=(RERUN_QUEUES RERUN_MAX_TASKS RERUN_CONCURRENCY RERUN_MAX_RATE RERUN_TIME_BUDGET RERUN_ROUTES
  RERUN_CONTROL_QUEUE RERUN_SELF_URL RERUN_INVOKER_SA LOG_LEVEL)
declare -A CONFIG=()
for key in "${CONFIG_KEYS[@]}"; do
  if [[ -n ${!key:-} ]]; then CONFIG[$key]=${!key}; fi
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
    --schedule) need_value "$@"; SCHEDULE=$2; shift 2 ;;
    --time-zone) need_value "$@"; TIME_ZONE=$2; shift 2 ;;
    --no-sweep) SWEEP=false; shift ;;
    --cloud-builds) CLOUD_BUILDS=true; shift ;;
    --time-budget) need_value "$@"; CONFIG[RERUN_TIME_BUDGET]=$2; shift 2 ;;
    --max-tasks) need_value "$@"; CONFIG[RERUN_MAX_TASKS]=$2; shift 2 ;;
    --concurrency) need_value "$@"; CONFIG[RERUN_CONCURRENCY]=$2; shift 2 ;;
    --max-rate) need_value "$@"; CONFIG[RERUN_MAX_RATE]=$2; shift 2 ;;
    --routes) need_value "$@"; CONFIG[RERUN_ROUTES]=$2; shift 2 ;;
    --log-level) need_value "$@"; CONFIG[LOG_LEVEL]=$2; shift 2 ;;
    --control-queue) need_value "$@"; CONFIG[RERUN_CONTROL_QUEUE]=$2; shift 2 ;;
    --invoker-sa) need_value "$@"; CONFIG[RERUN_INVOKER_SA]=$2; shift 2 ;;
    --self-url) need_value "$@"; CONFIG[RERUN_SELF_URL]=$2; shift 2 ;;
    --max-instances) need_value "$@"; MAX_INSTANCES=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    --delete) DELETE=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# --- Validation: the same rules as shared/names.ts and shared/config.ts, before any gcloud call ----------

# shared/names.ts: PROJECT_ID, LOCATION_ID, QUEUE_ID.
PROJECT_RE='^([a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]$'
LOCATION_RE='^[a-z][a-z0-9-]{0,62}$'
QUEUE_ID_RE='^[A-Za-z0-9-]{1,100}$'

[[ -n $PROJECT ]] || die "no project: pass --project ID (or set GOOGLE_CLOUD_PROJECT)"
[[ $PROJECT =~ $PROJECT_RE ]] || die "--project \"$PROJECT\" is not a project ID"

# Checks one full queue name; prints "location queue-id" for it.
parse_queue() {
  local what=$1 name=$2 project='' location='' queue=''
  if [[ $name == *'*'* ]]; then
    die "$what \"$name\" has a wildcard: least privilege grants on named queues only, so name each queue"
  fi
  if [[ $name =~ ^projects/([^/]+)/locations/([^/]+)/queues/([^/]+)$ ]]; then
    project=${BASH_REMATCH[1]} location=${BASH_REMATCH[2]} queue=${BASH_REMATCH[3]}
  fi
  if ! [[ $project =~ $PROJECT_RE && $location =~ $LOCATION_RE && $queue =~ $QUEUE_ID_RE ]]; then
    die "$what \"$name\" is not a queue name projects/P/locations/L/queues/Q (Cloud Tasks' rules)"
  fi
  if [[ $project != "$PROJECT" ]]; then
    die "$what \"$name\" is in project $project, not in the deploy project $PROJECT: deploy once per project"
  fi
  printf '%s %s\n' "$location" "$queue"
}

if [[ ${#QUEUE_ARGS[@]} -eq 0 && -n ${CONFIG[RERUN_QUEUES]:-} ]]; then
  IFS=, read -r -a QUEUE_ARGS <<<"${CONFIG[RERUN_QUEUES]}"
fi
QUEUES=()        # full names, in order, without duplicates
QUEUE_WHERE=()   # "location queue-id" for each
for raw in "${QUEUE_ARGS[@]}"; do
  queue_name=${raw#"${raw%%[![:space:]]*}"}
  queue_name=${queue_name%"${queue_name##*[![:space:]]}"}
  [[ -n $queue_name ]] || continue
  where=$(parse_queue queue "$queue_name")
  duplicate=false
  for seen in "${QUEUES[@]}"; do
    if [[ $seen == "$queue_name" ]]; then duplicate=true; fi
  done
  if $duplicate; then continue; fi
  QUEUES+=("$queue_name")
  QUEUE_WHERE+=("$where")
done
[[ ${#QUEUES[@]} -gt 0 ]] || die "no queues: pass --queue projects/$PROJECT/locations/L/queues/Q (or set RERUN_QUEUES)"
CONFIG[RERUN_QUEUES]=$(IFS=,; echo "${QUEUES[*]}")

if [[ -z $REGION ]]; then REGION=${QUEUE_WHERE[0]%% *}; fi
[[ $REGION =~ $LOCATION_RE ]] || die "--region \"$REGION\" is not a region like us-central1"
[[ $NAME =~ ^[a-z][a-z0-9-]{0,20}[a-z0-9]$ ]] ||
  die "--name \"$NAME\" must be 2-22 lowercase letters, digits or hyphens, starting with a letter"

CONTROL_WHERE=
if [[ -n ${CONFIG[RERUN_CONTROL_QUEUE]:-} ]]; then
  CONTROL_WHERE=$(parse_queue --control-queue "${CONFIG[RERUN_CONTROL_QUEUE]}")
fi

# shared/duration.ts: a number and a unit; the functions' timeout must hold the budget plus a margin.
TIMEOUT_MARGIN_S=10
EVENT_TIMEOUT_MAX_S=540
CONFIG[RERUN_TIME_BUDGET]=${CONFIG[RERUN_TIME_BUDGET]:-50s}
budget=${CONFIG[RERUN_TIME_BUDGET]}
[[ $budget =~ ^([0-9]+(\.[0-9]+)?)(ms|s|m|h)$ ]] || die "RERUN_TIME_BUDGET \"$budget\" is not a duration like 50s or 5m"
case ${BASH_REMATCH[3]} in ms) unit_ms=1 ;; s) unit_ms=1000 ;; m) unit_ms=60000 ;; h) unit_ms=3600000 ;; esac
budget_s=$(awk -v n="${BASH_REMATCH[1]}" -v u="$unit_ms" 'BEGIN { ms = int(n * u + 0.5); s = int(ms / 1000); if (s * 1000 < ms) s++; print s }')
TIMEOUT_S=$((budget_s + TIMEOUT_MARGIN_S))
((TIMEOUT_S <= EVENT_TIMEOUT_MAX_S)) ||
  die "RERUN_TIME_BUDGET \"$budget\" does not fit: rerunPubsub's timeout (budget + ${TIMEOUT_MARGIN_S}s) is at most ${EVENT_TIMEOUT_MAX_S}s, so the budget is at most $((EVENT_TIMEOUT_MAX_S - TIMEOUT_MARGIN_S))s (use queued mode for bigger batches)"

# shared/config.ts: integer ranges, rate, level, URL, e-mail.
check_int() {
  local key=$1 min=$2 max=$3 value=${CONFIG[$1]:-}
  [[ -z $value ]] && return 0
  if ! { [[ $value =~ ^[0-9]{1,9}$ ]] && ((10#$value >= min && 10#$value <= max)); }; then
    die "$key \"$value\" must be a whole number from $min to $max"
  fi
}
check_int RERUN_MAX_TASKS 1 100000
check_int RERUN_CONCURRENCY 1 100
if [[ -n ${CONFIG[RERUN_MAX_RATE]:-} ]]; then
  rate=${CONFIG[RERUN_MAX_RATE]}
  if ! { [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0 && r <= 500) }'; }; then
    die "RERUN_MAX_RATE \"$rate\" must be a number above 0 and at most 500 (calls per second)"
  fi
fi
if [[ -n ${CONFIG[LOG_LEVEL]:-} ]]; then
  [[ ${CONFIG[LOG_LEVEL]} =~ ^(fatal|error|warn|info|debug|trace|silent)$ ]] ||
    die "LOG_LEVEL \"${CONFIG[LOG_LEVEL]}\" must be one of fatal, error, warn, info, debug, trace, silent"
fi
if [[ -n ${CONFIG[RERUN_SELF_URL]:-} ]]; then
  [[ ${CONFIG[RERUN_SELF_URL]} =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?([/?#][^[:space:]]*)?$ ]] ||
    die "RERUN_SELF_URL \"${CONFIG[RERUN_SELF_URL]}\" is not an http(s) URL"
fi
EMAIL_RE='^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$'
if [[ -n ${CONFIG[RERUN_INVOKER_SA]:-} ]]; then
  [[ ${CONFIG[RERUN_INVOKER_SA]} =~ $EMAIL_RE ]] ||
    die "RERUN_INVOKER_SA \"${CONFIG[RERUN_INVOKER_SA]}\" is not a service account e-mail"
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

[[ $SCHEDULE =~ ^[^[:space:]]+([[:space:]]+[^[:space:]]+){4}$ ]] ||
  die "--schedule \"$SCHEDULE\" is not a unix-cron schedule of 5 fields, e.g. '*/15 * * * *'"
[[ $TIME_ZONE =~ ^[A-Za-z0-9_+/-]+$ ]] || die "--time-zone \"$TIME_ZONE\" is not a time zone like Etc/UTC"
[[ $MAX_INSTANCES =~ ^[1-9][0-9]{0,3}$ ]] || die "--max-instances \"$MAX_INSTANCES\" must be a whole number from 1"
[[ $CLOUD_BUILDS == true || $CLOUD_BUILDS == false ]] || die "DEPLOY_CLOUD_BUILDS must be true or false"
# The RunTask quota (60 a minute) is per project, and each deployed function paces only itself:
# unless told otherwise, split the quota between them.
if [[ -z ${CONFIG[RERUN_MAX_RATE]:-} ]]; then
  if [[ $CLOUD_BUILDS == true ]]; then CONFIG[RERUN_MAX_RATE]=0.33; else CONFIG[RERUN_MAX_RATE]=0.5; fi
fi
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

HTTP_FN=$NAME-http
PUBSUB_FN=$NAME-pubsub
BUILDS_FN=$NAME-builds
TOPIC=$NAME
BUILDS_TOPIC=cloud-builds
JOB=$NAME-sweep
RUNTIME_SA=$(sa_email "$NAME-runtime")
TRIGGER_SA=$(sa_email "$NAME-trigger")
CREATED_INVOKER_SA=
if [[ -n ${CONFIG[RERUN_CONTROL_QUEUE]:-} && -z ${CONFIG[RERUN_INVOKER_SA]:-} ]]; then
  CREATED_INVOKER_SA=$(sa_email "$NAME-invoker")
  CONFIG[RERUN_INVOKER_SA]=$CREATED_INVOKER_SA
fi
SWEEP_BODY="{\"kind\":\"sweep\",\"reason\":\"Cloud Scheduler job $JOB\"}"
APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com
  eventarc.googleapis.com pubsub.googleapis.com cloudscheduler.googleapis.com cloudtasks.googleapis.com
  iam.googleapis.com monitoring.googleapis.com logging.googleapis.com)

# --- Running gcloud -------------------------------------------------------------------------------------

COMMON=("--project=$PROJECT" --quiet)
FRESH_ACCOUNTS=() # accounts this run creates: IAM may take a moment to see them
RETRIES=${DEPLOY_RETRIES:-6}
RETRY_DELAY_S=${DEPLOY_RETRY_DELAY:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-rerun.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

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
  if grep -qiE "$pattern" "$WORK/out"; then
    note "  $done_note"
    return 0
  fi
  failed "$@"
}

# Runs a create command; "already exists" counts as done.
ensure() { run_tolerating 'already exists|ALREADY_EXISTS' 'already exists' "$@"; }

# Runs a delete command; "not found" counts as done.
remove() { run_tolerating 'NOT_FOUND|not found|does not exist|404' 'already gone' "$@"; }

# Runs an add-iam-policy-binding (the answer, the whole policy, is not shown). An account this script
# created a moment ago may not be visible to IAM yet: that answer is retried for about a minute.
grant() {
  show "$@"
  $DRY_RUN && return 0
  local attempt=1 fresh=false arg
  for arg in "$@"; do
    if [[ $arg == --member=serviceAccount:* && " ${FRESH_ACCOUNTS[*]} " == *" ${arg#--member=serviceAccount:} "* ]]; then
      fresh=true
    fi
  done
  until gcloud "$@" "${COMMON[@]}" >"$WORK/out" 2>&1; do
    if ! $fresh || ((attempt >= RETRIES)) || ! grep -qiE 'account.*(does not exist|not found)' "$WORK/out"; then
      failed "$@"
    fi
    note "  the principal is not visible to IAM yet; trying again in ${RETRY_DELAY_S}s"
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
  grep -qiE 'NOT_FOUND|not found|404' "$WORK/out" && return 1
  failed "$@"
}

# Runs a command and keeps its output in REPLY; a dry run takes $1 instead.
capture() {
  local dry_answer=$1
  shift
  show "$@"
  if $DRY_RUN; then
    REPLY=$dry_answer
    return 0
  fi
  REPLY=$(gcloud "$@" "${COMMON[@]}" 2>"$WORK/out") || failed "$@"
}

# --- The configuration file of the functions ------------------------------------------------------------

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

# write_env_file PATH [KEY...]: every configured key except the ones named.
write_env_file() {
  local path=$1 key skip
  shift
  : >"$path"
  for key in "${CONFIG_KEYS[@]}"; do
    [[ -n ${CONFIG[$key]:-} ]] || continue
    for skip in "$@"; do
      if [[ $key == "$skip" ]]; then continue 2; fi
    done
    printf '%s: %s\n' "$key" "$(json_string "${CONFIG[$key]}")" >>"$path"
  done
  # Not configuration but V8 tuning: a small young generation keeps the memory of a long scan flat
  # (npm run bench: +5 MB instead of +32 MB peak RSS from 1k to 100k listed tasks, at the same CPU).
  printf '%s: %s\n' NODE_OPTIONS '"--max-semi-space-size=4"' >>"$path"
  note "environment in $path:"
  if $DRY_RUN; then sed 's/^/#   /' "$path"; else sed 's/^/      /' "$path"; fi
}

deploy_http() {
  local env_file=$1
  run functions deploy "$HTTP_FN" --gen2 "--region=$REGION" --runtime=nodejs22 "--source=$SOURCE_DIR" \
    --entry-point=rerunHttp --trigger-http --no-allow-unauthenticated "--service-account=$RUNTIME_SA" \
    "--env-vars-file=$env_file" "--timeout=${TIMEOUT_S}s" "--max-instances=$MAX_INSTANCES" \
    --concurrency=8 --cpu=1 --memory=512Mi
}

deploy_event() {
  local fn=$1 topic=$2 env_file=$3
  run functions deploy "$fn" --gen2 "--region=$REGION" --runtime=nodejs22 "--source=$SOURCE_DIR" \
    --entry-point=rerunPubsub "--trigger-topic=$topic" "--trigger-service-account=$TRIGGER_SA" --retry \
    "--service-account=$RUNTIME_SA" "--env-vars-file=$env_file" "--timeout=${TIMEOUT_S}s" \
    "--max-instances=$MAX_INSTANCES"
}

# Placeholder answers of a dry run (a real run reads them).
http_url_placeholder() { printf 'https://%s-%s.cloudfunctions.net/%s' "$REGION" "${PROJECT#*:}" "$HTTP_FN"; }

# --- Deploy ---------------------------------------------------------------------------------------------

deploy() {
  if $DRY_RUN; then
    note "dry run: the gcloud commands of a first deployment; none is run"
  fi
  local where location queue_id i

  note "Preflight: the project and every queue exist"
  lookup PROJECT_NUMBER projects describe "$PROJECT" '--format=value(projectNumber)' ||
    die "project $PROJECT not found, or not visible to the account gcloud uses"
  local project_number=$REPLY
  MONITORING_AGENT=service-$project_number@gcp-sa-monitoring-notification.iam.gserviceaccount.com
  FRESH_ACCOUNTS=("$RUNTIME_SA" "$TRIGGER_SA" "$CREATED_INVOKER_SA" "$MONITORING_AGENT")
  for i in "${!QUEUES[@]}"; do
    read -r location queue_id <<<"${QUEUE_WHERE[$i]}"
    lookup "${QUEUES[$i]}" tasks queues describe "$queue_id" "--location=$location" '--format=value(name)' ||
      die "queue ${QUEUES[$i]} not found: create it first, or fix --queue"
  done
  if [[ -n $CONTROL_WHERE ]]; then
    read -r location queue_id <<<"$CONTROL_WHERE"
    lookup "${CONFIG[RERUN_CONTROL_QUEUE]}" tasks queues describe "$queue_id" "--location=$location" \
      '--format=value(name)' ||
      die "control queue ${CONFIG[RERUN_CONTROL_QUEUE]} not found: create it first (gcloud tasks queues create)"
  fi

  note "APIs"
  run services enable "${APIS[@]}"

  note "Service accounts"
  ensure iam service-accounts create "$NAME-runtime" '--display-name=cloud-tasks-rerun runtime'
  ensure iam service-accounts create "$NAME-trigger" '--display-name=cloud-tasks-rerun Pub/Sub trigger'
  if [[ -n $CREATED_INVOKER_SA ]]; then
    ensure iam service-accounts create "$NAME-invoker" '--display-name=cloud-tasks-rerun control tasks'
  fi

  note "Least privilege: list, get and run tasks on the allowlisted queues only"
  for where in "${QUEUE_WHERE[@]}"; do
    read -r location queue_id <<<"$where"
    grant tasks queues add-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.viewer
    grant tasks queues add-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.taskRunner
  done
  if [[ -n $CONTROL_WHERE ]]; then
    note "Queued mode: enqueue control tasks, and sign them as ${CONFIG[RERUN_INVOKER_SA]}"
    read -r location queue_id <<<"$CONTROL_WHERE"
    grant tasks queues add-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.enqueuer
    grant iam service-accounts add-iam-policy-binding "${CONFIG[RERUN_INVOKER_SA]}" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/iam.serviceAccountUser
  fi

  note "Topics"
  ensure pubsub topics create "$TOPIC"
  if $CLOUD_BUILDS; then ensure pubsub topics create "$BUILDS_TOPIC"; fi

  note "Functions (Cloud Build runs npm run gcp-build on the sources .gcloudignore keeps)"
  if [[ -n ${CONFIG[RERUN_CONTROL_QUEUE]:-} && -z ${CONFIG[RERUN_SELF_URL]:-} ]]; then
    # Queued mode sends control tasks to rerunHttp's own URL, known once the function exists.
    if ! lookup '' functions describe "$HTTP_FN" "--region=$REGION" '--format=value(serviceConfig.uri)'; then
      note "$HTTP_FN does not exist yet: deploy it once without queued mode to learn its URL"
      write_env_file "$WORK/env-first.yaml" RERUN_CONTROL_QUEUE RERUN_SELF_URL RERUN_INVOKER_SA
      deploy_http "$WORK/env-first.yaml"
      lookup "$(http_url_placeholder)" functions describe "$HTTP_FN" "--region=$REGION" \
        '--format=value(serviceConfig.uri)' || die "$HTTP_FN has no URL after its deployment"
    fi
    CONFIG[RERUN_SELF_URL]=$REPLY
  fi
  write_env_file "$WORK/env.yaml"
  deploy_http "$WORK/env.yaml"
  deploy_event "$PUBSUB_FN" "$TOPIC" "$WORK/env.yaml"
  if $CLOUD_BUILDS; then deploy_event "$BUILDS_FN" "$BUILDS_TOPIC" "$WORK/env.yaml"; fi

  note "Who may invoke the functions"
  grant functions add-invoker-policy-binding "$PUBSUB_FN" "--region=$REGION" "--member=serviceAccount:$TRIGGER_SA"
  if $CLOUD_BUILDS; then
    grant functions add-invoker-policy-binding "$BUILDS_FN" "--region=$REGION" "--member=serviceAccount:$TRIGGER_SA"
  fi
  if [[ -n ${CONFIG[RERUN_CONTROL_QUEUE]:-} ]]; then
    grant functions add-invoker-policy-binding "$HTTP_FN" "--region=$REGION" \
      "--member=serviceAccount:${CONFIG[RERUN_INVOKER_SA]}"
  fi
  for member in "${INVOKERS[@]}"; do
    grant functions add-invoker-policy-binding "$HTTP_FN" "--region=$REGION" "--member=$member"
  done

  if $SWEEP; then
    note "Sweep: Cloud Scheduler publishes a sweep event on $TOPIC (created, or updated when it exists)"
    local verb=create
    if lookup '' scheduler jobs describe "$JOB" "--location=$REGION" '--format=value(name)'; then verb=update; fi
    run scheduler jobs "$verb" pubsub "$JOB" "--location=$REGION" "--schedule=$SCHEDULE" \
      "--time-zone=$TIME_ZONE" "--topic=$TOPIC" "--message-body=$SWEEP_BODY" \
      '--description=cloud-tasks-rerun sweep'
  fi

  note "Cloud Monitoring: a Pub/Sub notification channel on $TOPIC (found by its topic, else created)"
  local channel_filter="type=\"pubsub\" AND labels.topic=\"projects/$PROJECT/topics/$TOPIC\""
  local channel
  if lookup '' beta monitoring channels list "--filter=$channel_filter" '--format=value(name)'; then
    channel=${REPLY%%$'\n'*}
  else
    capture "projects/$PROJECT/notificationChannels/CHANNEL_ID" beta monitoring channels create \
      "--display-name=$NAME" --type=pubsub "--channel-labels=topic=projects/$PROJECT/topics/$TOPIC" \
      '--description=cloud-tasks-rerun: alert incidents become failure-alert reruns' '--format=value(name)'
    channel=$REPLY
  fi
  # The notification service agent exists once the project has a Pub/Sub channel.
  grant pubsub topics add-iam-policy-binding "$TOPIC" \
    "--member=serviceAccount:$MONITORING_AGENT" \
    --role=roles/pubsub.publisher

  lookup "$(http_url_placeholder)" functions describe "$HTTP_FN" "--region=$REGION" \
    '--format=value(serviceConfig.uri)' || die "$HTTP_FN has no URL after its deployment"
  local url=$REPLY
  print_usage "$url" "$project_number" "$channel"
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

rerunHttp ($HTTP_FN): $url
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

Alerts: add the notification channel $channel to an alerting policy on
cloud_tasks_queue metrics, and turn on "Notify on incident closure": a closed incident reruns its queue.
EOF
  if $SWEEP; then
    printf 'Sweeps: Cloud Scheduler job %s publishes %s on %s (%s).\n' "$JOB" "$SWEEP_BODY" "$TOPIC" "$SCHEDULE"
  fi
  if $CLOUD_BUILDS; then
    printf 'Cloud Build: %s receives the cloud-builds notifications; RERUN_ROUTES maps triggers to queues.\n' "$BUILDS_FN"
  fi
  cat <<EOF

Logs (JSON lines, one per task outcome and one summary per run):
  gcloud logging read 'resource.type="cloud_run_revision" AND resource.labels.service_name="$HTTP_FN"' --project=$PROJECT --limit=50
  Logs Explorer, https://console.cloud.google.com/logs/query?project=$PROJECT with the query
    resource.type="cloud_run_revision" AND resource.labels.service_name=("$HTTP_FN" OR "$PUBSUB_FN")
EOF
}

# --- Delete ---------------------------------------------------------------------------------------------

delete_all() {
  if $DRY_RUN; then note "dry run: the gcloud commands that remove the deployment; none is run"; fi
  local where location queue_id channel

  note "Sweep job, notification channel, functions"
  remove scheduler jobs delete "$JOB" "--location=$REGION"
  local channel_filter="type=\"pubsub\" AND labels.topic=\"projects/$PROJECT/topics/$TOPIC\""
  if lookup "projects/$PROJECT/notificationChannels/CHANNEL_ID" beta monitoring channels list \
    "--filter=$channel_filter" '--format=value(name)'; then
    while IFS= read -r channel; do
      if [[ -n $channel ]]; then remove beta monitoring channels delete "$channel" --force; fi
    done <<<"$REPLY"
  fi
  remove functions delete "$HTTP_FN" "--region=$REGION"
  remove functions delete "$PUBSUB_FN" "--region=$REGION"
  if $CLOUD_BUILDS; then remove functions delete "$BUILDS_FN" "--region=$REGION"; fi
  note "Topic $TOPIC (cloud-builds stays: Cloud Build and others may use it)"
  remove pubsub topics delete "$TOPIC"

  note "Queue grants"
  for where in "${QUEUE_WHERE[@]}"; do
    read -r location queue_id <<<"$where"
    remove tasks queues remove-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.viewer
    remove tasks queues remove-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.taskRunner
  done
  if [[ -n $CONTROL_WHERE ]]; then
    read -r location queue_id <<<"$CONTROL_WHERE"
    remove tasks queues remove-iam-policy-binding "$queue_id" "--location=$location" \
      "--member=serviceAccount:$RUNTIME_SA" --role=roles/cloudtasks.enqueuer
    if [[ -z $CREATED_INVOKER_SA ]]; then
      remove iam service-accounts remove-iam-policy-binding "${CONFIG[RERUN_INVOKER_SA]}" \
        "--member=serviceAccount:$RUNTIME_SA" --role=roles/iam.serviceAccountUser
    fi
  fi

  note "Service accounts"
  remove iam service-accounts delete "$RUNTIME_SA"
  remove iam service-accounts delete "$TRIGGER_SA"
  if [[ -n $CREATED_INVOKER_SA ]]; then remove iam service-accounts delete "$CREATED_INVOKER_SA"; fi
  note "Removed. The APIs stay enabled; the queues and their tasks were never touched."
}

if ! $DRY_RUN && ! command -v gcloud >/dev/null 2>&1; then
  die "gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
fi
if $DELETE; then delete_all; else deploy; fi
