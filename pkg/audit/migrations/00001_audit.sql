-- +goose Up
-- The delivery auditor (pkg/audit): the broken promises it found, each subject
-- once (a check, the scope it looked in, the subject: an order, an event),
-- and how far each check has read (its cursor, e.g. the last ledger id).
CREATE TABLE `audit_violations` (
  `check_name` VARCHAR(32)  NOT NULL,
  `scope`      VARCHAR(255) NOT NULL,
  `subject`    VARCHAR(255) NOT NULL,
  `detail`     VARCHAR(255) NOT NULL DEFAULT '',
  `found_at`   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`check_name`, `scope`, `subject`)
);
CREATE TABLE `audit_cursors` (
  `check_name` VARCHAR(32) NOT NULL PRIMARY KEY,
  `position`   BIGINT      NOT NULL
);

-- +goose Down
DROP TABLE `audit_cursors`;
DROP TABLE `audit_violations`;
