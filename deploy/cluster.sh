#!/usr/bin/env bash
# deploy/cluster.sh start|stop|restart NAME|status|clean — a whole Eddy cluster on one
# machine, every part a separate process on loopback (see docs/cluster.md):
#
#   etcd         3 members, `eddy etcd` (embedded etcd, one per process)
#   kafka        `eddy-kafka-dev` with 3 brokers (franz-go's kfake; not Kafka)
#   postgres     a private PostgreSQL server (initdb under the run dir;
#                run as the postgres user when we are root)
#   controller1  `eddy controller` on port 3233, controller2 on 3234
#   scheduler1-3 `eddy scheduler`
#   invoker1-2   `eddy invoker` (process backend; --backend docker for Docker)
#
# Each process logs to $RUN/<name>.log and has its pid in $RUN/<name>.pid;
# `stop` stops exactly those processes, `start` after `stop` restarts on the
# same data, `clean` (when stopped) removes the run dir. `start` starts only
# the members that are not running (one killed process is started again,
# the others are left alone); `restart NAME` stops NAME (SIGTERM, then
# SIGKILL after 30 s) and starts it again.
#
# Settings (environment):
#   EDDY_CLUSTER_DIR        run dir (default deploy/.run)
#   EDDY_BIN                directory holding eddy and eddy-kafka-dev (default bin)
#   EDDY_CLUSTER_PORT_BASE  base of the other ports (default 23000): etcd clients
#                           base+1..3, etcd peers base+11..13, Kafka base+21..23,
#                           PostgreSQL base+31, schedulers base+41..43; /metrics
#                           (--metrics-addr) of controllers base+51..52,
#                           schedulers base+61..63, invokers base+71..72
#   EDDY_CONTROLLER_PORTS   API ports of the controllers (default "3233 3234")
#   EDDY_CLUSTER_BACKEND    invoker backend: process (default), docker or auto
#   EDDY_CLUSTER_TLS        1 (default): etcd, the schedulers' gRPC and Kafka use
#                           mutual TLS, Kafka SASL/SCRAM too, PostgreSQL TLS with
#                           client certificates; certificates are made at first
#                           start into $RUN/tls by `eddy admin certs`. 0: plaintext
#   EDDY_LEASE_TTL ...      any EDDY_<FLAG> variable reaches every role (docs/cluster.md)
#   EDDY_CLUSTER_ARGS_<name> more flags for one member (controller1, scheduler2,
#                           invoker1, ...), e.g. "--etcd URL" (the tests route a
#                           scheduler's etcd traffic through a proxy they can cut)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${EDDY_CLUSTER_DIR:-$ROOT/deploy/.run}
BIN=${EDDY_BIN:-$ROOT/bin}
BASE=${EDDY_CLUSTER_PORT_BASE:-23000}
read -r -a CONTROLLER_PORTS <<<"${EDDY_CONTROLLER_PORTS:-3233 3234}"
BACKEND=${EDDY_CLUSTER_BACKEND:-process}
START_TIMEOUT=${EDDY_CLUSTER_START_TIMEOUT:-90}

TLS=${EDDY_CLUSTER_TLS:-1}
TLS_DIR=$RUN/tls
SCHEME=http
if ((TLS)); then SCHEME=https; fi
ETCD_ENDPOINTS="$SCHEME://127.0.0.1:$((BASE + 1)),$SCHEME://127.0.0.1:$((BASE + 2)),$SCHEME://127.0.0.1:$((BASE + 3))"
INITIAL_CLUSTER="etcd1=$SCHEME://127.0.0.1:$((BASE + 11)),etcd2=$SCHEME://127.0.0.1:$((BASE + 12)),etcd3=$SCHEME://127.0.0.1:$((BASE + 13))"
KAFKA_LISTEN="127.0.0.1:$((BASE + 21))"
PG_PORT=$((BASE + 31))
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/eddy?sslmode=disable"
if ((TLS)); then
	PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/eddy?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem&sslcert=$TLS_DIR/client.pem&sslkey=$TLS_DIR/client-key.pem"
	# The tools (eddy status --etcd) present the client certificate.
	export EDDY_TLS_CA=$TLS_DIR/ca.pem EDDY_TLS_CERT=$TLS_DIR/client.pem EDDY_TLS_KEY=$TLS_DIR/client-key.pem
