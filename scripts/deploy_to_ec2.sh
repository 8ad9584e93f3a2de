#!/usr/bin/env bash
# Build and push the Shipyard images, then roll them out on an EC2 host that runs the Compose stack, and
# roll back to the previous image tag if the API does not get ready. Run with --help for the details.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/deploy_to_ec2.sh --host USER@HOST --image REPOSITORY [options]

1. Builds the two images compose.yaml runs from the repository's Dockerfile, REPOSITORY:TAG (the service
   image) and REPOSITORY-notebook:TAG (EXTRAS=postgres,notebook, for the jupyter service), and pushes both.
2. Over SSH, in the stack's folder on the host: records the running SHIPYARD_IMAGE and
   SHIPYARD_IMAGE_TAG by copying .env to .env.pre-deploy (mode kept), writes the new image and tag into
   .env, and runs `docker compose pull && docker compose up -d`.
3. Waits for the API's /ready, fetched with curl on the host, a bounded number of times.
4. If it does not get ready: puts .env.pre-deploy back (the previous tag), runs
   `docker compose pull --ignore-pull-failures && docker compose up -d`, waits for /ready again, and
   exits 1.

Options (each has an environment variable; the option wins):
  --host USER@HOST     EC2_HOST            SSH destination (an ~/.ssh/config alias works too)
  --image REPOSITORY   SHIPYARD_IMAGE      image repository without a tag, e.g. ghcr.io/acme/shipyard or
                                           123456789012.dkr.ecr.eu-west-1.amazonaws.com/shipyard
  --tag TAG            SHIPYARD_IMAGE_TAG  tag to build and deploy (default: the git commit, 12 characters)
  --remote-dir DIR     EC2_APP_DIR         the stack's folder on the host: compose.yaml, .env, deploy/
                                           (default /opt/shipyard)
  --ready-url URL      READY_URL           readiness URL, fetched on the host
                                           (default http://127.0.0.1:8000/ready, the API_PORT of .env.example)
  --retries N          READY_RETRIES       readiness checks before giving up (default 30)
  --interval SECONDS   READY_INTERVAL      pause between checks (default 5)
  --ssh-key FILE       EC2_SSH_KEY         private key file for ssh -i (default: your agent, ~/.ssh/config)
  --ssh-port PORT      EC2_SSH_PORT        SSH port (default: ssh's own)
  --platform PLATFORM  DOCKER_PLATFORM     docker build --platform, e.g. linux/arm64 for Graviton hosts
  --skip-build                             deploy images already pushed under TAG (no build, no push)
  --dry-run                                print every command, local and remote, and run none of them
  -h, --help                               this text

Credentials: this script reads and stores none. Log in to the registry beforehand, here (`docker login`
or a credential helper such as amazon-ecr-credential-helper) and on the host (an instance profile with the
ECR credential helper, or a `docker login` once). SSH runs with BatchMode, so a missing key fails instead
of prompting; put the host's key in known_hosts first (ssh-keyscan, checked against the EC2 console).
The stack's secrets stay in the host's .env; this script changes only SHIPYARD_IMAGE and
SHIPYARD_IMAGE_TAG there.

Exit codes: 0 deployed and ready; 1 not ready, rolled back to the previous tag, which is ready; 2 usage;
3 not ready, and the rollback was impossible (the same image ran before) or did not get ready either;
4 build, push or SSH failed before anything changed on the host.
EOF
}

die() {
  local code=$1
  shift
  printf 'deploy_to_ec2: error: %s\n' "$*" >&2
  exit "$code"
}

say() { printf '==> %s\n' "$*"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

host=${EC2_HOST:-}
image=${SHIPYARD_IMAGE:-}
tag=${SHIPYARD_IMAGE_TAG:-}
remote_dir=${EC2_APP_DIR:-/opt/shipyard}
ready_url=${READY_URL:-http://127.0.0.1:8000/ready}
retries=${READY_RETRIES:-30}
interval=${READY_INTERVAL:-5}
ssh_key=${EC2_SSH_KEY:-}
ssh_port=${EC2_SSH_PORT:-}
platform=${DOCKER_PLATFORM:-}
skip_build=0
dry_run=0

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die 2 "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --host) need_value "$@"; host=$2; shift 2 ;;
    --image) need_value "$@"; image=$2; shift 2 ;;
    --tag) need_value "$@"; tag=$2; shift 2 ;;
    --remote-dir) need_value "$@"; remote_dir=$2; shift 2 ;;
    --ready-url) need_value "$@"; ready_url=$2; shift 2 ;;
    --retries) need_value "$@"; retries=$2; shift 2 ;;
    --interval) need_value "$@"; interval=$2; shift 2 ;;
    --ssh-key) need_value "$@"; ssh_key=$2; shift 2 ;;
    --ssh-port) need_value "$@"; ssh_port=$2; shift 2 ;;
    --platform) need_value "$@"; platform=$2; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n $host ]] || die 2 "no host: give --host or EC2_HOST"
[[ -n $image ]] || die 2 "no image repository: give --image or SHIPYARD_IMAGE"
if [[ -z $tag ]]; then
  tag=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null) \
    || die 2 "no tag: give --tag or SHIPYARD_IMAGE_TAG (and this is not a git checkout)"
fi

