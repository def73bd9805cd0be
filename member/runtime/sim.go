package runtime

import (
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// simRand is a replica's random source for simulated failures: seeded by
// its ID, so a run is reproducible.
func simRand(id string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(id))
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// startSimLocked "starts" a simulated replica: Starting for its start
// latency, settled by settleSimLocked. No goroutine, no timer: the replica
// sits in the due queue.
func (r *Runtime) startSimLocked(rep *replica, now time.Time) {
	if rep.launched {
		rep.st.Restarts++
	}
	rep.launched = true
	rep.st.Phase, rep.st.Ready, rep.st.StartedAt, rep.st.Message = PhaseStarting, false, now, ""
	var latency time.Duration
	if s := rep.spec.Template.Sim; s != nil {
		latency = max(s.StartLatency.Get(0), 0)
	}
	r.schedule(rep, now.Add(latency))
}

// settleSimLocked ends a simulated start: it fails with the template's
// failure rate (then the restart policy and backoff apply, as for a
// process), or the replica is Running and Ready.
func (r *Runtime) settleSimLocked(rep *replica, now time.Time) {
	rate := 0.0
	if s := rep.spec.Template.Sim; s != nil {
		rate = s.FailureRate
	}
	if rate > 0 && rep.rng.Float64() < rate {
		rep.st.FinishedAt, rep.st.ExitCode = now, 1
		r.afterRunLocked(rep, now, true, "simulated start failure")
		return
	}
	rep.st.Phase, rep.st.Ready, rep.st.Message = PhaseRunning, true, ""
}
