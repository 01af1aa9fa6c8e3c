// Package causation links an event to the message that caused it: a consumer
// stack counts the attempts of each delivery (WithAttemptCounter, NextAttempt),
// the inbox records which message and attempt a handler runs for (WithCause),
// and the outbox stamps that on every event the handler writes (Stamp). Tools
// (the order timeline) read MetadataCausationID and MetadataCausationAttempts
// to tell what caused an event and how hard it was to process.
//
// Guarantees: Stamp writes both keys or neither; an event written outside a
// handler carries neither. Needs: Watermill's message type only. Fails: never.
package causation
