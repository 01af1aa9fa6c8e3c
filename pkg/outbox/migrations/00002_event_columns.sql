-- +goose Up
-- The event's parts as columns, for a relay that reads rows instead of
-- decoding the forwarder's envelope (Debezium's Outbox Event Router, ADR 0068):
-- the Kafka topic, the event's id, its key (the partition_key metadata), its
-- payload bytes and its metadata as a JSON object. VIRTUAL: computed when read,
-- so writing a row costs what it did; MariaDB's binary log (ROW format, full
-- images) carries their values, which is where Debezium reads them.
ALTER TABLE `watermill_outbox`
  ADD COLUMN IF NOT EXISTS `event_topic` VARCHAR(249) AS (JSON_VALUE(`payload`, '$.destination_topic')) VIRTUAL,
  ADD COLUMN IF NOT EXISTS `event_uuid` VARCHAR(36) AS (JSON_VALUE(`payload`, '$.uuid')) VIRTUAL,
  ADD COLUMN IF NOT EXISTS `event_key` VARCHAR(255) AS (JSON_VALUE(`payload`, '$.metadata.partition_key')) VIRTUAL,
  ADD COLUMN IF NOT EXISTS `event_payload` LONGBLOB AS (FROM_BASE64(JSON_VALUE(`payload`, '$.payload'))) VIRTUAL,
  ADD COLUMN IF NOT EXISTS `event_metadata` LONGTEXT AS (JSON_EXTRACT(`payload`, '$.metadata')) VIRTUAL;

-- +goose Down
ALTER TABLE `watermill_outbox`
  DROP COLUMN IF EXISTS `event_metadata`, DROP COLUMN IF EXISTS `event_payload`, DROP COLUMN IF EXISTS `event_key`,
  DROP COLUMN IF EXISTS `event_uuid`, DROP COLUMN IF EXISTS `event_topic`;
