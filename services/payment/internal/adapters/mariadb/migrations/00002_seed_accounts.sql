-- +goose Up
-- Demo customers (README, "Try it"). Balances in cents.
INSERT INTO `accounts` (`customer_id`, `balance_cents`, `currency`) VALUES
  ('c-1',    1000000, 'EUR'),  -- 10,000.00 EUR: can pay
  ('c-2',      50000, 'EUR'),  --    500.00 EUR
  ('c-3',     100000, 'USD'),  --  1,000.00 USD: EUR orders are refused (currency_mismatch)
  ('c-poor',     500, 'EUR');  --      5.00 EUR: most orders are refused (insufficient_funds)

-- +goose Down
DELETE FROM `accounts` WHERE `customer_id` IN ('c-1', 'c-2', 'c-3', 'c-poor');
