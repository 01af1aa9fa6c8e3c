-- +goose Up
-- What the poison tooling replayed: one row per replay of a poisoned message,
-- so that listings can say what was already sent back. Pruning deletes records
-- by age in small batches (ADR 0025); the index makes each batch a short range
-- scan. IF NOT EXISTS: databases migrated before the poison tooling had its own
-- version table (goose_messaging_version) have both already.
CREATE TABLE IF NOT EXISTS `poison_replays` (
  `poison_topic`  VARCHAR(255) NOT NULL,
  `poison_offset` BIGINT       NOT NULL,
  `message_id`    VARCHAR(255) NOT NULL,
  `replayed_at`   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`poison_topic`, `poison_offset`, `replayed_at`),
  KEY `poison_replays_replayed_at` (`replayed_at`)
);
CREATE INDEX IF NOT EXISTS `poison_replays_replayed_at` ON `poison_replays` (`replayed_at`);

-- +goose Down
DROP TABLE IF EXISTS `poison_replays`;
