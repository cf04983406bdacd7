#!/usr/bin/env bash
# A real Apache Kafka 4 broker (KRaft: broker and controller in one node) on loopback, for
# tests and local use; or a cluster of such nodes (`--nodes 3`), replicated as in production.
#
#   deploy/kafka-local/kafka.sh install                  # into .tools/kafka/libs (once; then offline)
#   deploy/kafka-local/kafka.sh start [--dir D] [--port 9092] [--controller-port 9093] [--partitions 4]
#   deploy/kafka-local/kafka.sh stop  [--dir D]
#   deploy/kafka-local/kafka.sh status [--dir D]
#
#   deploy/kafka-local/kafka.sh start --nodes 3 [--dir D] [--port 9092] [--controller-port 9192]
#       [--ports P1,P2,P3] [--controller-ports C1,C2,C3] [--partitions 4]
#   deploy/kafka-local/kafka.sh stop|status --nodes 3 [--dir D]
#   deploy/kafka-local/kafka.sh kill --node N [--signal KILL] [--dir D]   # one node of a cluster
#   deploy/kafka-local/kafka.sh restart --node N [--dir D]                # start it again, wait
#
# A cluster's nodes listen on consecutive ports from --port (9092, 9093, 9094) and
# --controller-port (9192, ...), or on the ports listed; its data is in D/node1, D/node2, ...
# (default .tools/kafka/cluster), all formatted with one cluster id (D/cluster.id). Topics
# default to replication factor 3 (at most the node count) and min.insync.replicas=2 (a majority).
#
# The broker's jars come from Maven Central (org.apache.kafka:kafka_2.13 and its runtime
# dependencies, with a log4j2 binding), fetched once by Maven; it runs on Java 17.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS="${KEPT_KAFKA_HOME:-$ROOT/.tools/kafka}"
LIBS="$TOOLS/libs"
KAFKA_VERSION="4.1.1"
LOG4J_VERSION="2.25.3"
MARKER="$LIBS/kafka_2.13-$KAFKA_VERSION.jar"
HEAP="-Xmx384m"
# A cluster's JVMs start together on few cores: a serial collector (no parallel GC threads)
# and the quick compiler only (C2's compile threads compete with three starting brokers).
CLUSTER_JVM=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1)
START_TIMEOUT=90          # one node
CLUSTER_START_TIMEOUT=240 # three JVMs starting together on two shared cores take a while

die() { echo "kafka.sh: $*" >&2; exit 1; }

install() {
    [[ -f "$MARKER" ]] && return 0
    command -v mvn >/dev/null || die "Maven is needed once to fetch Apache Kafka $KAFKA_VERSION"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS" >&2
    cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kept</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
    mkdir -p "$TOOLS"
    rm -rf "$LIBS.partial"
    (cd "$tmp" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS.partial" \
        -DincludeScope=runtime) || die "Maven could not fetch Apache Kafka $KAFKA_VERSION"
    rm -rf "$LIBS"
    mv "$LIBS.partial" "$LIBS"  # atomic: a half-done install never looks complete
}

DIR=""
PORT=9092
CONTROLLER_PORT=""
PARTITIONS=4
NODES=""
PORTS=""
CONTROLLER_PORTS=""
NODE=""
SIGNAL=KILL
parse() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --port) PORT="$2"; shift 2 ;;
            --controller-port) CONTROLLER_PORT="$2"; shift 2 ;;
            --partitions) PARTITIONS="$2"; shift 2 ;;
            --nodes) NODES="$2"; shift 2 ;;
            --ports) PORTS="$2"; shift 2 ;;
            --controller-ports) CONTROLLER_PORTS="$2"; shift 2 ;;
            --node) NODE="$2"; shift 2 ;;
            --signal) SIGNAL="$2"; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    if [[ -z "$NODES" ]]; then
        if [[ -n "$PORTS" ]]; then
            NODES=$(($(tr -cd , <<<"$PORTS" | wc -c) + 1))
        elif [[ -n "$NODE" ]]; then
            NODES=0  # kill/restart: one node of a cluster whose size does not matter here
        else
            NODES=1
        fi
    fi
    [[ "$NODES" =~ ^[0-9]+$ ]] || die "--nodes must be a number"
    if ((NODES == 1)); then
        DIR="${DIR:-$TOOLS/run}"
        CONTROLLER_PORT="${CONTROLLER_PORT:-9093}"
    else
        DIR="${DIR:-$TOOLS/cluster}"
        CONTROLLER_PORT="${CONTROLLER_PORT:-$((PORT + 100))}"
    fi
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
}

# The broker and controller ports of a cluster's nodes, one per word (node i is word i).
port_list() {  # given-list first-port
    if [[ -n "$1" ]]; then
        tr , ' ' <<<"$1"
    else
        seq -s ' ' "$2" $(($2 + NODES - 1))
    fi
}

