#!/usr/bin/env bash
# A fake gcloud for deploy.sh's tests: records every call and answers the way gcloud does, from a small
# state kept in files. It never reaches Google Cloud. Only the `--flag=value` form is understood, which is
# the form deploy.sh writes.
#
#   FAKE_GCLOUD_STATE     directory of the state (required); calls are logged to calls.log there, one a
#                         line, arguments separated by the 0x1f byte
#   FAKE_GCLOUD_QUEUES    space-separated full names of the Cloud Tasks queues that exist
#   FAKE_GCLOUD_ACCOUNTS  space-separated e-mails of service accounts that exist beforehand
#   FAKE_GCLOUD_FAIL      a fragment: a call whose arguments, joined by spaces, contain it is denied
#   FAKE_GCLOUD_IAM_LAG   1: the first add-iam-policy-binding answers that its new account does not exist yet
set -euo pipefail

state=${FAKE_GCLOUD_STATE:?FAKE_GCLOUD_STATE is not set}
mkdir -p "$state/r"
{
  printf '%s\x1f' "$@"
  printf '\n'
} >>"$state/calls.log"

declare -A flag=()
words=()
normalized=()
for arg in "$@"; do
  case $arg in
    --project=* | --quiet) ;;
    --env-vars-file=*) normalized+=("--env-vars-file=<file>") ;;
    *) normalized+=("$arg") ;;
  esac
  case $arg in
    --*=*)
      name=${arg%%=*}
      flag[${name#--}]=${arg#*=}
      ;;
    --*) flag[${arg#--}]=true ;;
    *) words+=("$arg") ;;
  esac
done
command_path=
for word in "${words[@]}"; do
  case $word in
    projects | services | enable | describe | tasks | queues | iam | service-accounts | create | delete | \
      add-iam-policy-binding | remove-iam-policy-binding | pubsub | topics | functions | deploy | \
      add-invoker-policy-binding | scheduler | jobs | update | beta | monitoring | channels | list)
      command_path+=.$word
      ;;
    *) break ;;
  esac
done
project=${flag[project]:-}

error() {
  local status=$1
  shift
  printf 'ERROR: (gcloud%s) %s\n' "$command_path" "$*" >&2
  exit "$status"
}

[[ -n $project ]] || error 1 'The required property [project] is not currently set.'
[[ ${flag[quiet]:-} == true ]] || error 1 'fake gcloud: deploy.sh must pass --quiet (no prompts)'
if [[ -n ${FAKE_GCLOUD_FAIL:-} && "$*" == *"$FAKE_GCLOUD_FAIL"* ]]; then
  error 1 "PERMISSION_DENIED: The caller does not have permission. This command is authenticated as fake@example.com."
fi

# A resource's state file.
file() {
  local kind=$1 id=$2
  mkdir -p "$state/r/$kind"
  printf '%s/r/%s/%s' "$state" "$kind" "${id//\//\~}"
}
exists() { [[ -e $(file "$1" "$2") ]]; }
account_exists() {
  local email=$1
  if exists service-account "$email" || [[ " ${FAKE_GCLOUD_ACCOUNTS:-} " == *" $email "* ]]; then return 0; fi
  # The monitoring notification service agent appears with the project's first Pub/Sub channel.
  if [[ $email == service-123456789012@gcp-sa-monitoring-notification.iam.gserviceaccount.com ]]; then
    compgen -G "$state/r/channel/*" >/dev/null
    return
  fi
  return 1
}
queue_name() { printf 'projects/%s/locations/%s/queues/%s' "$project" "${flag[location]:-}" "$1"; }
require_queue() {
  [[ " ${FAKE_GCLOUD_QUEUES:-} " == *" $1 "* ]] || error 1 'NOT_FOUND: Requested entity was not found.'
}

