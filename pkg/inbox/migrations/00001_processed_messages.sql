-- +goose Up
-- The inbox of the idempotent consumer: one row per message a consumer group has
-- processed, written in the same transaction as the message's effect.
-- IF NOT EXISTS: databases migrated before the inbox had its own version table
-- (goose_messaging_version) have it already.
CREATE TABLE IF NOT EXISTS `processed_messages` (
  `consumer_group` VARCHAR(100) NOT NULL,
  `message_id`     VARCHAR(255) NOT NULL,
  `processed_at`   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`consumer_group`, `message_id`),
  KEY `processed_messages_processed_at` (`processed_at`)
);

-- +goose Down
DROP TABLE IF EXISTS `processed_messages`;
