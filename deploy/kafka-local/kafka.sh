#!/usr/bin/env bash
# A real Apache Kafka 4 broker (KRaft: broker and controller in one node) on loopback, for
# tests and local use.
#
#   deploy/kafka-local/kafka.sh install                  # into .tools/kafka/libs (once; then offline)
#   deploy/kafka-local/kafka.sh start [--dir D] [--port 9092] [--controller-port 9093] [--partitions 4]
#   deploy/kafka-local/kafka.sh stop  [--dir D]
#   deploy/kafka-local/kafka.sh status [--dir D]
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

DIR="$TOOLS/run"
PORT=9092
CONTROLLER_PORT=9093
PARTITIONS=4
parse() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --port) PORT="$2"; shift 2 ;;
            --controller-port) CONTROLLER_PORT="$2"; shift 2 ;;
            --partitions) PARTITIONS="$2"; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {  # host port seconds
    local deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

write_config() {
    mkdir -p "$DIR/kafka-logs"
    cat >"$DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/kafka-logs
num.partitions=$PARTITIONS
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=268435456
CONF
    cat >"$DIR/log4j2.properties" <<CONF
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

java_run() {  # pidfile logfile args...
    local pidfile="$1" logfile="$2"
    shift 2
    nohup java -Dlog4j2.configurationFile="$DIR/log4j2.properties" -Djava.awt.headless=true \
        "$@" >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

format_storage() {  # once per data directory: KRaft needs a cluster id in its log dir
    [[ -f "$DIR/kafka-logs/meta.properties" ]] && return 0
    local id
    id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    java -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$LIBS/*" kafka.tools.StorageTool \
        format -t "$id" -c "$DIR/server.properties" >>"$DIR/kafka.log" 2>&1 \
        || die "could not format $DIR/kafka-logs (see $DIR/kafka.log)"
}

start_kafka() {
    alive "$DIR/kafka.pid" && return 0
    local log="$DIR/kafka.log" from=1
    format_storage
    [[ -f "$log" ]] && from=$(($(wc -l <"$log") + 1))
    java_run "$DIR/kafka.pid" "$log" -Xmx384m -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties"
    local pid deadline=$((SECONDS + 90))
    pid="$(cat "$DIR/kafka.pid")"
    while kill -0 "$pid" 2>/dev/null; do
        if tail -n "+$from" "$log" | grep -q 'Kafka Server started'; then
            return 0
        fi
        ((SECONDS < deadline)) || { kill -9 "$pid"; die "Kafka did not start in 90 s (see $log)"; }
        sleep 0.1
    done
    die "Kafka exited during start (see $log)"
}

stop_pid() {  # pidfile seconds
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + $2))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
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
        write_config
        start_kafka
        echo "kafka $KAFKA_VERSION on 127.0.0.1:$PORT (KRaft controller 127.0.0.1:$CONTROLLER_PORT, data $DIR)"
        ;;
    stop)
        parse "$@"
        stop_pid "$DIR/kafka.pid" 30
        ;;
    status)
        parse "$@"
        alive "$DIR/kafka.pid" && echo "kafka: running (pid $(cat "$DIR/kafka.pid"))" || echo "kafka: stopped"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        [[ -z "$cmd" ]] || exit 2
        ;;
esac
