// A Kafka Connect Single Message Transform for the order outbox relayed by Debezium
// (ADR 0068; deploy/local/connect.sh compiles it and configures it after Debezium's
// outbox EventRouter). The EventRouter gives each record the key, the value and the
// topic the project's own relay (Watermill's forwarder and Kafka publisher) would, but
// not its headers: Watermill writes `_watermill_message_uuid` and one header per
// metadata entry, while the EventRouter can only copy whole columns into headers and
// always adds its own `id` header. This transform finishes the job, so that consumers
// cannot tell the two relays' records apart:
//   - the header `onceflow_metadata` (the outbox column `event_metadata`: the message's
//     metadata as a JSON object of string to string) is replaced by one string header
//     per entry, in the object's order (Connect's SimpleHeaderConverter writes a string
//     header as its UTF-8 bytes, as Watermill does);
//   - the headers Debezium adds (`id`, and any `__debezium*`) are dropped.
// A record without `onceflow_metadata` (not an outbox event) passes unchanged.
// It also holds the producer's partitioner, WatermillHeaders.SaramaHashPartitioner
// (below): the partition is not a record's bytes, but it is part of what consumers see.
package io.onceflow.connect;

import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.header.Headers;
import org.apache.kafka.connect.transforms.Transformation;

public class WatermillHeaders<R extends ConnectRecord<R>> implements Transformation<R> {
    static final String METADATA_HEADER = "onceflow_metadata";

    private static final ObjectMapper JSON = new ObjectMapper();

    @Override
    public R apply(R record) {
        if (record.headers().lastWithName(METADATA_HEADER) == null) {
            return record;
        }
        // A new header list in the old one's order (`_watermill_message_uuid` first, as
        // Watermill writes it), rather than changes to the record's own list.
        Headers headers = new ConnectHeaders();
        for (Header h : record.headers()) {
            String name = h.key();
            if (name.equals(METADATA_HEADER)) {
                addMetadata(headers, h.value());
            } else if (!name.equals("id") && !name.startsWith("__debezium")) {
                headers.add(name, h.value(), h.schema());
            }
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                record.valueSchema(), record.value(), record.timestamp(), headers);
    }

    // addMetadata adds one string header per entry of the JSON object `value` (null, an
    // SQL NULL, adds none). Watermill's metadata values are strings; anything else is
    // written as its JSON text rather than dropped.
    private static void addMetadata(Headers headers, Object value) {
        if (value == null) {
            return;
        }
        JsonNode metadata;
        try {
            metadata = JSON.readTree(value.toString());
        } catch (Exception e) {
            throw new DataException("header " + METADATA_HEADER + " is not JSON: " + value, e);
        }
        if (metadata == null || metadata.isNull() || metadata.isMissingNode()) {
            return;
        }
        if (!metadata.isObject()) {
            throw new DataException("header " + METADATA_HEADER + " is not a JSON object: " + value);
        }
        for (Map.Entry<String, JsonNode> e : metadata.properties()) {
            JsonNode v = e.getValue();
            headers.addString(e.getKey(), v.isTextual() ? v.textValue() : v.toString());
        }
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

    // SaramaHashPartitioner places a keyed record on the partition sarama's
    // NewHashPartitioner (pkg/kafka's producers, hence Watermill's relay) chooses:
    // FNV-1a (32 bits) of the key as a signed int, modulo the partition count, made
    // positive. Kafka's own partitioner hashes with murmur2 instead, which would put a
    // key on another partition than the project's producers (and tests) expect, and
    // split a key's events over two partitions while the relays change over. An
    // unkeyed record (the outbox has none) goes to a random partition, as with sarama.
    // Set as the worker's producer.partitioner.class (connect.sh).
    public static class SaramaHashPartitioner implements Partitioner {
        @Override
        public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes, Cluster cluster) {
            int n = cluster.partitionsForTopic(topic).size();
            if (keyBytes == null) {
                return ThreadLocalRandom.current().nextInt(n);
            }
            int h = 0x811c9dc5;
            for (byte b : keyBytes) {
                h = (h ^ (b & 0xff)) * 0x01000193;
            }
            int p = h % n;
            return p < 0 ? -p : p;
        }

        @Override
        public void configure(Map<String, ?> configs) {
        }

        @Override
        public void close() {
        }
    }
}
