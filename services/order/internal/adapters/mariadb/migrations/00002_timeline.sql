-- +goose Up
-- The order timeline: a read model of everything that passed on the saga's topics
-- (events of both services, poisoned and replayed messages), one row per Kafka
-- message, filled by the timeline projection (ADR 16).
CREATE TABLE `order_timeline` (
  `id`                 BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `order_id`           VARCHAR(64)  NOT NULL,
  `topic`              VARCHAR(255) NOT NULL,
  `kafka_partition`    INT          NOT NULL,
  `kafka_offset`       BIGINT       NOT NULL,
  `kafka_time`         TIMESTAMP(6) NOT NULL,
  `event_id`           VARCHAR(255) NOT NULL,
  `event_type`         VARCHAR(64)  NOT NULL,
  `correlation_id`     VARCHAR(128) NOT NULL DEFAULT '',
  `causation_id`       VARCHAR(255) NOT NULL DEFAULT '',
  `causation_attempts` INT          NOT NULL DEFAULT 0,
  `poisoned_reason`    TEXT         NULL,
  `poisoned_from`      VARCHAR(255) NOT NULL DEFAULT '',
  `replayed_at`        VARCHAR(64)  NOT NULL DEFAULT '',
  UNIQUE KEY `order_timeline_position` (`topic`, `kafka_partition`, `kafka_offset`),
  KEY `order_timeline_order` (`order_id`, `kafka_time`)
);

-- +goose Down
DROP TABLE `order_timeline`;
