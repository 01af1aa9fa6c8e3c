-- +goose Up
-- Parked outbox rows (ADR 22): events Kafka refused for a reason retrying cannot
-- fix (message too large, invalid record, unknown topic after the topics were
-- created), moved here by the forwarder in its polling transaction so that the
-- rows behind them flow on, and the later events of the same Kafka key (order
-- id), parked behind them so that no event overtakes an earlier one of its order.
-- The rows of one key form a queue in `id` order; its head is the only one an
-- operator can replay or discard. An unresolved row is never deleted by the
-- service: it is an operator's to-do list. A row is deleted when it is resolved
-- (forwarded after a replay, or discarded), and the service logs that.
CREATE TABLE IF NOT EXISTS `outbox_parked` (
  `id`            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `message_id`    VARCHAR(255) NOT NULL,
  `partition_key` VARCHAR(255) NOT NULL,
  `topic`         VARCHAR(255) NOT NULL,
  `payload`       LONGBLOB     NOT NULL,
  `metadata`      LONGTEXT     NOT NULL,
  `reason`        VARCHAR(64)  NOT NULL,
  `kafka_error`   TEXT         NOT NULL,
  `parked_at`     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `times_parked`  INT          NOT NULL DEFAULT 1,
  `replays`       INT          NOT NULL DEFAULT 0,
  `released_at`   TIMESTAMP(6) NULL DEFAULT NULL,
  KEY `outbox_parked_key` (`partition_key`, `id`)
);

-- +goose Down
DROP TABLE IF EXISTS `outbox_parked`;
