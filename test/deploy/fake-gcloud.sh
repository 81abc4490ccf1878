#!/usr/bin/env bash
# A fake gcloud for deploy.sh's tests: records every call, refuses any command or flag the real gcloud
# does not take (the table below, written from the gcloud reference), and answers the way gcloud does
# from a small state kept in files. It never reaches Google Cloud. Only the `--flag=value` form is
# understood, which is the form deploy.sh writes.
#
#   FAKE_GCLOUD_STATE     directory of the state (required); calls are logged to calls.log there, one a
#                         line, arguments separated by the 0x1f byte
#   FAKE_GCLOUD_QUEUES    space-separated full names of the Cloud Tasks queues that exist beforehand
#                         (RUNNING; a name followed by :PAUSED exists PAUSED)
#   FAKE_GCLOUD_ACCOUNTS  space-separated e-mails of service accounts that exist beforehand
#   FAKE_GCLOUD_TASKS     space-separated QUEUE=N: the queue (full name) holds N tasks while it exists
#   FAKE_GCLOUD_FAIL      a fragment: a call whose arguments, joined by spaces, contain it is denied
#   FAKE_GCLOUD_FAIL_TEXT the error text of that denial (default: PERMISSION_DENIED)
#   FAKE_GCLOUD_IAM_LAG   1: the first IAM call naming a new account answers that it does not exist yet
#   FAKE_GCLOUD_GONE      a fragment: a remove-iam-policy-binding call that contains it finds its binding
#                         gone (removed by someone else since deploy.sh read the policy)
set -euo pipefail

state=${FAKE_GCLOUD_STATE:?FAKE_GCLOUD_STATE is not set}
[[ -d $state/r ]] || mkdir -p "$state/r"
{
  printf '%s\x1f' "$@"
  printf '\n'
} >>"$state/calls.log"

