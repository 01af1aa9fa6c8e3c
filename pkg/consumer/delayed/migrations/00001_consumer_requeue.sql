-- +goose Up
-- The consumers' delayed path (ADR 32): messages waiting to be delivered again
-- to one consumer (consumer group + handler) of this database, due at
-- delayed_until (UTC). The requeue strategy stores a failing message here with a
-- growing delay; a poison replay stores the message here due at once, so that
-- only the consumer group that poisoned it sees it again. Each consumer's
-- second router handler polls its own rows (watermill-sql v4's queue schema,
-- at READ COMMITTED) and deletes a row once the consumer acknowledged it.
-- delayed_until is DATETIME(6), written in UTC and compared with
-- UTC_TIMESTAMP(6): the result does not depend on the session's time zone.
-- IF NOT EXISTS: databases migrated before the delayed path had its own version
-- table (goose_messaging_version) have it already.
CREATE TABLE IF NOT EXISTS `consumer_requeue` (
  `offset`         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `uuid`           VARCHAR(255) NOT NULL,
  `payload`        LONGBLOB     DEFAULT NULL,
  `metadata`       JSON         DEFAULT NULL,
  `acked`          BOOLEAN      NOT NULL DEFAULT FALSE,
  `created_at`     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `consumer_group` VARCHAR(100) NOT NULL,
  `handler`        VARCHAR(255) NOT NULL,
  `delayed_until`  DATETIME(6)  NOT NULL,
  KEY `consumer_requeue_due` (`consumer_group`, `handler`, `acked`, `delayed_until`)
);

-- +goose Down
DROP TABLE IF EXISTS `consumer_requeue`;
