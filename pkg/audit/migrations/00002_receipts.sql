-- +goose Up
-- A receipt per event the service's outbox wrote, in the event's transaction
-- (outbox.WithReceipts): the delivery check's record of what must reach
-- Kafka. Deleted once the check has judged it.
CREATE TABLE `audit_receipts` (
  `id`         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `event_id`   VARCHAR(255) NOT NULL,
  `event_key`  VARCHAR(255) NOT NULL,
  `topic`      VARCHAR(255) NOT NULL,
  `event_type` VARCHAR(255) NOT NULL,
  `written_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY `audit_receipts_event` (`event_id`)
);

-- +goose Down
DROP TABLE `audit_receipts`;
