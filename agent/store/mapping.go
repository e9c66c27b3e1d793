package store

import (
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mappedDB is bbolt's DB with its map released after writes (see
// ReleaseMap): a write reads the pages on its path through the map, and
// the kernel maps their neighbours with them, so without this every
// commit would leave up to a megabyte of the file counted in the RSS.
type mappedDB struct {
	*bolt.DB
	last atomic.Int64 // when the map was last released, ns since mapEpoch
}

// releaseEvery spaces the releases under a burst of writes; at a
// gateway's few SMS a minute every write is followed by one.
const releaseEvery = time.Second

// mapEpoch is the monotonic origin of mappedDB.last.
var mapEpoch = time.Now()

// Update runs fn in a read-write transaction, as bbolt's does, then
// releases the map unless that was done within releaseEvery.
func (d *mappedDB) Update(fn func(*bolt.Tx) error) error {
	err := d.DB.Update(fn)
	now := int64(time.Since(mapEpoch))
	if last := d.last.Load(); now-last >= int64(releaseEvery) && d.last.CompareAndSwap(last, now) {
		_ = d.release()
	}
	return err
}
