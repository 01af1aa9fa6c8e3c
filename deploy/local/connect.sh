# shellcheck shell=bash
# Kafka Connect with Debezium's MariaDB connector, the order outbox's relay when
# ORDER_OUTBOX_RELAY=debezium (ADR 0068): instead of the order service's own
# Watermill forwarder, the connector reads the rows the service inserts into
# `orders.watermill_outbox` from order-db's binary log and publishes each as the
# record the forwarder would have published (same topic, key, value and headers):
# Debezium's outbox EventRouter makes the topic, key and value from the table's
# generated columns, and connect/WatermillHeaders.java the headers. Like the other
# servers, the worker is a plain local process (ADR 0006): server `connect`, one
# distributed-mode worker (its configuration, offsets and status live in Kafka),
# whose REST API takes the connector's configuration.
#
# Sourced by infra.sh, which defines the helpers used here (log, die, port_open,
# pid_of, pidfile_of) and INFRA_DIR, repo, here, KAFKA_PORT, KAFKA_NODES and
# ORDER_DB_PORT. Environment (defaults in brackets):
#   ONCEFLOW_CONNECT_LIBS  the worker's jars, and onceflow-connect.jar   [<repo>/.local/connect-libs]
#   CONNECT_PORT           the worker's REST API on 127.0.0.1            [8083]
#   CONNECT_HEAP           JVM heap flags                               [-Xms128m -Xmx384m]
# The connector logs in to order-db as orders_relay (replication, and SELECT on the
# outbox table only).

CONNECT_LIBS=${ONCEFLOW_CONNECT_LIBS:-$repo/.local/connect-libs}
CONNECT_PORT=${CONNECT_PORT:-8083}
CONNECT_HEAP=${CONNECT_HEAP:--Xms128m -Xmx384m}
CONNECTOR=order-outbox
# The databases whose outbox the connector relays (a regular expression of
# Debezium's include lists): the order service's, or on the e2e servers every
# scenario's own.
CONNECT_DATABASES=${CONNECT_DATABASES:-orders}
TOPIC_PREFIX=onceflow-order
HEARTBEAT_TOPIC=__debezium-heartbeat.$TOPIC_PREFIX

