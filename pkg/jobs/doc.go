// Package jobs runs a service's periodic jobs (payment timeouts, key cleanup,
// retention, metrics samples): each on its own ticker, in its own goroutine.
//
// Guarantees: runs of one job never overlap; Run returns only after every
// run in progress returned. Needs: the standard library. Fails: a failing run
// is logged and the job runs again at its next tick.
package jobs
