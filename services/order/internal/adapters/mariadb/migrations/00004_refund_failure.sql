-- +goose Up
-- Why the payment service could not refund a cancelled, paid order (event
-- payment.refund_failed, ADR 0027); empty while there is no such failure.
ALTER TABLE `orders` ADD COLUMN `refund_failure` VARCHAR(255) NOT NULL DEFAULT '' AFTER `refunded`;

-- +goose Down
ALTER TABLE `orders` DROP COLUMN `refund_failure`;
