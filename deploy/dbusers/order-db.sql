-- The order database's users (ADR 0049). Idempotent: run by deploy/local/infra.sh
-- as root on every start of order-db, and by compose's MariaDB image on first
-- initialisation (/docker-entrypoint-initdb.d). Passwords are development
-- credentials (ADR 0026); a deployment creates these users with its own secrets.
--   orders_migrate  runs the migrations: every privilege on `orders`, nothing else.
--   orders_app      the order service: reads and writes rows of `orders`, no DDL.
CREATE DATABASE IF NOT EXISTS `orders`;
CREATE USER IF NOT EXISTS 'orders_migrate'@'%' IDENTIFIED BY 'orders_migrate';
GRANT ALL PRIVILEGES ON `orders`.* TO 'orders_migrate'@'%';
CREATE USER IF NOT EXISTS 'orders_app'@'%' IDENTIFIED BY 'orders_app';
GRANT SELECT, INSERT, UPDATE, DELETE ON `orders`.* TO 'orders_app'@'%';
