package messaging

// FaultConfig holds the fault-injection suite's switches: hooks that crash the
// process at the moment a crash is most likely to cause duplicates, a fault point
// that makes Kafka refuse a row in the middle of a forwarded batch, and switches
// that turn one protection off so that a negative control can show the damage.
//
// Only a binary built with `-tags faults` acts on them (e2e/harness builds the
// services that way; `make build`, `make run` and the Dockerfile do not). In any
// other build Config.Validate rejects a configuration that sets one, so a
// variable copied from a test environment cannot weaken a production service: it
// stops it from starting, with an error that names the switch (ADR 21).
//
// Zero values are off. A service reads them under its prefix, e.g.
// ORDER_FAULT_CRASH_AFTER_PUBLISH or PAYMENT_FAULT_DISABLE_INBOX.
type FaultConfig struct {
	// CrashAfterPublish kills the process (SIGKILL) each time its forwarder has
	// published this many events since start: right after Kafka acknowledged the
	// last one and before its outbox row is deleted, so the row is published again
	// after the restart.
	CrashAfterPublish int `env:"CRASH_AFTER_PUBLISH"`
	// CrashAfterCommit kills the process each time its consumer has processed this
	// many messages since start: right after the inbox transaction committed and
	// before the message is acknowledged to Kafka, so it is delivered again.
	CrashAfterCommit int `env:"CRASH_AFTER_COMMIT"`
	// RefuseMidBatch makes the forwarder's Kafka publisher refuse, once per
	// process, the first row that follows a forwarded row in the same polling
	// transaction (a row in the middle of a batch), and keep refusing it until that
	// delivery's ack deadline has passed: what a Kafka outage that begins in the
	// middle of a batch does, caused on purpose instead of hoping a kill lands
	// there. It fires as soon as a batch holds two rows (any backlog).
	RefuseMidBatch bool `env:"REFUSE_MID_BATCH"`
	// StockAck makes the forwarder use watermill-sql v4.1.2's own
	// MySQLQueueOffsetsAdapter{DeleteOnAck: true}, which deletes the rows of a
	// batch behind one Kafka refused (ADR 3). Negative control only: it loses events.
	StockAck bool `env:"STOCK_ACK"`
	// DisableInbox runs the consumer without the inbox: every delivery of a
	// message has its effect again. Negative control, and end-to-end tests that
	// isolate the aggregate-version check, only.
	DisableInbox bool `env:"DISABLE_INBOX"`
}

// IsZero reports whether every switch is off.
func (c FaultConfig) IsZero() bool { return c == FaultConfig{} }

// FaultsBuilt reports whether this binary was built with `-tags faults`, i.e.
// whether it acts on FaultConfig. Services use it to reject their own fault
// switches in other builds.
func FaultsBuilt() bool { return faultsBuilt }

// errFaultsNotBuilt is Config.Validate's answer to a fault switch in a binary
// built without the faults tag.
const errFaultsNotBuilt = "fault-injection switches (*_FAULT_*) are set, but this binary was built without " +
	"`-tags faults`: they exist only for the fault-injection suite; unset them"
