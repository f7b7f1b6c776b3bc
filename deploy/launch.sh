#!/usr/bin/env bash
# Local multi-process storeloop: a storenode (embedded NATS, data on disk),
# the buckets of an example, and RULENODES rulenode processes sharing the
# example's rule set. No Docker needed: only Go and curl.
#
#   deploy/launch.sh [up]   start, print how to use it, stop on Ctrl-C
#   deploy/launch.sh start  start and return (stop later with `stop`)
#   deploy/launch.sh stop   stop what `start` started (pid files)
#   deploy/launch.sh status show the processes
#
# Settings (environment):
#   EXAMPLE=ecommerce         a directory of examples/ with buckets.yaml and rules.yaml
#   RULENODES=2               rulenode processes
#   STORELOOP_HOME=./.storeloop  state: bin/, data/, logs/, run/ (pid files)
#   NATS_PORT=4222            the embedded NATS server's client port
#   STORENODE_HTTP_PORT=8222  storenode /healthz /readyz /metrics
#   RULENODE_HTTP_PORT=8230   first rulenode's /healthz /readyz /metrics (then +1, +2, ...)
#   STORELOOP_OTLP            e.g. http://127.0.0.1:4318: export traces (read by the daemons)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXAMPLE=${EXAMPLE:-ecommerce}
RULENODES=${RULENODES:-2}
NATS_PORT=${NATS_PORT:-4222}
STORENODE_HTTP_PORT=${STORENODE_HTTP_PORT:-8222}
RULENODE_HTTP_PORT=${RULENODE_HTTP_PORT:-8230}
home=${STORELOOP_HOME:-./.storeloop}
[[ $home == /* ]] || home=$PWD/$home # created by start only
bin=$home/bin run=$home/run logs=$home/logs
nats_url=nats://127.0.0.1:$NATS_PORT
start_timeout=60 # seconds, for each daemon to become ready

say() { printf 'launch: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# alive PIDFILE: the process recorded there runs (a zombie or a reused pid
# running something else does not count). Until setsid has exec'd the
# program, the process still shows as setsid: that is the program starting.
alive() {
	local pid name state
	[[ -f $1 ]] || return 1
	read -r pid name <"$1"
	state=$(ps -o stat= -o comm= -p "$pid" 2>/dev/null) || return 1
	[[ $state != Z* && ($state == *"$name"* || $state == *setsid*) ]]
}

# wait_for WHAT PIDFILE CMD...: run CMD until it succeeds, while the process
# lives, for at most start_timeout seconds.
wait_for() {
	local what=$1 pidfile=$2 deadline=$((SECONDS + start_timeout))
	shift 2
	until "$@"; do
		alive "$pidfile" || die "$what exited; see $logs/$(basename "$pidfile" .pid).log"
		((SECONDS < deadline)) || die "$what not ready in ${start_timeout}s; see $logs/$(basename "$pidfile" .pid).log"
		sleep 0.1
	done
}

# spawn NAME BIN ARGS...: start BIN in the background, detached from this
# shell's terminal, its output in logs/NAME.log, its pid in run/NAME.pid.
spawn() {
	local name=$1 prog=$2
	shift 2
	alive "$run/$name.pid" && die "$name already runs (pid $(cut -d' ' -f1 "$run/$name.pid")); deploy/launch.sh stop"
	setsid "$bin/$prog" "$@" </dev/null >"$logs/$name.log" 2>&1 &
	echo "$! $prog" >"$run/$name.pid"
}

start() {
	local dir=$root/examples/$EXAMPLE
	[[ -f $dir/buckets.yaml && -f $dir/rules.yaml ]] || die "no example $EXAMPLE in examples/"
	mkdir -p "$bin" "$home/data" "$logs" "$run"
	# The state directory ignores itself, wherever it is.
	[[ -f $home/.gitignore ]] || echo '*' >"$home/.gitignore"

	say "building storenode, rulenode, storeloop into $bin"
	(cd "$root" && go build -o "$bin/" ./cmd/storenode ./cmd/rulenode ./cmd/storeloop)

	# --nats= : embedded NATS even when STORELOOP_NATS is exported (as below).
	spawn storenode storenode --nats= --data "$home/data" --listen "127.0.0.1:$NATS_PORT" \
		--http "127.0.0.1:$STORENODE_HTTP_PORT"
	wait_for storenode "$run/storenode.pid" grep -q "^storenode ready nats=" "$logs/storenode.log"

	# Defining the same buckets again is a no-op: a restart on old data works.
	"$bin/storeloop" --nats "$nats_url" bucket define -f "$dir/buckets.yaml" >/dev/null

	local i port
	for ((i = 1; i <= RULENODES; i++)); do
		port=$((RULENODE_HTTP_PORT + i - 1))
		spawn "rulenode-$i" rulenode --rules "$dir/rules.yaml" --nats "$nats_url" \
			--health "127.0.0.1:$port"
	done
	for ((i = 1; i <= RULENODES; i++)); do
		port=$((RULENODE_HTTP_PORT + i - 1))
		wait_for "rulenode-$i" "$run/rulenode-$i.pid" curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"
	done

	cat <<USAGE
storeloop is running: example $EXAMPLE, $RULENODES rule node(s), state in $home
  NATS       $nats_url
  storenode  http://127.0.0.1:$STORENODE_HTTP_PORT/metrics
  rulenodes  http://127.0.0.1:$RULENODE_HTTP_PORT/metrics ...
  logs       $logs/*.log
Try:
  export STORELOOP_NATS=$nats_url
  $bin/storeloop buckets
  $bin/storeloop insert orders '{"userId":"alice","sku":"LAPTOP-1","qty":1,"total":999}'
  $bin/storeloop settle
  $bin/storeloop tail
USAGE
}

# stop: SIGTERM to the rule nodes, then the store node (it answers the
# commands they still send), each waited for; SIGKILL after 40 s.
stop() {
	local f pid name deadline
	[[ -d $run ]] || return 0
	for f in "$run"/rulenode-*.pid "$run"/storenode.pid; do
		[[ -f $f ]] || continue
		if alive "$f"; then
			read -r pid name <"$f"
			kill -TERM "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 40))
			while alive "$f" && ((SECONDS < deadline)); do sleep 0.1; done
			if alive "$f"; then
				say "$(basename "$f" .pid) did not stop in 40s: killing it"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		rm -f "$f"
	done
	say "stopped"
}

status() {
	local f pid name
	for f in "$run"/*.pid; do
		[[ -f $f ]] || continue
		read -r pid name <"$f"
		if alive "$f"; then echo "$(basename "$f" .pid) running pid $pid"; else echo "$(basename "$f" .pid) gone"; fi
	done
}

case ${1:-up} in
up | start)
	# A start that fails half way leaves nothing running.
	trap 'rc=$?; ((rc == 0)) || stop' EXIT
	;;
esac
case ${1:-up} in
up)
	trap 'stop; exit 0' INT TERM
	start
	echo "Ctrl-C stops everything."
	# Wake up when the store node dies, too.
	while alive "$run/storenode.pid"; do sleep 1; done
	say "storenode exited; see $logs/storenode.log"
	stop
	exit 1
	;;
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: deploy/launch.sh [up|start|stop|status]" ;;
esac
