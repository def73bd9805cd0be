package protocol

import (
	"encoding/binary"
	"hash/maphash"
	"time"

	"github.com/atollhq/atoll/api"
)

// Hash writes what the status says into h: two statuses Equal calls the
// same write the same (times as instants, an empty map or list as none).
// A hub keeps a status's hash, not the status, to tell a report that
// changed from one that did not: by hand, like Equal, and the same test
// checks it looks at every field.
func (s *WorkloadStatus) Hash(h *maphash.Hash) {
	hashString(h, s.Workload)
	hashInts(h, s.Epoch, s.Generation, int64(s.Desired), int64(s.Scheduled), int64(s.Running), int64(s.Present), int64(s.Ready),
		int64(s.Updated), int64(s.Restarts), int64(s.UpdatedReady), int64(s.UpdatedRestarts))
	hashString(h, s.Pending)
	hashString(h, s.Data)
	// A map's entries in any order: their hashes summed.
	var states uint64
	for k, v := range s.States {
		states += maphash.Comparable(h.Seed(), stateCount{k, v})
	}
	hashInts(h, int64(len(s.States)), int64(states))
	hashInts(h, int64(len(s.Conditions)))
	for i := range s.Conditions {
		hashCondition(h, &s.Conditions[i])
	}
	hashInts(h, int64(len(s.Examples)))
	for i := range s.Examples {
		e := &s.Examples[i]
		hashString(h, e.Replica)
		hashString(h, e.Workload)
		hashString(h, e.Node)
		hashString(h, e.State)
		hashString(h, e.Reason)
		hashString(h, e.Message)
		code := int64(-1 << 40) // none: not an exit code
		if e.ExitCode != nil {
			code = int64(*e.ExitCode)
		}
		hashInts(h, int64(e.Restarts), code)
		hashTime(h, e.StartedAt)
		hashTime(h, e.NextStartAt)
	}
	hashInts(h, int64(len(s.Problems)))
	for _, p := range s.Problems {
		hashString(h, p.Reason)
		hashString(h, p.Replica)
		hashString(h, p.Node)
		hashString(h, p.Message)
		hashInts(h, int64(p.Replicas), int64(p.Restarts))
	}
}

type stateCount struct {
	state string
	n     int32
}

func hashCondition(h *maphash.Hash, c *api.Condition) {
	hashString(h, c.Type)
	hashString(h, c.Status)
	hashString(h, c.Reason)
	hashString(h, c.Message)
	if c.LastTransitionTime == nil {
		hashInts(h, 0)
		return
	}
	hashInts(h, 1)
	hashTime(h, *c.LastTransitionTime)
}

// hashString writes s with its length (so "ab","c" and "a","bc" differ).
func hashString(h *maphash.Hash, s string) {
	hashInts(h, int64(len(s)))
	_, _ = h.WriteString(s)
}

func hashInts(h *maphash.Hash, vs ...int64) {
	var b [8]byte
	for _, v := range vs {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		_, _ = h.Write(b[:])
	}
}

// hashTime writes an instant (the zero time apart: as JSON leaves it out).
func hashTime(h *maphash.Hash, t time.Time) {
	if t.IsZero() {
		hashInts(h, 0, 0)
		return
	}
	hashInts(h, 1, t.UnixNano())
}
