-- +goose Up
-- What the poison tooling replayed (pkg/messaging/poison): one row per replay of a
-- poisoned message, so that listings can say what was already sent back.
CREATE TABLE IF NOT EXISTS `poison_replays` (
  `poison_topic`  VARCHAR(255) NOT NULL,
  `poison_offset` BIGINT       NOT NULL,
  `message_id`    VARCHAR(255) NOT NULL,
  `replayed_at`   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`poison_topic`, `poison_offset`, `replayed_at`)
);

-- +goose Down
DROP TABLE IF EXISTS `poison_replays`;