# Adds or removes "member role" on a resource's policy, as add/remove-iam-policy-binding do.
bind() {
  local resource=$1 member=${flag[member]:-} role=${flag[role]:-$2}
  [[ -n $member && -n $role ]] || error 1 'argument --member --role: Must be specified.'
  if [[ $member == serviceAccount:* ]] && ! account_exists "${member#serviceAccount:}"; then
    error 1 "INVALID_ARGUMENT: Service account ${member#serviceAccount:} does not exist."
  fi
  if [[ ${FAKE_GCLOUD_IAM_LAG:-} == 1 && ! -e $state/lag-done && $member == serviceAccount:* ]]; then
    : >"$state/lag-done"
    error 1 "INVALID_ARGUMENT: Service account ${member#serviceAccount:} does not exist."
  fi
  local policy
  policy=$(file binding "$resource")
  touch "$policy"
  grep -qxF "$member $role" "$policy" || printf '%s %s\n' "$member" "$role" >>"$policy"
  printf 'Updated IAM policy for [%s].\nbindings:\n- members:\n  - %s\n  role: %s\netag: BwYfake=\nversion: 1\n' \
    "$resource" "$member" "$role"
}
unbind() {
  local resource=$1 member=${flag[member]:-} role=${flag[role]:-}
  local policy
  policy=$(file binding "$resource")
  if [[ ! -e $policy ]] || ! grep -qxF "$member $role" "$policy"; then
    printf 'ERROR: Policy binding with the specified principal, role, and condition not found!\n' >&2
    exit 1
  fi
  grep -vxF "$member $role" "$policy" >"$policy.new" || true
  mv "$policy.new" "$policy"
  printf 'Updated IAM policy for [%s].\n' "$resource"
}