# command | positional arguments (n, or n+ for at least n) | flags (a trailing = takes a value) | page
# Pages: https://cloud.google.com/sdk/gcloud/reference/<the command, with / for spaces>. Flags that
# gcloud offers but deploy.sh never uses are listed only where a neighbour of a used one makes a typo
# plausible; everything not listed is refused, as gcloud refuses unknown flags. The table is a literal,
# split below by word splitting: bash reads a heredoc or a here-string one byte a syscall, which made up
# most of each call's time.
TABLE='projects describe|1||projects/describe
projects get-iam-policy|1|filter= limit= sort-by= page-size=|projects/get-iam-policy
projects add-iam-policy-binding|1|member= role= condition= condition-from-file=|projects/add-iam-policy-binding
projects remove-iam-policy-binding|1|member= role= condition= condition-from-file= all|projects/remove-iam-policy-binding
services enable|1+|async|services/enable
tasks queues describe|1|location=|tasks/queues/describe
tasks queues create|1|location= log-sampling-ratio= max-attempts= max-retry-duration= max-doublings= min-backoff= max-backoff= max-dispatches-per-second= max-concurrent-dispatches= routing-override= http-uri-override= http-method-override= http-header-override= http-oauth-service-account-email-override= http-oidc-service-account-email-override=|tasks/queues/create
tasks queues update|1|location= log-sampling-ratio= max-attempts= max-retry-duration= max-doublings= min-backoff= max-backoff= max-dispatches-per-second= max-concurrent-dispatches= routing-override= clear-max-attempts clear-max-retry-duration clear-max-doublings clear-min-backoff clear-max-backoff clear-max-dispatches-per-second clear-max-concurrent-dispatches clear-log-sampling-ratio|tasks/queues/update
tasks queues delete|1|location=|tasks/queues/delete
tasks queues pause|1|location=|tasks/queues/pause
tasks queues resume|1|location=|tasks/queues/resume
tasks queues list|0|location= filter= limit= sort-by= page-size= uri|tasks/queues/list
tasks list|0|queue= location= filter= limit= sort-by= page-size= uri|tasks/list
tasks queues get-iam-policy|1|location= filter= limit= sort-by= page-size=|tasks/queues/get-iam-policy
tasks queues add-iam-policy-binding|1|location= member= role=|tasks/queues/add-iam-policy-binding
tasks queues remove-iam-policy-binding|1|location= member= role=|tasks/queues/remove-iam-policy-binding
iam service-accounts describe|1||iam/service-accounts/describe
iam service-accounts create|1|display-name= description=|iam/service-accounts/create
iam service-accounts update|1|display-name= description=|iam/service-accounts/update
iam service-accounts delete|1|recommend=|iam/service-accounts/delete
iam service-accounts get-iam-policy|1|filter= limit= sort-by= page-size=|iam/service-accounts/get-iam-policy
iam service-accounts add-iam-policy-binding|1|member= role= condition= condition-from-file=|iam/service-accounts/add-iam-policy-binding
iam service-accounts remove-iam-policy-binding|1|member= role= condition= condition-from-file= all|iam/service-accounts/remove-iam-policy-binding
iam roles describe|1|organization=|iam/roles/describe
iam roles create|1|organization= file= title= description= permissions= stage=|iam/roles/create
iam roles update|1|organization= file= title= description= permissions= add-permissions= remove-permissions= stage=|iam/roles/update
iam roles undelete|1|organization=|iam/roles/undelete
iam roles delete|1|organization=|iam/roles/delete
pubsub topics describe|1||pubsub/topics/describe
pubsub topics create|1+|labels= message-retention-duration= kms-key= message-storage-policy-allowed-regions= schema=|pubsub/topics/create
pubsub topics delete|1+||pubsub/topics/delete
pubsub topics get-iam-policy|1|filter= limit= sort-by= page-size=|pubsub/topics/get-iam-policy
pubsub topics add-iam-policy-binding|1|member= role=|pubsub/topics/add-iam-policy-binding
pubsub topics remove-iam-policy-binding|1|member= role=|pubsub/topics/remove-iam-policy-binding
pubsub subscriptions describe|1||pubsub/subscriptions/describe
pubsub subscriptions create|1+|topic= topic-project= ack-deadline= push-endpoint= push-auth-service-account= push-auth-token-audience= push-no-wrapper push-no-wrapper-write-metadata dead-letter-topic= dead-letter-topic-project= max-delivery-attempts= min-retry-delay= max-retry-delay= message-retention-duration= retain-acked-messages expiration-period= enable-message-ordering message-filter= enable-exactly-once-delivery labels=|pubsub/subscriptions/create
pubsub subscriptions update|1|ack-deadline= push-endpoint= push-auth-service-account= push-auth-token-audience= push-no-wrapper dead-letter-topic= dead-letter-topic-project= max-delivery-attempts= clear-dead-letter-policy min-retry-delay= max-retry-delay= clear-retry-policy message-retention-duration= retain-acked-messages expiration-period= enable-exactly-once-delivery update-labels= clear-labels remove-labels=|pubsub/subscriptions/update
pubsub subscriptions delete|1+||pubsub/subscriptions/delete
pubsub subscriptions get-iam-policy|1|filter= limit= sort-by= page-size=|pubsub/subscriptions/get-iam-policy
pubsub subscriptions add-iam-policy-binding|1|member= role=|pubsub/subscriptions/add-iam-policy-binding
pubsub subscriptions remove-iam-policy-binding|1|member= role=|pubsub/subscriptions/remove-iam-policy-binding
run deploy|1|region= source= image= function= base-image= automatic-updates build-service-account= service-account= env-vars-file= set-env-vars= update-env-vars= timeout= max-instances= min-instances= concurrency= cpu= memory= allow-unauthenticated no-allow-unauthenticated labels= update-labels= clear-labels remove-labels= ingress= cpu-boost no-cpu-boost cpu-throttling no-cpu-throttling description= async|run/deploy
run services update|1|region= service-account= env-vars-file= set-env-vars= update-env-vars= timeout= max-instances= min-instances= concurrency= cpu= memory= labels= update-labels= clear-labels remove-labels= ingress= cpu-boost no-cpu-boost description= async|run/services/update
run services describe|1|region=|run/services/describe
run services delete|1|region= async|run/services/delete
run services get-iam-policy|1|region= filter= limit= sort-by= page-size=|run/services/get-iam-policy
run services add-iam-policy-binding|1|region= member= role= condition= condition-from-file=|run/services/add-iam-policy-binding
run services remove-iam-policy-binding|1|region= member= role= condition= condition-from-file= all|run/services/remove-iam-policy-binding
scheduler jobs describe|1|location=|scheduler/jobs/describe
scheduler jobs delete|1|location=|scheduler/jobs/delete
scheduler jobs create pubsub|1|location= schedule= topic= message-body= message-body-from-file= attributes= time-zone= description= max-retry-attempts= max-retry-duration= min-backoff= max-backoff= max-doublings=|scheduler/jobs/create/pubsub
scheduler jobs update pubsub|1|location= schedule= topic= message-body= message-body-from-file= update-attributes= clear-attributes remove-attributes= time-zone= description= max-retry-attempts= max-retry-duration= min-backoff= max-backoff= max-doublings= clear-max-retry-attempts|scheduler/jobs/update/pubsub
beta monitoring channels list|0|filter= limit= sort-by= page-size= uri|beta/monitoring/channels/list
beta monitoring channels create|0|display-name= type= channel-labels= description= enabled no-enabled user-labels= channel-content= channel-content-from-file=|beta/monitoring/channels/create
beta monitoring channels delete|1|force|beta/monitoring/channels/delete
logging metrics describe|1||logging/metrics/describe
logging metrics create|1|config-from-file= description= log-filter= bucket-name=|logging/metrics/create
logging metrics update|1|config-from-file= description= log-filter= bucket-name=|logging/metrics/update
logging metrics delete|1||logging/metrics/delete
monitoring dashboards describe|1||monitoring/dashboards/describe
monitoring dashboards create|0|config= config-from-file= validate-only|monitoring/dashboards/create
monitoring dashboards update|1|config= config-from-file=|monitoring/dashboards/update
monitoring dashboards delete|1||monitoring/dashboards/delete
monitoring policies list|0|filter= limit= sort-by= page-size= uri|monitoring/policies/list
monitoring policies create|0|notification-channels= policy= policy-from-file= aggregation= condition-display-name= condition-filter= duration= if= trigger-count= trigger-percent= combiner= display-name= no-enabled user-labels= documentation-format= documentation= documentation-from-file=|monitoring/policies/create
monitoring policies update|1|fields= combiner= display-name= enabled no-enabled add-notification-channels= clear-notification-channels remove-notification-channels= set-notification-channels= documentation-format= documentation= documentation-from-file= update-user-labels= clear-user-labels remove-user-labels= policy= policy-from-file=|monitoring/policies/update
monitoring policies delete|1||monitoring/policies/delete'
# Flags every command takes (gcloud wide flags: gcloud topic flags).
GLOBAL_FLAGS='project= quiet format= flatten= verbosity= account= impersonate-service-account= billing-project= configuration= log-http user-output-enabled= trace-token='

