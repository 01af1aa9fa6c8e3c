// Package strategies maps the names of the failure strategies a service's
// environment gives (FAILURE_MODE, FAILURE_MODES) to the strategies of the
// consumer stack, and builds them. It imports every strategy package; a
// service that wants one strategy only imports that package instead.
package strategies