fi
GUEST_AUTH=23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP

# The Eddy processes, in start order (stop goes the other way).
EDDY_PROCS=(etcd1 etcd2 etcd3 kafka controller1 controller2 scheduler1 scheduler2 scheduler3 invoker1 invoker2)

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# alive NAME: the process of NAME's pid file runs (and is still ours: its
# command line names our binary or the postgres data dir).
alive() {
	local pidf="$RUN/$1.pid" pid
	[[ -f $pidf ]] || return 1
	pid=$(<"$pidf")
	[[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "$BIN/eddy|$RUN/" || return 1
}

# spawn NAME CMD...: start CMD in the background, appending to NAME.log,
# unless NAME runs already (then it says so and fails: the caller skips
# waiting for it). LOGOFF[NAME] is where this start's log begins.
declare -A LOGOFF
spawn() {
	local name=$1
	shift
	if alive "$name"; then
		say "$name is running already (pid $(<"$RUN/$name.pid")): left alone"
		return 1
	fi
	touch "$RUN/$name.log"
	LOGOFF[$name]=$(stat -c %s "$RUN/$name.log")
	printf -- '--- cluster.sh: %s started %s\n' "$name" "$(date -u +%FT%TZ)" >>"$RUN/$name.log"
	setsid "$@" >>"$RUN/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$RUN/$name.pid"
	# Until the child has exec'd, its command line is this script's, and
	# alive would take it for dead: wait for the exec, or its end (gone,
	# or a zombie: state Z), at most 10 s.
	local i
	for ((i = 0; i < 1000; i++)); do
		[[ -r /proc/$pid/cmdline ]] || break
		[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "$BIN/eddy|$RUN/" && break
		sleep 0.01
	done
}

# started NAME: spawn started NAME in this run (wait for it).
started() { [[ -n ${LOGOFF[$1]:-} ]]; }

# wait_log NAME PATTERN: wait until NAME's log of this start has PATTERN
# (or NAME died). A NAME not started by this run is not waited for.
wait_log() {
	local name=$1 pattern=$2 deadline=$((SECONDS + START_TIMEOUT))
	started "$name" || return 0
	until tail -c +$((LOGOFF[$name] + 1)) "$RUN/$name.log" 2>/dev/null | grep -q -- "$pattern"; do
		alive "$name" || { tail -n 20 "$RUN/$name.log" >&2; die "$name exited during start-up (log: $RUN/$name.log)"; }
		((SECONDS < deadline)) || die "$name not ready after ${START_TIMEOUT}s (log: $RUN/$name.log)"
		sleep 0.1
	done
}

# tls_flags NAME: the --tls-* flags of the process with certificate NAME.
tls_flags() {
	((TLS)) || return 0
	echo --tls-ca "$TLS_DIR/ca.pem" --tls-cert "$TLS_DIR/$1.pem" --tls-key "$TLS_DIR/$1-key.pem"
}

# spawn_role NAME ROLE METRICS_PORT ARGS...: spawn `eddy ROLE` as NAME with
# the shared --config, its id, ARGS, its certificate and its /metrics
# address (a NAME that runs already is left alone).
spawn_role() {
	local name=$1 role=$2 metrics=$3
	shift 3
	# EDDY_CLUSTER_ARGS_<name>: more flags for that member only (flags win
	# over --config), e.g. EDDY_CLUSTER_ARGS_scheduler1="--etcd URL".
	local extra_var="EDDY_CLUSTER_ARGS_$name"
	# shellcheck disable=SC2046,SC2086 # tls_flags and the extra flags are lists of words
	spawn "$name" "$BIN/eddy" "$role" --config "$RUN/eddy.json" --id "$name" "$@" $(tls_flags "$role") \
		--metrics-addr "127.0.0.1:$metrics" ${!extra_var:-} || true
}

# make_certs: the CA, a certificate per role and Kafka's SASL password, at
# first start (kept after: a restart keeps its certificates).
make_certs() {
	((TLS)) || return 0
	if [[ ! -f $TLS_DIR/ca.pem ]]; then
		say "making certificates in $TLS_DIR (eddy admin certs)"
	fi
	"$BIN/eddy" admin certs --out "$TLS_DIR" --hosts 127.0.0.1,localhost >/dev/null
	if [[ ! -s $TLS_DIR/kafka-password ]]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$TLS_DIR/kafka-password")
	fi
}

# pg_bin: the directory of initdb and postgres, as pgtest finds it.
pg_bin() {
	if [[ -n ${EDDY_POSTGRES_BIN:-} ]]; then echo "$EDDY_POSTGRES_BIN"; return; fi
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
		[[ -x $d/initdb && -x $d/postgres ]] && { echo "$d"; return; }
	done
	d=$(command -v initdb 2>/dev/null) && { dirname "$d"; return; }
	return 1
}

# as_pg CMD...: run CMD as the postgres user when we are root.
as_pg() {
	if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
	local bin data=$RUN/postgres
	bin=$(pg_bin) || die "PostgreSQL binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or on \$PATH: install them (scripts/postgres-deps) or set EDDY_POSTGRES_BIN"
	if [[ -f $data/postmaster.pid ]] && kill -0 "$(head -n1 "$data/postmaster.pid")" 2>/dev/null; then
		say "postgres is running already: left alone"
		return 0
	fi
	: >"$RUN/postgres.log"
	if ((EUID == 0)); then
		id postgres >/dev/null 2>&1 || die "running as root, and PostgreSQL refuses to: no \"postgres\" user to run it as"
		chown postgres: "$RUN/postgres.log"
	fi
	if [[ ! -f $data/PG_VERSION ]]; then
		mkdir -p "$data"
		((EUID == 0)) && chown postgres: "$data"
		chmod 700 "$data"
		as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync >>"$RUN/postgres.log" 2>&1 ||
			{ tail -n 20 "$RUN/postgres.log" >&2; die "initdb failed"; }
	fi
	local ssl=()
	if ((TLS)); then
		# The server's certificate and key, readable by the server's user;
		# clients connect over TLS only, with a certificate of the CA.
		install -m 600 "$TLS_DIR/postgres.pem" "$data/server.crt"
		install -m 600 "$TLS_DIR/postgres-key.pem" "$data/server.key"
		install -m 600 "$TLS_DIR/ca.pem" "$data/root.crt"
		((EUID == 0)) && chown postgres: "$data/server.crt" "$data/server.key" "$data/root.crt"
		cat >"$data/pg_hba.conf" <<-HBA
			local all all trust
			hostssl all all 127.0.0.1/32 trust clientcert=verify-ca
		HBA
		((EUID == 0)) && chown postgres: "$data/pg_hba.conf"
		ssl=(-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=root.crt)
	fi
	# fsync=off is safe against a crash of the server (not of the machine):
	# what PostgreSQL wrote is in the kernel's page cache. synchronous_commit
	# stays on: with it off, a crash loses the last commits the server had
	# acknowledged, i.e. activation records the invokers consider stored.
	as_pg "$bin/pg_ctl" -D "$data" -l "$RUN/postgres.log" -w -t 60 \
		-o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c max_connections=300 -c fsync=off ${ssl[*]}" \
		start >/dev/null || { tail -n 20 "$RUN/postgres.log" >&2; die "postgres did not start"; }
	head -n1 "$data/postmaster.pid" >"$RUN/postgres.pid"
	# Over the server's socket (local: trust; TCP may require TLS).
	if ! as_pg "$bin/psql" -h "$data" -p "$PG_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='eddy'" | grep -q 1; then
		as_pg "$bin/psql" -h "$data" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE eddy" >/dev/null
	fi
}

stop_postgres() {
	local bin data=$RUN/postgres
	[[ -f $data/postmaster.pid ]] || { rm -f "$RUN/postgres.pid"; return 0; }
	bin=$(pg_bin) || return 0
	say "stopping postgres"
	as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
	rm -f "$RUN/postgres.pid"
}

cmd_start() {
	for b in eddy eddy-kafka-dev; do
		[[ -x $BIN/$b ]] || die "$BIN/$b is missing: run 'make build' (or 'make cluster')"
	done
	mkdir -p "$RUN"
	chmod 755 "$RUN"
	make_certs

	say "starting etcd (3 members)"
	local i
	for i in 1 2 3; do
		# shellcheck disable=SC2046 # tls_flags is a list of words
		spawn "etcd$i" "$BIN/eddy" etcd --name "etcd$i" --data-dir "$RUN/etcd$i" \
			--client-url "$SCHEME://127.0.0.1:$((BASE + i))" --peer-url "$SCHEME://127.0.0.1:$((BASE + 10 + i))" \
			--initial-cluster "$INITIAL_CLUSTER" $(tls_flags etcd) || true
	done
	for i in 1 2 3; do wait_log "etcd$i" "serving clients"; done

	say "starting kafka (eddy-kafka-dev, 3 brokers)"
	local kafka_sec=()
	if ((TLS)); then
		# shellcheck disable=SC2207
		kafka_sec=($(tls_flags kafka) --sasl-user eddy --sasl-password-file "$TLS_DIR/kafka-password")
	fi
	spawn kafka "$BIN/eddy-kafka-dev" --listen "$KAFKA_LISTEN" --brokers 3 --data-dir "$RUN/kafka" "${kafka_sec[@]}" || true
	wait_log kafka "kafka dev broker listening"
	local brokers
	brokers=$(grep -E '^[0-9.:,]+$' "$RUN/kafka.log" | tail -n1)

	say "starting postgres on 127.0.0.1:$PG_PORT"
	start_postgres

	# The settings every role shares, through --config (0600: it holds
	# Kafka's password); each role's certificate is on its command line.
	local sec=""
	if ((TLS)); then
		sec=$(printf ',\n  "tls-ca": "%s",\n  "kafka-sasl-user": "eddy",\n  "kafka-sasl-password": "%s"' \
			"$TLS_DIR/ca.pem" "$(<"$TLS_DIR/kafka-password")")
	fi
	(umask 077 && cat >"$RUN/eddy.json") <<-JSON
		{
		  "etcd": "$ETCD_ENDPOINTS",
		  "kafka": "$brokers",
		  "postgres": "$PG_URL"$sec
		}
	JSON

	local n=1 port
	for port in "${CONTROLLER_PORTS[@]}"; do
		say "starting controller$n on port $port"
		spawn_role "controller$n" controller $((BASE + 50 + n)) --port "$port"
		n=$((n + 1))
	done
	for i in 1 2 3; do
		say "starting scheduler$i"
		spawn_role "scheduler$i" scheduler $((BASE + 60 + i)) --listen "127.0.0.1:$((BASE + 40 + i))"
	done
	for i in 1 2; do
		say "starting invoker$i ($BACKEND backend)"
		spawn_role "invoker$i" invoker $((BASE + 70 + i)) --backend "$BACKEND" \
			--data-dir "$RUN/invoker$i" --api-host "http://127.0.0.1:${CONTROLLER_PORTS[0]}"
	done
	for n in controller1 controller2; do wait_log "$n" "API at"; done
	for i in 1 2 3; do wait_log "scheduler$i" "gRPC at"; done
	for i in 1 2; do wait_log "invoker$i" "eddy invoker"; done

	# Ready when etcd shows every scheduler and invoker.
	local deadline=$((SECONDS + START_TIMEOUT)) out=""
	until out=$("$BIN/eddy" status --etcd "$ETCD_ENDPOINTS" 2>&1) &&
		grep -q 'SCHEDULERS (3)' <<<"$out" && grep -q 'INVOKERS (2)' <<<"$out"; do
		((SECONDS < deadline)) || die "schedulers and invokers did not register in etcd: $out"
		sleep 0.2
	done
	say "up: API at http://127.0.0.1:${CONTROLLER_PORTS[0]} and http://127.0.0.1:${CONTROLLER_PORTS[1]}"
	say "guest key: $GUEST_AUTH"
	say "etcd: $ETCD_ENDPOINTS   kafka: $brokers   postgres: $PG_URL"
	if ((TLS)); then
		say "TLS on: certificates in $TLS_DIR (for tools: EDDY_TLS_CA=$TLS_DIR/ca.pem EDDY_TLS_CERT=$TLS_DIR/client.pem EDDY_TLS_KEY=$TLS_DIR/client-key.pem)"
	fi
	say "metrics: controllers 127.0.0.1:$((BASE + 51))-$((BASE + 52)), schedulers $((BASE + 61))-$((BASE + 63)), invokers $((BASE + 71))-$((BASE + 72)) (/metrics)"
	say "logs and pids in $RUN; '$0 status' shows the cluster, '$0 stop' stops it"
}

# stop_proc NAME: SIGTERM, then SIGKILL after 30 s.
stop_proc() {
	local name=$1 pid i
	if ! alive "$name"; then
		rm -f "$RUN/$name.pid"
		return 0
	fi
	pid=$(<"$RUN/$name.pid")
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		alive "$name" || break
		sleep 0.1
	done
	if alive "$name"; then
		say "$name did not stop in 30 s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$RUN/$name.pid"
}

cmd_stop() {
	[[ -d $RUN ]] || { say "nothing to stop ($RUN does not exist)"; return 0; }
	# Invokers first (they remove their containers), then the rest, in
	# parallel within a tier; etcd and the stores last.
	local tier name
	for tier in "invoker1 invoker2" "scheduler1 scheduler2 scheduler3" "controller1 controller2" "kafka"; do
		for name in $tier; do stop_proc "$name" & done
		wait
	done
	stop_postgres
	for name in etcd1 etcd2 etcd3; do stop_proc "$name" & done
	wait
	say "stopped"
}

# cmd_restart NAME: stop NAME and start it again (the others stay).
cmd_restart() {
	local name=${1:-} n ok=""
	for n in "${EDDY_PROCS[@]}"; do [[ $n == "$name" ]] && ok=1; done
	[[ -n $ok ]] || die "restart: unknown member '$name' (one of: ${EDDY_PROCS[*]})"
	stop_proc "$name"
	cmd_start
}

cmd_status() {
	local name state
	for name in "${EDDY_PROCS[@]}" postgres; do
		if [[ $name == postgres ]]; then
			[[ -f $RUN/postgres/postmaster.pid ]] && kill -0 "$(head -n1 "$RUN/postgres/postmaster.pid")" 2>/dev/null &&
				state="running (pid $(head -n1 "$RUN/postgres/postmaster.pid"))" || state="stopped"
		elif alive "$name"; then
			state="running (pid $(<"$RUN/$name.pid"))"
		else
			state="stopped"
		fi
		printf '%-12s %s\n' "$name" "$state"
	done
	echo
	"$BIN/eddy" status --etcd "$ETCD_ENDPOINTS" "$@"
}

cmd_clean() {
	local name
	for name in "${EDDY_PROCS[@]}"; do
		alive "$name" && die "$name is running: run '$0 stop' first"
	done
	[[ -f $RUN/postgres/postmaster.pid ]] && die "postgres is running: run '$0 stop' first"
	rm -rf "$RUN"
	say "removed $RUN"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
restart) shift; cmd_restart "$@" ;;
status) shift; cmd_status "$@" ;;
clean) cmd_clean ;;
*) echo "usage: $0 start|stop|restart NAME|status [--json]|clean" >&2; exit 2 ;;
esac