# Docker's grammar for tags and repositories; it also keeps both safe inside the remote shell and sed.
tag_pattern='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
image_pattern='^[a-z0-9][a-z0-9._/:-]*$'
[[ $tag =~ $tag_pattern ]] || die 2 "invalid tag '$tag' (letters, digits, '_', '.', '-'; at most 128)"
[[ $image =~ $image_pattern ]] || die 2 "invalid image repository '$image' (lower case)"
[[ ${image##*/} != *:* ]] || die 2 "give --image without a tag; the tag goes in --tag"
[[ $retries =~ ^[1-9][0-9]*$ ]] || die 2 "--retries must be a positive integer"
[[ $interval =~ ^[0-9]+$ ]] || die 2 "--interval must be a whole number of seconds"
[[ -z $ssh_port || $ssh_port =~ ^[0-9]+$ ]] || die 2 "--ssh-port must be a number"

ssh_cmd=(ssh -o BatchMode=yes -o ConnectTimeout=15)
[[ -n $ssh_key ]] && ssh_cmd+=(-i "$ssh_key")
[[ -n $ssh_port ]] && ssh_cmd+=(-p "$ssh_port")
ssh_cmd+=("$host")

# Values quoted once for the remote shell.
q_dir=$(printf '%q' "$remote_dir")
q_url=$(printf '%q' "$ready_url")

show() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
}

# run CMD...: a local command (printed only, under --dry-run).
run() {
  if ((dry_run)); then
    show "$@"
    return 0
  fi
  "$@"
}

# remote 'COMMAND LINE': one shell command line on the host (printed, ready to paste, under --dry-run).
remote() {
  if ((dry_run)); then
    printf '+'
    printf ' %q' "${ssh_cmd[@]}"
    printf " '%s'\n" "${1//\'/\'\\\'\'}"
    return 0
  fi
  "${ssh_cmd[@]}" "$1"
}

# The remote command that sets KEY=VALUE in .env (sed -i keeps the file's mode: it holds secrets).
set_in_env() {
  printf '%s' "if grep -q '^$1=' .env; then sed -i 's|^$1=.*|$1=$2|' .env; else echo $1=$2 >> .env; fi"
}

# wait_ready: 0 once the readiness URL answers 2xx on the host, 1 after $retries tries.
wait_ready() {
  local attempt check="curl -fsS -o /dev/null --max-time 5 $q_url"
  if ((dry_run)); then
    say "then up to $retries checks, $interval s apart, until this succeeds:"
    remote "$check"
    return 0
  fi
  for ((attempt = 1; attempt <= retries; attempt++)); do
    if remote "$check"; then
      say "ready after $attempt check(s)"
      return 0
    fi
    if ((attempt < retries)); then
      sleep "$interval"
    fi
  done
  return 1
}

((dry_run)) && say "dry run: printing the commands, running none"

if ((skip_build)); then
  say "skipping build and push: deploying $image:$tag and $image-notebook:$tag as pushed"
else
  platform_args=()
  [[ -n $platform ]] && platform_args=(--platform "$platform")
  say "building $image:$tag and $image-notebook:$tag"
  run docker build "${platform_args[@]}" --file "$root/Dockerfile" --tag "$image:$tag" \
    --label "org.opencontainers.image.revision=$tag" "$root" || die 4 "docker build failed"
  run docker build "${platform_args[@]}" --file "$root/Dockerfile" --tag "$image-notebook:$tag" \
    --build-arg EXTRAS=postgres,notebook --label "org.opencontainers.image.revision=$tag" "$root" \
    || die 4 "docker build of the notebook image failed"
  say "pushing them"
  run docker push "$image:$tag" || die 4 "docker push failed (logged in to the registry?)"
  run docker push "$image-notebook:$tag" || die 4 "docker push failed (logged in to the registry?)"
fi

say "recording what $host runs now (.env -> .env.pre-deploy)"
record="cd $q_dir && test -f .env && cp -p .env .env.pre-deploy"
record+=" && sed -n -e 's/^SHIPYARD_IMAGE=/image=/p' -e 's/^SHIPYARD_IMAGE_TAG=/tag=/p' .env"
previous_image=
previous_tag=
if ((dry_run)); then
  remote "$record"
else
  recorded=$(remote "$record") || die 4 "could not read $remote_dir/.env on $host over SSH"
  while IFS='=' read -r key value; do
    value=${value//[\"\']/}
    case $key in
      image) previous_image=$value ;;
      tag) previous_tag=$value ;;
    esac
  done <<<"$recorded"
  say "previous image: ${previous_image:-shipyard}:${previous_tag:-local} (shipyard:local = compose defaults)"
fi

say "deploying $image:$tag on $host"
deploy="cd $q_dir && $(set_in_env SHIPYARD_IMAGE "$image") && $(set_in_env SHIPYARD_IMAGE_TAG "$tag")"
deploy+=" && docker compose pull && docker compose up -d"
rollback="cd $q_dir && cp -p .env.pre-deploy .env"
rollback+=" && docker compose pull --ignore-pull-failures && docker compose up -d"

if remote "$deploy" && wait_ready; then
  if ((dry_run)); then
    say "if it does not get ready, the rollback runs:"
    remote "$rollback"
    say "dry run: nothing was run"
  else
    say "deployed $image:$tag on $host"
  fi
  exit 0
fi

printf 'deploy_to_ec2: %s:%s did not get ready at %s\n' "$image" "$tag" "$ready_url" >&2
if [[ $previous_image == "$image" && $previous_tag == "$tag" ]]; then
  die 3 "$host ran $image:$tag before this deploy too: there is no previous tag to roll back to"
fi
say "rolling back to ${previous_image:-shipyard}:${previous_tag:-local}"
if remote "$rollback" && wait_ready; then
  say "rolled back: $host runs ${previous_image:-shipyard}:${previous_tag:-local} again"
  exit 1
fi
die 3 "the rollback to ${previous_tag:-local} did not get ready either"