id=${words[3]:-}
case "${words[0]:-} ${words[1]:-} ${words[2]:-}" in
  'projects describe '*)
    [[ ${words[2]} == "$project" ]] || error 1 "NOT_FOUND: Project ${words[2]} not found."
    if [[ ${flag[format]:-} == *projectNumber* ]]; then echo 123456789012; else echo "projectId: $project"; fi
    ;;
  'services enable '*)
    echo 'Operation "operations/acf.p2-123456789012-fake" finished successfully.' >&2
    ;;
  'tasks queues describe')
    require_queue "$(queue_name "$id")"
    queue_name "$id"
    echo
    ;;
  'tasks queues add-iam-policy-binding')
    require_queue "$(queue_name "$id")"
    bind "queue:$(queue_name "$id")"
    ;;
  'tasks queues remove-iam-policy-binding')
    require_queue "$(queue_name "$id")"
    unbind "queue:$(queue_name "$id")"
    ;;
  'iam service-accounts create')
    email=$id@$project.iam.gserviceaccount.com
    if exists service-account "$email"; then
      error 1 "Resource in projects [$project] is the subject of a conflict: Service account $id already exists within project projects/$project."
    fi
    printf '%s\n' "${normalized[@]}" >"$(file service-account "$email")"
    echo "Created service account [$id]." >&2
    ;;
  'iam service-accounts add-iam-policy-binding')
    account_exists "$id" || error 1 "PERMISSION_DENIED: Permission 'iam.serviceAccounts.setIamPolicy' denied on resource (or it may not exist)."
    bind "service-account:$id"
    ;;
  'iam service-accounts remove-iam-policy-binding')
    account_exists "$id" || error 1 "NOT_FOUND: Service account projects/$project/serviceAccounts/$id does not exist."
    unbind "service-account:$id"
    ;;
  'iam service-accounts delete')
    exists service-account "$id" || error 1 "NOT_FOUND: Service account projects/$project/serviceAccounts/$id does not exist."
    rm -f "$(file service-account "$id")" "$(file binding "service-account:$id")"
    echo "deleted service account [$id]" >&2
    ;;
  'pubsub topics create')
    if exists topic "$id"; then
      error 1 "Failed to create topic [projects/$project/topics/$id]: Resource already exists in the project (resource=$id)."
    fi
    printf '%s\n' "${normalized[@]}" >"$(file topic "$id")"
    echo "Created topic [projects/$project/topics/$id]." >&2
    ;;
  'pubsub topics add-iam-policy-binding')
    exists topic "$id" || error 1 "NOT_FOUND: Resource not found (resource=$id)."
    bind "topic:$id"
    ;;
  'pubsub topics delete')
    exists topic "$id" || error 1 "Failed to delete topic [projects/$project/topics/$id]: Resource not found (resource=$id)."
    rm -f "$(file topic "$id")" "$(file binding "topic:$id")"
    echo "Deleted topic [projects/$project/topics/$id]." >&2
    ;;
  'functions deploy '*)
    fn=${words[2]}
    [[ -n ${flag[region]:-} ]] || error 1 'fake gcloud: --region is required here'
    timeout_s=${flag[timeout]:-60s}
    timeout_s=${timeout_s%s}
    if [[ -n ${flag[trigger-http]:-} ]]; then max=3600; else max=540; fi
    ((timeout_s <= max)) || error 1 "INVALID_ARGUMENT: timeout must be at most ${max}s"
    if [[ -n ${flag[trigger-topic]:-} ]] && ! exists topic "${flag[trigger-topic]}"; then
      error 1 "NOT_FOUND: Topic projects/$project/topics/${flag[trigger-topic]} not found"
    fi
    if [[ -n ${flag[service-account]:-} ]] && ! account_exists "${flag[service-account]}"; then
      error 1 "INVALID_ARGUMENT: Service account ${flag[service-account]} does not exist."
    fi
    printf '%s\n' "${normalized[@]}" >"$(file function "$fn")"
    if [[ -n ${flag[env-vars-file]:-} ]]; then cp "${flag[env-vars-file]}" "$(file function-env "$fn")"; fi
    echo 'Preparing function...done.' >&2
    echo "url: https://${flag[region]}-$project.cloudfunctions.net/$fn"
    ;;
  'functions describe '*)
    fn=${words[2]}
    exists function "$fn" ||
      error 1 "NOT_FOUND: Resource 'projects/$project/locations/${flag[region]:-}/functions/$fn' was not found"
    echo "https://$fn-f4ke6ha5hq-uc.a.run.app"
    ;;
  'functions add-invoker-policy-binding '*)
    fn=${words[2]}
    exists function "$fn" ||
      error 1 "NOT_FOUND: Resource 'projects/$project/locations/${flag[region]:-}/functions/$fn' was not found"
    bind "function:$fn" roles/run.invoker
    ;;
  'functions delete '*)
    fn=${words[2]}
    exists function "$fn" ||
      error 1 "NOT_FOUND: Resource 'projects/$project/locations/${flag[region]:-}/functions/$fn' was not found"
    rm -f "$(file function "$fn")" "$(file function-env "$fn")" "$(file binding "function:$fn")"
    ;;
  'scheduler jobs describe')
    exists job "$id" || error 1 'NOT_FOUND: Job not found.'
    echo "projects/$project/locations/${flag[location]:-}/jobs/$id"
    ;;
  'scheduler jobs create' | 'scheduler jobs update')
    id=${words[4]:-}
    [[ ${words[3]:-} == pubsub ]] || error 2 'fake gcloud: only pubsub jobs'
    if [[ ${words[2]} == create ]] && exists job "$id"; then
      error 1 "ALREADY_EXISTS: Job projects/$project/locations/${flag[location]:-}/jobs/$id already exists."
    fi
    if [[ ${words[2]} == update ]] && ! exists job "$id"; then error 1 'NOT_FOUND: Job not found.'; fi
    if ! exists topic "${flag[topic]:-none}"; then error 1 'NOT_FOUND: Topic not found.'; fi
    job=("${normalized[@]}")
    job[2]=create # the job's settings, whichever verb wrote them
    printf '%s\n' "${job[@]}" >"$(file job "$id")"
    ;;
  'scheduler jobs delete')
    exists job "$id" || error 1 'NOT_FOUND: Job not found.'
    rm -f "$(file job "$id")"
    ;;
  'beta monitoring channels')
    case ${words[3]:-} in
      list)
        [[ ${flag[filter]:-} =~ labels\.topic=\"([^\"]+)\" ]] || error 2 'fake gcloud: list channels by labels.topic'
        topic=${BASH_REMATCH[1]}
        for channel in "$state"/r/channel/*; do
          [[ -e $channel ]] || continue
          if grep -qxF -- "--channel-labels=topic=$topic" "$channel"; then
            echo "projects/$project/notificationChannels/${channel##*/}"
          fi
        done
        ;;
      create)
        [[ ${flag[type]:-} == pubsub ]] || error 2 'fake gcloud: only pubsub channels'
        next=$(($(cat "$state/channel-counter" 2>/dev/null || echo 4100) + 1))
        echo "$next" >"$state/channel-counter"
        printf '%s\n' "${normalized[@]}" >"$(file channel "$next")"
        echo "Created notification channel [projects/$project/notificationChannels/$next]." >&2
        if [[ ${flag[format]:-} == 'value(name)' ]]; then echo "projects/$project/notificationChannels/$next"; fi
        ;;
      delete)
        channel=${words[4]:-}
        exists channel "${channel##*/}" || error 1 "NOT_FOUND: Notification channel $channel does not exist."
        rm -f "$(file channel "${channel##*/}")"
        ;;
      *) error 2 "fake gcloud: unsupported: $*" ;;
    esac
    ;;
  *) error 2 "fake gcloud: unsupported: $*" ;;
esac
