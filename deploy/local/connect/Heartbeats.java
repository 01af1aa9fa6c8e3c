// The Debezium connector's heartbeats (ADR 0068; deploy/local/connect.sh).
//
// Why: Kafka Connect saves a source connector's position (here the binary log's
// GTID) only with records it produced. With snapshot.mode=no_data a new connector
// produces nothing until the first outbox event, so a worker killed before that
// restarts at the log's end and skips what was written while it was down. A
// heartbeat record every second (heartbeat.interval.ms) carries the position, so it
// is saved from the start, and also while the outbox is idle and other writes move
// the log on.
//
// Two parts:
//   - main(bootstrap, topic, replicationFactor) creates the heartbeat topic if it is
//     missing: the brokers do not create topics (auto.create.topics.enable=false),
//     and Connect's own topic creation would apply to the event topics too, whose
//     partition counts belong to the services;
//   - the transform empties a heartbeat's value (Debezium gives it a Struct, which the
//     worker's ByteArrayConverter cannot write): only the record's position matters.
//     It is applied to the heartbeat topic only (a TopicNameMatches predicate).
package io.onceflow.connect;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.transforms.Transformation;

public class Heartbeats<R extends ConnectRecord<R>> implements Transformation<R> {
    @Override
    public R apply(R record) {
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                null, null, record.timestamp(), record.headers());
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef(); // nothing to configure
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }

    // main creates topic args[1] (one partition, replication factor args[2]; -1:
    // the brokers' default) on the cluster at args[0], unless it exists.
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Heartbeats <bootstrap servers> <topic> <replication factor>");
            System.exit(2);
        }
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]))) {
            short rf = Short.parseShort(args[2]);
            Optional<Short> replication = rf < 0 ? Optional.empty() : Optional.of(rf);
            admin.createTopics(List.of(new NewTopic(args[1], Optional.of(1), replication))).all().get();
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
    }
}
