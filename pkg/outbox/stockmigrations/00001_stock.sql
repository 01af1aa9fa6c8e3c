-- +goose Up
-- The stock relay's tables (fault build only, outbox.StockMigrations): exactly
-- what watermill-sql v4.1.2's DefaultMySQLSchema and DefaultMySQLOffsetsAdapter
-- create for the forwarder's default SQL topic "forwarder_topic".
CREATE TABLE IF NOT EXISTS `watermill_forwarder_topic` (
  `offset` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `uuid` VARCHAR(36) NOT NULL,
  `created_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `payload` JSON DEFAULT NULL,
  `metadata` JSON DEFAULT NULL
);
CREATE TABLE IF NOT EXISTS `watermill_offsets_forwarder_topic` (
  consumer_group VARCHAR(255) NOT NULL,
  offset_acked BIGINT,
  offset_consumed BIGINT NOT NULL,
  PRIMARY KEY(consumer_group)
);

-- +goose Down
DROP TABLE IF EXISTS `watermill_offsets_forwarder_topic`;
DROP TABLE IF EXISTS `watermill_forwarder_topic`;
