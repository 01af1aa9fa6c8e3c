package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Jobs runs periodic jobs of a service (payment timeouts, key cleanup,
// retention): each on its own ticker, in its own goroutine. Register with
// Every, then Run.
type Jobs struct {
	logger *slog.Logger
	jobs   []job
}

type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

// New returns an empty set of jobs that logs failures to logger.
func New(logger *slog.Logger) *Jobs { return &Jobs{logger: logger} }

// Logger is the logger the jobs log to.
func (j *Jobs) Logger() *slog.Logger { return j.logger }

// Every registers a job that Run runs every interval (the first time one
// interval after Run starts) until Run's context ends. A failing run is logged
// and the job runs again at the next tick; runs of one job never overlap.
// Call before Run.
func (j *Jobs) Every(name string, interval time.Duration, run func(ctx context.Context) error) {
	j.jobs = append(j.jobs, job{name: name, every: interval, run: run})
}

// Run runs every job until ctx ends, then waits for the runs in progress (they
// get the ended ctx) and returns.
func (j *Jobs) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, jb := range j.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.runJob(ctx, jb)
		}()
	}
	wg.Wait()
}

func (j *Jobs) runJob(ctx context.Context, jb job) {
	t := time.NewTicker(jb.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := jb.run(ctx); err != nil && ctx.Err() == nil {
				j.logger.Warn("periodic job failed", "job", jb.name, "err", err)
			}
		}
	}
}