fail() {
  local status=$1
  shift
  printf 'ERROR: (gcloud%s) %s\n' "${group:-}" "$*" >&2
  exit "$status"
}

# --- The command, its positional arguments and its flags, checked against the table ---------------------

words=()
declare -A flag=()
flag_order=()
for arg in "$@"; do
  case $arg in
    --*=*) name=${arg%%=*} && flag[${name#--}]=${arg#*=} && flag_order+=("${name#--}=") ;;
    --*) flag[${arg#--}]=true && flag_order+=("${arg#--}") ;;
    *) words+=("$arg") ;;
  esac
done
command=
spec=
# The longest run of leading words that names a command: its first n words; the rest are its arguments.
declare -A spec_of=()
IFS=$'\n'
set -f
for line in $TABLE; do spec_of[${line%%|*}]=$line; done
set +f
unset IFS
for ((n = ${#words[@]}; n > 0; n--)); do
  path=${words[*]:0:n}
  if [[ -n $path && -n ${spec_of[$path]:-} ]]; then
    command=$path
    spec=${spec_of[$path]}
    break
  fi
done
group=.${command// /.}
[[ -n $command ]] || fail 2 "Invalid choice: '${words[*]:0:3}' (fake gcloud: not a command deploy.sh may use)"
positional=${spec#*|}
allowed=${positional#*|}
positional=${positional%%|*}
allowed=${allowed%%|*}
args=("${words[@]:n}")
if [[ $positional == *+ ]]; then
  ((${#args[@]} >= ${positional%+})) || fail 2 "argument: Must be specified."
else
  ((${#args[@]} == positional)) || fail 2 "unrecognized arguments: ${args[*]:$positional} (takes $positional positional)"
fi
for given in "${flag_order[@]}"; do
  if [[ " $allowed $GLOBAL_FLAGS " != *" $given "* ]]; then
    if [[ " $allowed $GLOBAL_FLAGS " == *" ${given%=} "* || " $allowed $GLOBAL_FLAGS " == *" ${given}= "* ]]; then
      fail 2 "argument --${given%=}: wrong form (a value where none is taken, or none where one is needed)"
    fi
    fail 2 "unrecognized arguments: --${given%=}"
  fi
done
project=${flag[project]:-}
[[ -n $project ]] || fail 1 'The required property [project] is not currently set.'
[[ ${flag[quiet]:-} == true ]] || fail 1 'fake gcloud: deploy.sh must pass --quiet (no prompts)'
call=$*
if [[ -n ${FAKE_GCLOUD_FAIL:-} && $call == *"$FAKE_GCLOUD_FAIL"* ]]; then
  fail 1 "${FAKE_GCLOUD_FAIL_TEXT:-PERMISSION_DENIED: The caller does not have permission. This command is authenticated as fake@example.com.}"
fi
id=${args[0]:-}
number=123456789012
# The queue a tasks command names, by its full name.
queue=projects/$project/locations/${flag[location]:-}/queues/$id

# --- State ---------------------------------------------------------------------------------------------

# Helpers answer in variables, not on standard output: each $(...) forks a process, and forks made up
# most of a call's time.
# A resource's state file, into FILE.
at() {
  [[ -d $state/r/$1 ]] || mkdir -p "$state/r/$1"
  FILE=$state/r/$1/${2//\//\~}
}
# Whether a resource exists; FILE is its state file either way.
exists() { at "$1" "$2" && [[ -e $FILE ]]; }
# Whether file $1 has the line $2 (grep -qxF without starting grep).
has_line() {
  local line
  while IFS= read -r line; do
    if [[ $line == "$2" ]]; then return 0; fi
  done <"$1"
  return 1
}
# The settings a command was given, one `--flag=value` a line (env-vars-file paths are temporary).
record() {
  local arg
  for arg in "${flag_order[@]}"; do
    case $arg in
      project= | quiet | format= | env-vars-file= | config-from-file= | policy-from-file=) ;;
      *=) printf -- '--%s%s\n' "$arg" "${flag[${arg%=}]}" ;;
      *) printf -- '--%s\n' "$arg" ;;
    esac
  done
}
need() { [[ -n ${flag[$1]:-} ]] || fail 2 "argument --$1: Must be specified."; }
# Reads a JSON file once (node starts slowly): fails unless it parses; sets JSON_<field> for each field
# named, and writes the file without its etag to $state/json.
JSON_filter='' JSON_displayName='' JSON_name='' JSON_etag=''
json_read() {
  local path=$1 out line i=0
  shift
  local fields=("$@")
  # shellcheck disable=SC2016 # JavaScript, not shell
  out=$(node -e 'const fs = require("fs");
    const o = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    for (const k of process.argv.slice(2)) console.log(String(o[k] ?? "").replace(/\n/g, " "));
    delete o.etag;
    fs.writeFileSync(process.argv[1] + ".stored", JSON.stringify(o, null, 2));' "$path" "$@" 2>/dev/null) ||
    fail 1 "INVALID_ARGUMENT: $path is not valid JSON or YAML"
  while IFS= read -r line && ((i < ${#fields[@]})); do
    printf -v "JSON_${fields[i]}" '%s' "$line"
    i=$((i + 1))
  done <<<"$out"
  mv "$path.stored" "$state/json"
}
hash() { sha256sum | cut -c1-16; }

account_exists() {
  local email=$1
  case $email in
    "service-$number@gcp-sa-pubsub.iam.gserviceaccount.com") return 0 ;;
    # The notification service agent appears with the project's first Pub/Sub channel.
    "service-$number@gcp-sa-monitoring-notification.iam.gserviceaccount.com")
      compgen -G "$state/r/channel/*" >/dev/null
      return
      ;;
  esac
  exists account "$email" || [[ " ${FAKE_GCLOUD_ACCOUNTS:-} " == *" $email "* ]]
}
require_account() {
  account_exists "$1" || fail 1 "NOT_FOUND: Service account projects/$project/serviceAccounts/$1 does not exist."
}
lagging() {
  if [[ ${FAKE_GCLOUD_IAM_LAG:-} == 1 && ! -e $state/lag-done ]] && exists account "$1"; then
    : >"$state/lag-done"
    fail 1 "INVALID_ARGUMENT: Service account $1 does not exist."
  fi
}
# The Cloud Tasks permissions IAM knows (Google's IAM roles page for Cloud Tasks, roles/cloudtasks.admin):
# a custom role naming another one, such as the cloudtasks.tasks.batchDelete of the v2beta3 reference, is
# refused, as IAM refuses it.
CLOUDTASKS_PERMISSIONS='cmekConfig.get cmekConfig.update locations.get locations.list operations.get
  queues.create queues.delete queues.get queues.getIamPolicy queues.list queues.pause queues.purge
  queues.resume queues.setIamPolicy queues.update tasks.create tasks.delete tasks.fullView tasks.get
  tasks.list tasks.run'
check_permissions() {
  local permission known permissions=()
  known=" $(tr -s '[:space:]' ' ' <<<"$CLOUDTASKS_PERMISSIONS") "
  IFS=, read -r -a permissions <<<"$1"
  for permission in "${permissions[@]}"; do
    if [[ $permission == cloudtasks.* && $known != *" ${permission#cloudtasks.} "* ]]; then
      fail 1 "INVALID_ARGUMENT: Permission $permission is not valid."
    fi
  done
}
queue_exists() {
  [[ " ${FAKE_GCLOUD_QUEUES:-} " == *" $1 "* || " ${FAKE_GCLOUD_QUEUES:-} " == *" $1:PAUSED "* ]] || exists queue "$1"
}
# A queue's state: what pause and resume wrote, else how it was given beforehand, else RUNNING.
queue_state() {
  if exists queue-state "$1"; then cat "$FILE"
  elif [[ " ${FAKE_GCLOUD_QUEUES:-} " == *" $1:PAUSED "* ]]; then echo PAUSED
  else echo RUNNING; fi
}
# Every queue of the location, by full name.
queues_in() {
  local prefix="projects/$project/locations/$1/queues/" name
  for name in ${FAKE_GCLOUD_QUEUES:-}; do
    name=${name%:PAUSED}
    if [[ $name == "$prefix"* ]]; then echo "$name"; fi
  done
  for name in "$state"/r/queue/*; do
    [[ -e $name ]] || continue
    name=${name##*/}
    name=${name//\~//}
    if [[ $name == "$prefix"* && " ${FAKE_GCLOUD_QUEUES:-} " != *" $name "* ]]; then echo "$name"; fi
  done
}
require_queue() { queue_exists "$1" || fail 1 'NOT_FOUND: Requested entity was not found.'; }
topic_exists() { [[ $1 == projects/* && $1 != "projects/$project/"* ]] || exists topic "${1#"projects/$project/topics/"}"; }

# The IAM resource a command names, checked to exist, into RESOURCE.
iam_resource() {
  case ${words[0]} in
    projects) [[ $id == "$project" ]] || fail 1 "NOT_FOUND: Project $id not found."; RESOURCE=project:$id ;;
    tasks) require_queue "$queue"; RESOURCE=queue:$queue ;;
    iam) require_account "$id"; RESOURCE=account:$id ;;
    pubsub)
      if [[ ${words[1]} == topics ]]; then
        topic_exists "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
        RESOURCE=topic:${id#"projects/$project/topics/"}
      else
        exists subscription "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
        RESOURCE=subscription:$id
      fi
      ;;
    run) exists service "$id" || fail 1 "Cannot find service [$id]"; RESOURCE=service:$id ;;
  esac
}

iam_command() {
  local policy member=${flag[member]:-} role=${flag[role]:-}
  iam_resource
  at binding "$RESOURCE"
  policy=$FILE
  [[ -e $policy ]] || : >"$policy"
  case ${command##* } in
    get-iam-policy)
      [[ ${flag[flatten]:-} == 'bindings[].members' ]] || fail 2 'fake gcloud: get-iam-policy is read flattened'
      # The policy file has one "member role" line a binding.
      local bound_member bound_role
      if [[ ${flag[filter]:-} == bindings.members=* && ${flag[format]:-} == 'value(bindings.role)' ]]; then
        while read -r bound_member bound_role; do
          if [[ $bound_member == "${flag[filter]#bindings.members=}" ]]; then echo "$bound_role"; fi
        done <"$policy"
      elif [[ ${flag[filter]:-} == bindings.role=* && ${flag[format]:-} == 'value(bindings.members)' ]]; then
        while read -r bound_member bound_role; do
          if [[ $bound_role == "${flag[filter]#bindings.role=}" ]]; then echo "$bound_member"; fi
        done <"$policy"
      else
        fail 2 "fake gcloud: unsupported policy read ${flag[filter]:-} ${flag[format]:-}"
      fi
      ;;
    add-iam-policy-binding)
      need member
      need role
      if [[ $member == serviceAccount:* ]]; then
        account_exists "${member#serviceAccount:}" ||
          fail 1 "INVALID_ARGUMENT: Service account ${member#serviceAccount:} does not exist."
        lagging "${member#serviceAccount:}"
      fi
      if [[ $role == projects/*/roles/* ]] &&
        { ! exists role "${role##*/}" || has_line "$FILE" deleted=true; }; then
        fail 1 "INVALID_ARGUMENT: Role ($role) does not exist in the resource's hierarchy."
      fi
      has_line "$policy" "$member $role" || printf '%s %s\n' "$member" "$role" >>"$policy"
      printf 'Updated IAM policy for [%s].\n' "$id" >&2
      ;;
    remove-iam-policy-binding)
      if [[ -n ${FAKE_GCLOUD_GONE:-} && $call == *"$FAKE_GCLOUD_GONE"* ]]; then
        grep -vxF "$member $role" "$policy" >"$policy.new" || true
        mv "$policy.new" "$policy"
      fi
      if ! has_line "$policy" "$member $role"; then
        # gcloud's words: a command that takes conditions looks for the principal, role and condition
        # (with --all, for the principal and role under any condition); the others for the two.
        if [[ " $allowed " != *' condition= '* ]]; then
          fail 1 'Policy binding with the specified principal and role not found!'
        elif [[ ${flag[all]:-} == true ]]; then
          fail 1 'Policy bindings with the specified principal and role not found!'
        fi
        fail 1 'Policy binding with the specified principal, role, and condition not found!'
      fi
      grep -vxF "$member $role" "$policy" >"$policy.new" || true
      mv "$policy.new" "$policy"
      ;;
  esac
}

# --- The commands ---------------------------------------------------------------------------------------

case $command in
  *-iam-policy*) iam_command ;;
  'projects describe')
    [[ $id == "$project" ]] || fail 1 "NOT_FOUND: Project $id not found."
    [[ ${flag[format]:-} == 'value(projectNumber)' ]] || fail 2 'fake gcloud: unsupported format'
    echo "$number"
    ;;
  'services enable') echo 'Operation "operations/acf.p2-fake" finished successfully.' >&2 ;;
  'tasks queues describe')
    require_queue "$queue"
    case ${flag[format]:-} in
      'value(name)') echo "$queue" ;;
      'value(state)') queue_state "$queue" ;;
      *) fail 2 'fake gcloud: unsupported format' ;;
    esac
    ;;
  'tasks queues pause' | 'tasks queues resume')
    require_queue "$queue"
    at queue-state "$queue"
    if [[ $command == *pause ]]; then echo PAUSED; else echo RUNNING; fi >"$FILE"
    ;;
  'tasks queues list')
    need location
    [[ ${flag[format]:-} == 'value(name)' ]] || fail 2 'fake gcloud: unsupported format'
    queues_in "${flag[location]}"
    ;;
  'tasks list')
    need queue
    need location
    queue=projects/$project/locations/${flag[location]}/queues/${flag[queue]}
    require_queue "$queue"
    [[ ${flag[format]:-} == 'value(name)' ]] || fail 2 'fake gcloud: unsupported format'
    held=0
    for entry in ${FAKE_GCLOUD_TASKS:-}; do
      if [[ ${entry%=*} == "$queue" ]]; then held=${entry##*=}; fi
    done
    for ((i = 1; i <= held && i <= ${flag[limit]:-held}; i++)); do echo "$queue/tasks/task-$i"; done
    ;;
  'tasks queues create')
    ! queue_exists "$queue" || fail 1 "ALREADY_EXISTS: Requested entity already exists"
    at queue "$queue"
    record >"$FILE"
    ;;
  'tasks queues update')
    require_queue "$queue"
    at queue "$queue"
    record >"$FILE"
    ;;
  'tasks queues delete')
    exists queue "$queue" || fail 1 'NOT_FOUND: Requested entity was not found.'
    rm -f "$FILE"
    at binding "queue:$queue"
    rm -f "$FILE"
    ;;
  'iam service-accounts describe')
    require_account "$id"
    case ${flag[format]:-} in
      'value(email)') echo "$id" ;;
      'value(description)') at account "$id" && { sed -n 's/^--description=//p' "$FILE" 2>/dev/null || true; } ;;
      *) fail 2 'fake gcloud: unsupported format' ;;
    esac
    ;;
  'iam service-accounts create')
    email=$id@$project.iam.gserviceaccount.com
    ! account_exists "$email" || fail 1 "ALREADY_EXISTS: Service account $id already exists within project projects/$project."
    at account "$email"
    record >"$FILE"
    ;;
  'iam service-accounts update')
    exists account "$id" || fail 1 "NOT_FOUND: Service account projects/$project/serviceAccounts/$id does not exist."
    { grep -v '^--description=' "$FILE" || true; record; } >"$state/tmp" && mv "$state/tmp" "$FILE"
    ;;
  'iam service-accounts delete')
    exists account "$id" || fail 1 "NOT_FOUND: Service account projects/$project/serviceAccounts/$id does not exist."
    rm -f "$FILE"
    at binding "account:$id"
    rm -f "$FILE"
    ;;
  'iam roles describe')
    exists role "$id" || fail 1 "NOT_FOUND: The role named projects/$project/roles/$id was not found."
    [[ ${flag[format]:-} == yaml\(* ]] || fail 2 'fake gcloud: unsupported format'
    echo "name: projects/$project/roles/$id"
    if has_line "$FILE" deleted=true; then echo 'deleted: true'; fi
    echo 'includedPermissions:'
    sed -n 's/^permissions=//p' "$FILE" | tr ',' '\n' | sed 's/^/- /'
    ;;
  'iam roles create')
    [[ $id =~ ^[a-zA-Z0-9_.]{3,64}$ ]] || fail 1 "INVALID_ARGUMENT: The role id $id is not valid."
    need title
    need permissions
    check_permissions "${flag[permissions]}"
    ! exists role "$id" || fail 1 "ALREADY_EXISTS: A role named $id in projects/$project already exists."
    printf 'deleted=false\npermissions=%s\n' "${flag[permissions]}" >"$FILE"
    ;;
  'iam roles update')
    if ! exists role "$id" || has_line "$FILE" deleted=true; then
      fail 1 "FAILED_PRECONDITION: You can't update a deleted role."
    fi
    check_permissions "${flag[permissions]:-}"
    printf 'deleted=false\npermissions=%s\n' "${flag[permissions]}" >"$FILE"
    ;;
  'iam roles undelete')
    { exists role "$id" && has_line "$FILE" deleted=true; } || fail 1 "FAILED_PRECONDITION: Role $id is not deleted."
    sed -i 's/^deleted=true$/deleted=false/' "$FILE"
    ;;
  'iam roles delete')
    exists role "$id" || fail 1 "NOT_FOUND: The role named projects/$project/roles/$id was not found."
    sed -i 's/^deleted=false$/deleted=true/' "$FILE"
    ;;
  'pubsub topics describe')
    exists topic "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
    echo "projects/$project/topics/$id"
    ;;
  'pubsub topics create')
    ! exists topic "$id" || fail 1 "ALREADY_EXISTS: Resource already exists in the project (resource=$id)."
    record >"$FILE"
    ;;
  'pubsub topics delete')
    exists topic "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
    rm -f "$FILE"
    at binding "topic:$id"
    rm -f "$FILE"
    ;;
  'pubsub subscriptions describe')
    exists subscription "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
    echo "projects/$project/subscriptions/$id"
    ;;
  'pubsub subscriptions create' | 'pubsub subscriptions update')
    if [[ ${words[2]} == create ]]; then
      ! exists subscription "$id" || fail 1 "ALREADY_EXISTS: Resource already exists in the project (resource=$id)."
      need topic
      topic_exists "${flag[topic]}" || fail 1 "NOT_FOUND: Resource not found (resource=${flag[topic]})."
    else
      exists subscription "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
    fi
    deadline=${flag[ack-deadline]:-10}
    ((deadline >= 10 && deadline <= 600)) || fail 1 'INVALID_ARGUMENT: The ack deadline must be between 10 and 600 seconds.'
    attempts=${flag[max-delivery-attempts]:-5}
    ((attempts >= 5 && attempts <= 100)) || fail 1 'INVALID_ARGUMENT: max delivery attempts must be between 5 and 100.'
    if [[ -n ${flag[dead-letter-topic]:-} ]] && ! topic_exists "${flag[dead-letter-topic]}"; then
      fail 1 "NOT_FOUND: Resource not found (resource=${flag[dead-letter-topic]})."
    fi
    if [[ -n ${flag[push-auth-service-account]:-} ]]; then
      account_exists "${flag[push-auth-service-account]}" ||
        fail 1 "INVALID_ARGUMENT: Service account ${flag[push-auth-service-account]} does not exist."
      lagging "${flag[push-auth-service-account]}"
    fi
    at subscription "$id"
    if [[ ${words[2]} == create ]]; then
      record >"$FILE"
    else
      { grep -- '^--topic=' "$FILE" || true; record; } >"$state/tmp"
      mv "$state/tmp" "$FILE"
    fi
    ;;
  'pubsub subscriptions delete')
    exists subscription "$id" || fail 1 "NOT_FOUND: Resource not found (resource=$id)."
    rm -f "$FILE"
    at binding "subscription:$id"
    rm -f "$FILE"
    ;;
  'run deploy' | 'run services update')
    need region
    if [[ $command == 'run deploy' ]]; then
      [[ -n ${flag[source]:-} || -n ${flag[image]:-} ]] || fail 2 'argument --source or --image: Must be specified.'
      if [[ -n ${flag[function]:-} && -z ${flag[source]:-} ]]; then fail 2 '--function requires --source.'; fi
      if [[ -n ${flag[build-service-account]:-} ]]; then
        [[ ${flag[build-service-account]} =~ ^projects/[^/]+/serviceAccounts/(.+)$ ]] ||
          fail 1 "INVALID_ARGUMENT: --build-service-account must be projects/PROJECT/serviceAccounts/EMAIL"
        require_account "${BASH_REMATCH[1]}"
      fi
    else
      exists service "$id" || fail 1 "Cannot find service [$id]"
    fi
    if [[ -n ${flag[service-account]:-} ]]; then require_account "${flag[service-account]}"; fi
    timeout_s=${flag[timeout]:-300s}
    timeout_s=${timeout_s%s}
    ((timeout_s <= 3600)) || fail 1 'INVALID_ARGUMENT: timeout must be at most 3600s'
    if ((${flag[concurrency]:-80} > 1)) && [[ ${flag[cpu]:-1} == 0.* ]]; then
      fail 1 'INVALID_ARGUMENT: concurrency above 1 needs at least 1 CPU'
    fi
    at service-labels "$id"
    labels=$FILE
    [[ -e $labels ]] || : >"$labels"
    IFS=, read -r -a pairs <<<"${flag[update-labels]:-}"
    for pair in "${pairs[@]}"; do
      { grep -v "^${pair%%=*}=" "$labels" || true; echo "$pair"; } >"$state/tmp" && mv "$state/tmp" "$labels"
    done
    if [[ $command == 'run deploy' ]]; then
      at service "$id"
      record | grep -v -- '^--update-labels=' >"$FILE"
      echo "build=$(($(cat "$state/builds" 2>/dev/null || echo 0) + 1))" >"$state/builds"
    fi
    if [[ -n ${flag[env-vars-file]:-} ]]; then at service-env "$id" && cp "${flag[env-vars-file]}" "$FILE"; fi
    echo "Service [$id] revision has been deployed and is serving 100 percent of traffic." >&2
    ;;
  'run services describe')
    exists service "$id" || fail 1 "Cannot find service [$id]"
    [[ ${flag[format]:-} == 'yaml(metadata.labels,spec.template.spec.containers[0].env)' ]] ||
      fail 2 'fake gcloud: unsupported format'
    printf 'metadata:\n  labels:\n'
    at service-labels "$id"
    sed 's/^\([^=]*\)=\(.*\)$/    \1: \2/' "$FILE"
    at service-env "$id"
    printf 'spec:\n  template:\n    spec:\n      containers:\n      - env:\n'
    while IFS= read -r line; do
      [[ $line =~ ^([A-Z_]+):\ \"(.*)\"$ ]] || continue
      printf '        - name: %s\n          value: %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]//\\\"/\"}"
    done <"$FILE"
    ;;
  'run services delete')
    exists service "$id" || fail 1 "Cannot find service [$id]"
    rm -f "$FILE"
    for kind in service-env service-labels; do at "$kind" "$id" && rm -f "$FILE"; done
    at binding "service:$id"
    rm -f "$FILE"
    ;;
  'scheduler jobs describe')
    exists job "$id" || fail 1 'NOT_FOUND: Job not found.'
    echo "projects/$project/locations/${flag[location]:-}/jobs/$id"
    ;;
  'scheduler jobs create pubsub' | 'scheduler jobs update pubsub')
    need location
    if [[ ${words[2]} == create ]]; then
      ! exists job "$id" || fail 1 "ALREADY_EXISTS: Job projects/$project/locations/${flag[location]}/jobs/$id already exists."
      need schedule
      need topic
    else
      exists job "$id" || fail 1 'NOT_FOUND: Job not found.'
    fi
    topic_exists "${flag[topic]:-none}" || fail 1 'NOT_FOUND: Topic not found.'
    at job "$id"
    record >"$FILE"
    ;;
  'scheduler jobs delete')
    exists job "$id" || fail 1 'NOT_FOUND: Job not found.'
    rm -f "$FILE"
    ;;
  'beta monitoring channels list')
    [[ ${flag[filter]:-} =~ labels\.topic=\"([^\"]+)\" ]] || fail 2 'fake gcloud: list channels by labels.topic'
    for channel in "$state"/r/channel/*; do
      [[ -e $channel ]] || continue
      if grep -qxF -- "--channel-labels=topic=${BASH_REMATCH[1]}" "$channel"; then
        echo "projects/$project/notificationChannels/${channel##*/}"
      fi
    done
    ;;
  'beta monitoring channels create')
    [[ ${flag[type]:-} == pubsub ]] || fail 2 'fake gcloud: only pubsub channels'
    next=$(($(cat "$state/channel-counter" 2>/dev/null || echo 4100) + 1))
    echo "$next" >"$state/channel-counter"
    at channel "$next"
    record >"$FILE"
    echo "projects/$project/notificationChannels/$next"
    ;;
  'beta monitoring channels delete')
    exists channel "${id##*/}" || fail 1 "NOT_FOUND: Notification channel $id does not exist."
    rm -f "$FILE"
    ;;
  'logging metrics describe')
    exists metric "$id" || fail 1 "NOT_FOUND: Metric $id does not exist."
    echo "$id"
    ;;
  'logging metrics create' | 'logging metrics update')
    need config-from-file
    json_read "${flag[config-from-file]}" filter
    [[ -n $JSON_filter ]] || fail 1 'INVALID_ARGUMENT: A filter is required.'
    if [[ ${words[2]} == create ]]; then
      ! exists metric "$id" || fail 1 "ALREADY_EXISTS: Metric $id already exists."
    else
      exists metric "$id" || fail 1 "NOT_FOUND: Metric $id does not exist."
    fi
    at metric "$id"
    mv "$state/json" "$FILE"
    ;;
  'logging metrics delete')
    exists metric "$id" || fail 1 "NOT_FOUND: Metric $id does not exist."
    rm -f "$FILE"
    ;;
  'monitoring dashboards describe')
    exists dashboard "${id##*/}" || fail 1 'NOT_FOUND: Requested entity was not found.'
    hash <"$FILE"
    ;;
  'monitoring dashboards create' | 'monitoring dashboards update')
    need config-from-file
    json_read "${flag[config-from-file]}" displayName name etag
    [[ -n $JSON_displayName ]] || fail 1 'INVALID_ARGUMENT: displayName is required.'
    name=$JSON_name
    if [[ ${words[2]} == create ]]; then
      [[ $name == "projects/$project/dashboards/"* ]] || fail 2 'fake gcloud: name the dashboard'
      ! exists dashboard "${name##*/}" || fail 1 'ALREADY_EXISTS: Requested entity already exists'
    else
      [[ $name == "$id" || -z $name ]] || fail 1 'INVALID_ARGUMENT: the name differs from the dashboard updated'
      exists dashboard "${id##*/}" || fail 1 'NOT_FOUND: Requested entity was not found.'
      [[ $JSON_etag == $(hash <"$FILE") ]] ||
        fail 1 'ABORTED: The dashboard was changed since it was read (etag mismatch).'
      name=$id
    fi
    at dashboard "${name##*/}"
    mv "$state/json" "$FILE"
    ;;
  'monitoring dashboards delete')
    exists dashboard "${id##*/}" || fail 1 'NOT_FOUND: Requested entity was not found.'
    rm -f "$FILE"
    ;;
  'monitoring policies list')
    [[ ${flag[filter]:-} =~ ^userLabels\.([a-z_]+)=\"([^\"]+)\"$ ]] || fail 2 'fake gcloud: list policies by a user label'
    for policy in "$state"/r/policy/*; do
      [[ -e $policy ]] || continue
      grep -qx "label:${BASH_REMATCH[1]}=${BASH_REMATCH[2]}" "$policy" || continue
      name="projects/$project/alertPolicies/${policy##*/}"
      case ${flag[format]:-} in
        'value(name)') echo "$name" ;;
        'value(name,userLabels.rerun_policy)') printf '%s\t%s\n' "$name" "$(sed -n 's/^label:rerun_policy=//p' "$policy")" ;;
        *) fail 2 'fake gcloud: unsupported format' ;;
      esac
    done
    ;;
  'monitoring policies create' | 'monitoring policies update')
    need policy-from-file
    json_read "${flag[policy-from-file]}" displayName
    [[ -n $JSON_displayName ]] || fail 1 'INVALID_ARGUMENT: displayName is required.'
    if [[ ${words[2]} == create ]]; then
      policy_id=$(($(cat "$state/policy-counter" 2>/dev/null || echo 900) + 1))
      echo "$policy_id" >"$state/policy-counter"
      channels=${flag[notification-channels]:-}
      labels=${flag[user-labels]:-}
    else
      policy_id=${id##*/}
      exists policy "$policy_id" || fail 1 'NOT_FOUND: Requested entity was not found.'
      channels=${flag[set-notification-channels]:-}
      labels=${flag[update-user-labels]:-}
    fi
    IFS=, read -r -a list <<<"$channels"
    for channel in "${list[@]}"; do
      exists channel "${channel##*/}" || fail 1 "NOT_FOUND: Notification channel $channel does not exist."
    done
    at policy "$policy_id"
    {
      cat "$state/json"
      echo
      IFS=, read -r -a pairs <<<"$labels"
      for pair in "${pairs[@]}"; do echo "label:$pair"; done
      for channel in "${list[@]}"; do echo "channel:$channel"; done
    } >"$FILE"
    ;;
  'monitoring policies delete')
    exists policy "${id##*/}" || fail 1 'NOT_FOUND: Requested entity was not found.'
    rm -f "$FILE"
    ;;
  *) fail 2 "fake gcloud: $command has no behaviour here" ;;
esac
