-- +goose Up
-- The transactional outbox: watermill-sql v4's MySQLQueueSchema for the SQL topic
-- "outbox" (same columns as the adapter's own CREATE TABLE). A row is an event
-- wrapped in the forwarder's envelope; the forwarder deletes it once Kafka has it.
-- IF NOT EXISTS: databases migrated before the outbox had its own version table
-- (goose_messaging_version) have it already.
CREATE TABLE IF NOT EXISTS `watermill_outbox` (
  `offset`     BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `uuid`       VARCHAR(36) NOT NULL,
  `payload`    JSON DEFAULT NULL,
  `metadata`   JSON DEFAULT NULL,
  `acked`      BOOLEAN NOT NULL DEFAULT FALSE,
  `created_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- +goose Down
DROP TABLE IF EXISTS `watermill_outbox`;