# install_connect fetches the worker's jars (connect/pom.xml; again when its Debezium
# version changes) and compiles connect/*.java against them (again when a source is
# newer than their jar). wait_connect reads the REST API's JSON with jq.
install_connect() {
  local version classes src newer='' jar="$CONNECT_LIBS/onceflow-connect.jar"
  command -v jq >/dev/null 2>&1 || apt_install jq
  # shellcheck disable=SC2154 # here: infra.sh's directory, which sources this file
  version=$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$here/connect/pom.xml")
  [ -n "$version" ] || die "no <debezium.version> in $here/connect/pom.xml"
  if [ ! -f "$CONNECT_LIBS/.complete" ] || [ ! -f "$CONNECT_LIBS/debezium-connector-mariadb-$version.jar" ]; then
    command -v mvn >/dev/null 2>&1 || die "mvn is missing (Maven fetches the Kafka Connect and Debezium jars)"
    log "fetching Kafka Connect and Debezium $version jars from Maven Central into $CONNECT_LIBS"
    rm -rf "$CONNECT_LIBS"
    mvn -q -B -f "$here/connect/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$CONNECT_LIBS" >&2
    touch "$CONNECT_LIBS/.complete"
  fi
  for src in "$here"/connect/*.java; do [ "$src" -nt "$jar" ] && newer=1; done
  [ -f "$jar" ] && [ -z "$newer" ] && return 0
  command -v javac >/dev/null 2>&1 || die "javac is missing (a JDK 17 compiles connect/*.java)"
  log "compiling $here/connect/*.java into $jar"
  classes=$(mktemp -d)
  # The service file lists the transforms for the worker's plugin discovery (service_load).
  mkdir -p "$classes/META-INF/services"
  printf '%s\n' io.onceflow.connect.WatermillHeaders io.onceflow.connect.Heartbeats \
    >"$classes/META-INF/services/org.apache.kafka.connect.transforms.Transformation"
  if ! javac --release 17 -cp "$CONNECT_LIBS/*" -d "$classes" "$here"/connect/*.java >&2 \
    || ! jar --create --file "$jar.tmp" -C "$classes" .; then
    rm -rf "$classes" "$jar.tmp"
    die "compiling $here/connect/*.java failed"
  fi
  rm -rf "$classes"
  mv "$jar.tmp" "$jar"
}

# connect_bootstrap prints the Kafka bootstrap servers: the one node, or the three.
connect_bootstrap() {
  if [ "$KAFKA_NODES" = 3 ]; then
    echo "127.0.0.1:$KAFKA_PORT,127.0.0.1:$((KAFKA_PORT + 1)),127.0.0.1:$((KAFKA_PORT + 2))"
  else
    echo "127.0.0.1:$KAFKA_PORT"
  fi
}

# Where the worker and the connector find their servers, and how the worker
# listens and loads its plugins: this machine's by default; compose_connect sets
# the containers' (docker compose runs the same worker and connector).
connect_site() {
  CONNECT_BOOTSTRAP=$(connect_bootstrap)
  CONNECT_RF=1
  [ "$KAFKA_NODES" = 3 ] && CONNECT_RF=3
  CONNECT_LISTEN=127.0.0.1 CONNECT_ADVERTISED=127.0.0.1 CONNECT_REST_PORT=$CONNECT_PORT
  CONNECT_DB_HOST=127.0.0.1 CONNECT_DB_PORT=$ORDER_DB_PORT
  # Empty: the plugins are on the class path (launch_connect).
  CONNECT_PLUGIN_PATH=
}

# write_connect_config writes the worker's connect.properties and log4j2.properties
# into directory $1.
write_connect_config() {
  local dir=$1
  [ -n "${CONNECT_BOOTSTRAP:-}" ] || connect_site
  write_worker_properties >"$dir/connect.properties"
  write_worker_log4j "$dir"
}

# write_worker_properties prints the worker's properties for the site
# connect_site (or compose_connect) set.
write_worker_properties() {
  cat <<PROPS
# Kafka Connect worker (distributed mode, one worker), written by deploy/local/connect.sh.
bootstrap.servers=$CONNECT_BOOTSTRAP
group.id=onceflow-connect
config.storage.topic=onceflow-connect-configs
offset.storage.topic=onceflow-connect-offsets
status.storage.topic=onceflow-connect-status
config.storage.replication.factor=$CONNECT_RF
offset.storage.replication.factor=$CONNECT_RF
status.storage.replication.factor=$CONNECT_RF
listeners=http://$CONNECT_LISTEN:$CONNECT_REST_PORT
rest.advertised.host.name=$CONNECT_ADVERTISED
rest.advertised.port=$CONNECT_REST_PORT
# The records' key is the event key (a string), the value the event's bytes as they
# are, a header a string's UTF-8 bytes: what Watermill's Kafka publisher writes.
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.converters.ByteArrayConverter
header.converter=org.apache.kafka.connect.storage.SimpleHeaderConverter
# The connector's position (binlog GTID) is saved every second: a worker killed
# with kill -9 sends again at most about a second of events (the consumers deduplicate).
offset.flush.interval.ms=1000
# Connect's producers default to acks=all and one request in flight, but without
# idempotence: a retried send could then be written twice. Idempotence also keeps
# each partition's order across broker restarts.
producer.enable.idempotence=true
producer.acks=all
producer.max.in.flight.requests.per.connection=1
# A key's partition as pkg/kafka's producers (sarama's hash partitioner) choose it,
# not as Kafka's own partitioner (murmur2) would: see connect/WatermillHeaders.java.
producer.partitioner.class=io.onceflow.connect.WatermillHeaders\$SaramaHashPartitioner
# One worker: a restarted worker takes its connector back at once rather than after
# the default five minutes kept for a departed worker to come back.
scheduled.rebalance.max.delay.ms=0
# The plugins (Debezium's, WatermillHeaders) are on the class path, without isolation;
# each jar lists its plugins in META-INF/services, which spares the start-up the
# seconds of a reflective scan of every class.
plugin.discovery=service_load
PROPS
  [ -z "$CONNECT_PLUGIN_PATH" ] || printf 'plugin.path=%s\n' "$CONNECT_PLUGIN_PATH"
}

# write_worker_log4j writes the worker's log4j2.properties into directory $1.
write_worker_log4j() {
  local dir=$1
  {
    log4j2_to_file "$dir/connect.log" '[%d] %p %X{connector.context}%m (%c)%n'
    cat <<PROPS
logger.kafka.name=org.apache.kafka
logger.kafka.level=WARN
logger.connect.name=org.apache.kafka.connect
logger.connect.level=INFO
logger.reflections.name=org.reflections
logger.reflections.level=ERROR
PROPS
  } >"$dir/log4j2.properties"
}

# launch_connect starts the worker (server `connect`) and returns without waiting;
# wait_connect waits for it and registers the connector.
launch_connect() {
  local dir="$INFRA_DIR/connect"
  [ -z "$(pid_of connect)" ] || { log "connect already running (pid $(pid_of connect))"; return 0; }
  [ -f "$CONNECT_LIBS/.complete" ] || die "Kafka Connect jars are missing; run install_connect"
  port_open "$CONNECT_PORT" && die "connect: port $CONNECT_PORT is taken by another process (CONNECT_PORT)"
  mkdir -p "$dir"
  write_connect_config "$dir"
  # The heartbeats' topic (connect/Heartbeats.java says why), before the connector runs.
  java -cp "$CONNECT_LIBS/*" io.onceflow.connect.Heartbeats "$(connect_bootstrap)" "$HEARTBEAT_TOPIC" \
    "$([ "$KAFKA_NODES" = 3 ] && echo 3 || echo 1)" >>"$dir/connect.out" 2>&1 \
    || die "connect: creating topic $HEARTBEAT_TOPIC failed; see $dir/connect.out"
  # wait_connect reads only the log lines of this start (the log is appended to).
  stat -c %s "$dir/connect.log" 2>/dev/null >"$dir/.log-offset" || echo 0 >"$dir/.log-offset"
  # shellcheck disable=SC2086 # CONNECT_HEAP holds several flags
  setsid java $CONNECT_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$CONNECT_LIBS/*" \
    org.apache.kafka.connect.cli.ConnectDistributed "$dir/connect.properties" \
    </dev/null >>"$dir/connect.out" 2>&1 &
  echo $! >"$(pidfile_of connect)"
}

# connector_config prints the connector's configuration (the body of
# PUT /connectors/order-outbox/config). Option names: Debezium 3.5's MariaDB
# connector and outbox EventRouter. Beside the routing, two settings are
# not the defaults, each for a fault the e2e lane found (ADR 0068):
#   heartbeat.interval.ms (with the heartbeat transform): the position is
#     saved from the start, see connect/Heartbeats.java;
#   connect.keep.alive.interval.ms=1000: after its database restarts, the
#     binary log client looks for it every second; with the default (a
#     minute) it read nothing for about 100 s after kill -9 of the database.
# And one for latency, found by the bench: poll.interval.ms=50, how long the
# task waits for more events before it hands a batch to Connect (default
# 500 ms, which made commit→Kafka 257 ms at the median).
connector_config() {
  [ -n "${CONNECT_BOOTSTRAP:-}" ] || connect_site
  cat <<JSON
{
  "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
  "tasks.max": "1",
  "database.hostname": "$CONNECT_DB_HOST",
  "database.port": "$CONNECT_DB_PORT",
  "database.user": "orders_relay",
  "database.password": "orders_relay",
  "database.server.id": "5401",
  "topic.prefix": "$TOPIC_PREFIX",
  "database.include.list": "$CONNECT_DATABASES",
  "table.include.list": "$CONNECT_DATABASES\\\\.watermill_outbox",
  "heartbeat.interval.ms": "1000",
  "connect.keep.alive.interval.ms": "1000",
  "poll.interval.ms": "50",
  "snapshot.mode": "no_data",
  "snapshot.locking.mode": "none",
  "include.schema.changes": "false",
  "tombstones.on.delete": "false",
  "extended.headers.enabled": "false",
  "binary.handling.mode": "bytes",
  "schema.history.internal.kafka.bootstrap.servers": "$CONNECT_BOOTSTRAP",
  "schema.history.internal.kafka.topic": "onceflow-connect-schema-history",
  "schema.history.internal.store.only.captured.tables.ddl": "true",
  "key.converter": "org.apache.kafka.connect.storage.StringConverter",
  "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
  "header.converter": "org.apache.kafka.connect.storage.SimpleHeaderConverter",
  "predicates": "heartbeat",
  "predicates.heartbeat.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
  "predicates.heartbeat.pattern": "__debezium-heartbeat\\\\..*",
  "transforms": "outbox,headers,heartbeat",
  "transforms.outbox.predicate": "heartbeat",
  "transforms.outbox.negate": "true",
  "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
  "transforms.outbox.route.by.field": "event_topic",
  "transforms.outbox.route.topic.replacement": "\${routedByValue}",
  "transforms.outbox.table.field.event.id": "event_uuid",
  "transforms.outbox.table.field.event.key": "event_key",
  "transforms.outbox.table.field.event.payload": "event_payload",
  "transforms.outbox.table.fields.additional.placement": "event_uuid:header:_watermill_message_uuid,event_metadata:header:onceflow_metadata",
  "transforms.outbox.table.expand.json.payload": "false",
  "transforms.outbox.route.tombstone.on.empty.payload": "false",
  "transforms.headers.type": "io.onceflow.connect.WatermillHeaders",
  "transforms.heartbeat.type": "io.onceflow.connect.Heartbeats",
  "transforms.heartbeat.predicate": "heartbeat"
}
JSON
}

connect_url() { echo "http://127.0.0.1:$CONNECT_PORT$1"; }

# connect_status prints the connector's status (JSON) as the worker reports it.
connect_status() { curl -fsS --max-time 5 "$(connect_url "/connectors/$CONNECTOR/status")"; }

# register_connector creates or updates the connector (PUT is idempotent); it
# fails while the worker is not ready for it (e.g. rebalancing: 409).
register_connector() {
  connector_config | curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
    --data-binary @- "$(connect_url "/connectors/$CONNECTOR/config")" >/dev/null 2>&1
}

# connect_streaming succeeds once the connector's task, since the worker's last
# start, reads order-db's binary log: Connect reports the task RUNNING before that,
# and a missing privilege fails it only then. Debezium starts its keep-alive thread
# once the server has accepted the binlog dump ("Connected to binlog" comes before).
connect_streaming() {
  local dir="$INFRA_DIR/connect"
  tail -c "+$(($(cat "$dir/.log-offset" 2>/dev/null || echo 0) + 1))" "$dir/connect.log" 2>/dev/null \
    | grep -q 'Keepalive thread is running'
}

# wait_connect waits up to $1 seconds until the worker's REST API answers, then
# registers the connector and waits until its task runs and reads the binary log.
wait_connect() {
  local deadline=$((SECONDS + $1)) registered='' restarted='' status trace
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$(pid_of connect)" ] || die "connect exited during start-up; see $INFRA_DIR/connect/connect.log"
    if [ -z "$registered" ]; then
      curl -fsS --max-time 2 "$(connect_url /)" >/dev/null 2>&1 && register_connector && registered=1
    fi
    if [ -n "$registered" ] && status=$(connect_status 2>/dev/null); then
      case $(jq -r '[.connector.state] + [.tasks[].state] | join(" ")' <<<"$status") in
        "RUNNING RUNNING") connect_streaming && return 0 ;;
        *FAILED*)
          # A failed task stays failed (also in the status a restarted worker reads
          # back at first): restart it once (e.g. after a missing grant was added).
          if [ -z "$restarted" ]; then
            curl -fsS --max-time 10 -X POST "$(connect_url "/connectors/$CONNECTOR/restart?includeTasks=true&onlyFailed=true")" >/dev/null 2>&1 \
              && restarted=1
            sleep 0.2
            continue
          fi
          trace=$(jq -r '[.connector.trace, .tasks[].trace] | map(select(.)) | .[0]' <<<"$status")
          # The trace's first line and its root cause.
          die "connect: connector $CONNECTOR failed: $(head -1 <<<"$trace")${IFS:0:1}$(grep '^Caused by' <<<"$trace" | tail -1)" ;;
      esac
    fi
    sleep 0.2
  done
  die "connect: connector $CONNECTOR did not run within $1 s; see $INFRA_DIR/connect/connect.log"
}

# compose_connect writes into directory $1 the worker's properties and the
# connector's configuration for docker compose's profile debezium
# (deploy/compose/connect/, checked by deploy/compose's tests to be what this
# prints): the containers' names and ports, the plugins in /plugins, and
# internal topics with the brokers' default replication (one node or three).
compose_connect() {
  local dir=$1
  CONNECT_BOOTSTRAP=kafka-1:29092,kafka-2:29092,kafka-3:29092 CONNECT_RF=-1
  CONNECT_LISTEN=0.0.0.0 CONNECT_ADVERTISED=connect CONNECT_REST_PORT=8083
  CONNECT_DB_HOST=order-db CONNECT_DB_PORT=3306 CONNECT_PLUGIN_PATH=/plugins CONNECT_DATABASES=orders
  write_worker_properties | sed 's|written by deploy/local/connect.sh|written by deploy/local/infra.sh compose-connect|' >"$dir/worker.properties"
  connector_config >"$dir/order-outbox.json"
}
