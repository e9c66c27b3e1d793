package agent

import (
	"context"
	"time"
)

// Housekeeping periods. The trim is cheap (one collection, a madvise, and
// the minor faults that map back what is still in use) and keeps the
// resident size at what a minute of work touches; pruning walks the
// oldest records only and their retention is counted in days.
const (
	trimEvery  = time.Minute
	pruneEvery = time.Hour
)

// runHousekeeping forgets finished records past their retention and gives
// back memory the daemon no longer uses: the store's map, and through
// Options.Trim what the process holds.
func (d *daemon) runHousekeeping(ctx context.Context) {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	d.housekeep(true)
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prune := time.Since(lastPrune) >= pruneEvery
		if prune {
			lastPrune = time.Now()
		}
		d.housekeep(prune)
	}
}

// housekeep is one round: the prune when due, then the releases.
func (d *daemon) housekeep(prune bool) {
	if prune {
		r, err := d.st.Prune(d.now())
		switch {
		case err != nil:
			d.setErr(err)
			d.log.Error("agent: pruning the store", "err", err)
		case r.DedupeIDs > 0 || r.Outbox > 0:
			d.log.Info("agent: store pruned", "mt_ids", r.DedupeIDs, "mo_finished", r.Outbox)
		}
	}
	if err := d.st.ReleaseMap(); err != nil {
		d.log.Warn("agent: releasing the store's map", "err", err)
	}
	if d.o.Trim != nil {
		d.o.Trim()
	}
}
