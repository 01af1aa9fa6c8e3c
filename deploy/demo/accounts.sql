-- Demo customers of the local/dev setup (README, "Walk-through"), balances in
-- cents. Loaded into the payment database by `make run` (deploy/local/run.sh) and
-- by compose (service payment-seed), after the payment service has created its
-- tables. Never part of a deployment's migrations (ADR 0026). INSERT IGNORE: an
-- account that exists (from an earlier run) is left as it is.
INSERT IGNORE INTO `accounts` (`customer_id`, `balance_cents`, `currency`) VALUES
  ('c-1',    1000000, 'EUR'),  -- 10,000.00 EUR: can pay
  ('c-2',      50000, 'EUR'),  --    500.00 EUR
  ('c-3',     100000, 'USD'),  --  1,000.00 USD: EUR orders are refused (currency_mismatch)
  ('c-poor',     500, 'EUR');  --      5.00 EUR: most orders are refused (insufficient_funds)
