-- +goose Up
-- Why the payment service could not refund a cancelled, paid order (event
-- payment.refund_failed, ADR 0027); empty while there is no such failure.
ALTER TABLE `orders` ADD COLUMN `refund_failure` VARCHAR(255) NOT NULL DEFAULT '' AFTER `refunded`;

-- The timeline is pruned by age in small batches (ADR 0025); this index makes
-- each batch a short range scan.
CREATE INDEX `order_timeline_kafka_time` ON `order_timeline` (`kafka_time`);

-- +goose Down
DROP INDEX `order_timeline_kafka_time` ON `order_timeline`;
ALTER TABLE `orders` DROP COLUMN `refund_failure`;
