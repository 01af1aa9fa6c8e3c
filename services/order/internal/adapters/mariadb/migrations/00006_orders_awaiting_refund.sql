-- +goose Up
-- The orders the saga has not finished are PENDING ones (orders_status_created)
-- and cancelled, paid ones waiting for their refund: this index makes the stuck
-- list and the oldest-not-done gauge a short range scan for the latter too.
CREATE INDEX `orders_awaiting_refund` ON `orders` (`status`, `paid`, `refunded`, `refund_failure`, `updated_at`);

-- +goose Down
DROP INDEX `orders_awaiting_refund` ON `orders`;
