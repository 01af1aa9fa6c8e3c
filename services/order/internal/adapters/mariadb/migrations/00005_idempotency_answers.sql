-- +goose Up
-- The answer the client of a keyed request received (ADR 23): its status, the
-- headers that belong to it (a JSON object) and its body, as sent; a replay sends
-- them again unchanged. `result` (the order as JSON) is no longer written: a key
-- stored before this migration has only `result`, from which its replay is
-- rendered, and expires within ORDER_IDEMPOTENCY_KEY_TTL.
ALTER TABLE `idempotency_keys`
  ADD COLUMN `answer_status` SMALLINT   NULL AFTER `result`,
  ADD COLUMN `answer_header` TEXT       NULL AFTER `answer_status`,
  ADD COLUMN `answer_body`   MEDIUMBLOB NULL AFTER `answer_header`;

-- +goose Down
ALTER TABLE `idempotency_keys`
  DROP COLUMN `answer_body`,
  DROP COLUMN `answer_header`,
  DROP COLUMN `answer_status`;