# A process runs: a zombie (killed, not yet reaped by its new parent) does not count.
running() { kill -0 "$1" 2>/dev/null && ! grep -qs '^[0-9]* (.*) Z ' "/proc/$1/stat"; }

alive() { [[ -f "$1" ]] && running "$(cat "$1")"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ports_free() {  # port...: say which is taken rather than let the JVM fail on it
    local port
    for port in "$@"; do
        ! listening "$port" || die "port $port is in use (another Kafka? make kafka-down stops ours)"
    done
}

write_config() {  # node-dir node-id port controller-port voters replication
    local dir="$1" id="$2" port="$3" cport="$4" voters="$5" rf="$6"
    mkdir -p "$dir/kafka-logs"
    cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/kafka-logs
num.partitions=$PARTITIONS
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$(((rf + 1) / 2))
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=268435456
CONF
    if ((rf > 1)); then
        # As in production (deploy/README.md "Kafka"): acks=all means every in-sync replica,
        # and at least two of them, so one node may die without losing an acknowledged write.
        # A replica that was not in sync never becomes leader (no unclean election).
        # Fewer threads than the defaults: three JVMs share two cores here.
        cat >>"$dir/server.properties" <<CONF
default.replication.factor=$rf
min.insync.replicas=$(((rf + 1) / 2))
unclean.leader.election.enable=false
transaction.state.log.num.partitions=4
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
CONF
    fi
    write_log_config "$dir"
}

write_log_config() {
    cat >"$1/log4j2.properties" <<CONF
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.state.name=state.change.logger
logger.state.level=WARN
logger.controller.name=kafka.controller
logger.controller.level=WARN
CONF
}

java_run() {  # node-dir args...
    local dir="$1"
    shift
    nohup java -Dlog4j2.configurationFile="$dir/log4j2.properties" -Djava.awt.headless=true \
        "$@" >>"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/kafka.pid"
}

new_cluster_id() {  # what `StorageTool random-uuid` prints (a JVM start saved): a base64url
    local id  # UUID without padding, not starting with "-" (Kafka's command lines refuse it)
    until [[ -n "${id:-}" && "$id" != -* ]]; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    echo "$id"
}

format_storage() {  # node-dir cluster-id [jvm-options...]; once per data directory (KRaft)
    local dir="$1" id="$2"
    shift 2
    [[ -f "$dir/kafka-logs/meta.properties" ]] && return 0
    java -Dlog4j2.configurationFile="$dir/log4j2.properties" "$@" -cp "$LIBS/*" \
        kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1 \
        || die "could not format $dir/kafka-logs (see $dir/kafka.log)"
}

launch() {  # node-dir extra-jvm-options...; prints the log line the start is read from
    local dir="$1" from=1
    shift
    [[ -f "$dir/kafka.log" ]] && from=$(($(wc -l <"$dir/kafka.log") + 1))
    java_run "$dir" "$HEAP" "$@" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
    echo "$from"
}

started() {  # node-dir from-line: 0 started, 1 not yet, 2 exited
    local pid
    pid="$(cat "$1/kafka.pid")"
    if tail -n "+$2" "$1/kafka.log" | grep -q 'Kafka Server started'; then
        return 0
    fi
    running "$pid" || return 2
    return 1
}

await_start() {  # seconds node-dir from-line [node-dir from-line ...]
    local deadline=$((SECONDS + $1)) state
    shift
    local pending=("$@")
    while ((${#pending[@]})); do
        local rest=()
        while ((${#pending[@]})); do
            state=0
            started "${pending[0]}" "${pending[1]}" || state=$?
            if ((state == 2)); then
                die "Kafka exited during start (see ${pending[0]}/kafka.log)"
            elif ((state == 1)); then
                rest+=("${pending[0]}" "${pending[1]}")
            fi
            pending=("${pending[@]:2}")
        done
        ((${#rest[@]})) || return 0
        if ((SECONDS >= deadline)); then
            local i
            for ((i = 0; i < ${#rest[@]}; i += 2)); do
                kill -9 "$(cat "${rest[i]}/kafka.pid")" 2>/dev/null || true
            done
            die "Kafka did not start in $1 s (see ${rest[0]}/kafka.log)"
        fi
        pending=("${rest[@]}")
        sleep 0.1
    done
}

start_kafka() {
    alive "$DIR/kafka.pid" && return 0
    ports_free "$PORT" "$CONTROLLER_PORT"
    format_storage "$DIR" "$(new_cluster_id)"
    local from
    from="$(launch "$DIR")"
    await_start "$START_TIMEOUT" "$DIR" "$from"
}

start_cluster() {
    local ports cports voters="" i
    read -r -a ports <<<"$(port_list "$PORTS" "$PORT")"
    read -r -a cports <<<"$(port_list "$CONTROLLER_PORTS" "$CONTROLLER_PORT")"
    ((${#ports[@]} == NODES && ${#cports[@]} == NODES)) \
        || die "give $NODES broker ports and $NODES controller ports"
    for ((i = 1; i <= NODES; i++)); do
        voters+="${voters:+,}$i@127.0.0.1:${cports[i - 1]}"
    done
    [[ -f "$DIR/cluster.id" ]] || new_cluster_id >"$DIR/cluster.id"
    local id rf=$((NODES < 3 ? NODES : 3)) waiting=()
    id="$(cat "$DIR/cluster.id")"
    for ((i = 1; i <= NODES; i++)); do
        write_config "$DIR/node$i" "$i" "${ports[i - 1]}" "${cports[i - 1]}" "$voters" "$rf"
        format_storage "$DIR/node$i" "$id" "${CLUSTER_JVM[@]}" &
    done
    local job
    for job in $(jobs -p); do
        wait "$job" || die "could not format the nodes' storage (see $DIR/node*/kafka.log)"
    done
    for ((i = 1; i <= NODES; i++)); do
        alive "$DIR/node$i/kafka.pid" && continue
        ports_free "${ports[i - 1]}" "${cports[i - 1]}"
        waiting+=("$DIR/node$i" "$(launch "$DIR/node$i" "${CLUSTER_JVM[@]}")")
    done
    # All nodes start together: a broker waits for a controller quorum (a majority).
    ((${#waiting[@]} == 0)) || await_start "$CLUSTER_START_TIMEOUT" "${waiting[@]}"
}

node_dir() {
    [[ "$NODE" =~ ^[0-9]+$ ]] || die "--node N (1, 2, ...) is needed"
    [[ -f "$DIR/node$NODE/server.properties" ]] || die "no node $NODE in $DIR (start the cluster first)"
    echo "$DIR/node$NODE"
}

restart_node() {
    local dir
    dir="$(node_dir)"
    stop_pid "$dir/kafka.pid" 30
    await_start "$CLUSTER_START_TIMEOUT" "$dir" "$(launch "$dir" "${CLUSTER_JVM[@]}")"
}

stop_pid() {  # pidfile seconds
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + $2))
        while running "$pid"; do
            if ((SECONDS >= deadline)); then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
}

node_dirs() { compgen -G "$DIR/node*/server.properties" | xargs -r -n 1 dirname | sort -V; }

stop_cluster() {
    # All at once: a node stopped alone waits for the others to move its partitions away.
    local dir
    for dir in $(node_dirs); do
        stop_pid "$dir/kafka.pid" 30 &
    done
    wait
}

status_node() {  # node-dir label
    local port
    port="$(sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$1/server.properties" 2>/dev/null)"
    if alive "$1/kafka.pid"; then
        echo "$2: running (pid $(cat "$1/kafka.pid")) on $port"
    else
        echo "$2: stopped"
    fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
    install)
        install
        ;;
    start)
        command -v java >/dev/null || die "java is needed (apt-get install openjdk-17-jre-headless)"
        install
        parse "$@"
        if ((NODES == 1)); then
            write_config "$DIR" 1 "$PORT" "$CONTROLLER_PORT" "1@127.0.0.1:$CONTROLLER_PORT" 1
            start_kafka
            echo "kafka $KAFKA_VERSION on 127.0.0.1:$PORT (KRaft controller 127.0.0.1:$CONTROLLER_PORT, data $DIR)"
        else
            ((NODES >= 2)) || die "--nodes must be 1 or more"
            start_cluster
            servers="$(for d in $(node_dirs); do
                sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$d/server.properties"
            done | paste -sd ,)"
            echo "kafka $KAFKA_VERSION cluster of $NODES nodes on $servers (data $DIR)"
        fi
        ;;
    stop)
        parse "$@"
        if ((NODES == 1)); then
            stop_pid "$DIR/kafka.pid" 30
        else
            stop_cluster
        fi
        ;;
    status)
        parse "$@"
        if ((NODES == 1)); then
            alive "$DIR/kafka.pid" && echo "kafka: running (pid $(cat "$DIR/kafka.pid"))" || echo "kafka: stopped"
        else
            for d in $(node_dirs); do status_node "$d" "kafka node ${d##*/node}"; done
            [[ -n "$(node_dirs)" ]] || echo "kafka cluster: none in $DIR"
        fi
        ;;
    kill)
        parse "$@"
        dir="$(node_dir)"
        alive "$dir/kafka.pid" || die "node $NODE is not running"
        kill -s "$SIGNAL" "$(cat "$dir/kafka.pid")"
        if [[ "$SIGNAL" == KILL || "$SIGNAL" == 9 ]]; then
            while alive "$dir/kafka.pid"; do sleep 0.05; done  # gone when this returns
        fi
        ;;
    restart)
        command -v java >/dev/null || die "java is needed (apt-get install openjdk-17-jre-headless)"
        parse "$@"
        restart_node
        status_node "$DIR/node$NODE" "kafka node $NODE"
        ;;
    *)
        sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
        [[ -z "$cmd" ]] || exit 2
        ;;
esac
