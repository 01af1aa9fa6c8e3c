-- +goose Up
CREATE TABLE `orders` (
  `id`            VARCHAR(64)  NOT NULL PRIMARY KEY,
  `customer_id`   VARCHAR(64)  NOT NULL,
  `amount_cents`  BIGINT       NOT NULL,
  `currency`      CHAR(3)      NOT NULL,
  `status`        VARCHAR(16)  NOT NULL,
  `cancel_reason` VARCHAR(255) NOT NULL DEFAULT '',
  `paid`          BOOLEAN      NOT NULL DEFAULT FALSE,
  `refunded`      BOOLEAN      NOT NULL DEFAULT FALSE,
  `version`       INT          NOT NULL,
  `created_at`    TIMESTAMP(6) NOT NULL,
  `updated_at`    TIMESTAMP(6) NOT NULL,
  KEY `orders_customer_created` (`customer_id`, `created_at`),
  KEY `orders_status_created` (`status`, `created_at`)
);

-- +goose Down
DROP TABLE `orders`;
