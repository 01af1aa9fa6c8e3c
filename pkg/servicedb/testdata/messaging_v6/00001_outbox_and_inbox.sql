-- +goose Up
-- The transactional outbox: watermill-sql v4's MySQLQueueSchema for the SQL topic
-- "outbox" (same columns as the adapter's own CREATE TABLE). A row is an event
-- wrapped in the forwarder's envelope; the forwarder deletes it once Kafka has it.
CREATE TABLE IF NOT EXISTS `watermill_outbox` (
  `offset`     BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `uuid`       VARCHAR(36) NOT NULL,
  `payload`    JSON DEFAULT NULL,
  `metadata`   JSON DEFAULT NULL,
  `acked`      BOOLEAN NOT NULL DEFAULT FALSE,
  `created_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- The inbox of the idempotent consumer: one row per message a consumer group has
-- processed, written in the same transaction as the message's effect.
CREATE TABLE IF NOT EXISTS `processed_messages` (
  `consumer_group` VARCHAR(100) NOT NULL,
  `message_id`     VARCHAR(255) NOT NULL,
  `processed_at`   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`consumer_group`, `message_id`),
  KEY `processed_messages_processed_at` (`processed_at`)
);

-- +goose Down
DROP TABLE IF EXISTS `processed_messages`;
DROP TABLE IF EXISTS `watermill_outbox`;
