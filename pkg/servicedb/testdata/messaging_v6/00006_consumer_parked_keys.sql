-- +goose Up
-- Keys parked by a consumer in the park-key failure mode (ADR 33). A message a
-- consumer gives up on becomes the head of its key's queue; every later message
-- of that key (same consumer group and handler) is parked behind it, in `id`
-- order, without running the handler, while other keys flow. The tables live in
-- the consumer's own database, so a parked queue outlives Kafka's retention.
--
-- consumer_parked_keys has one row per parked key: it exists exactly while the
-- key has parked messages, and it is the key's lock: the consumer's "is this key
-- parked?" check and every release step read it FOR UPDATE. A replay request
-- (from the CLI or the admin endpoint, possibly in another process) is a mark
-- (replay_requested_at) that the running consumers' poller picks up.
CREATE TABLE IF NOT EXISTS `consumer_parked_keys` (
  `consumer_group`      VARCHAR(100) NOT NULL,
  `handler`             VARCHAR(100) NOT NULL,
  `partition_key`       VARCHAR(255) NOT NULL,
  `parked_at`           TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `replay_requested_at` TIMESTAMP(6) NULL DEFAULT NULL,
  `replays`             INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (`consumer_group`, `handler`, `partition_key`),
  KEY `consumer_parked_keys_replay` (`consumer_group`, `replay_requested_at`)
);

-- The parked messages; the lowest id of a (group, handler, key) is its head.
-- reason_code is public (messaging.ReasonCode, or behind_parked for a message
-- that waits behind the head), error is the full error text (admin only).
CREATE TABLE IF NOT EXISTS `consumer_parked_messages` (
  `id`             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `consumer_group` VARCHAR(100) NOT NULL,
  `handler`        VARCHAR(100) NOT NULL,
  `partition_key`  VARCHAR(255) NOT NULL,
  `message_id`     VARCHAR(255) NOT NULL,
  `topic`          VARCHAR(255) NOT NULL,
  `payload`        LONGBLOB     NOT NULL,
  `metadata`       LONGTEXT     NOT NULL,
  `reason_code`    VARCHAR(64)  NOT NULL,
  `error`          TEXT         NOT NULL,
  `parked_at`      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `failures`       INT          NOT NULL DEFAULT 0,
  UNIQUE KEY `consumer_parked_messages_id` (`consumer_group`, `handler`, `message_id`),
  KEY `consumer_parked_messages_key` (`consumer_group`, `handler`, `partition_key`, `id`)
);

-- +goose Down
DROP TABLE IF EXISTS `consumer_parked_messages`;
DROP TABLE IF EXISTS `consumer_parked_keys`;
