package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// Progress is one look at a workload's rollout.
type Progress struct {
	// Message says where the rollout is, as one line.
	Message string
	// Done: every cluster runs the current template, and every desired
	// replica is ready.
	Done bool
	// Stalled is why the rollout cannot progress (a cluster's
	// Progressing=False), or "".
	Stalled string
}

// Evaluate reads a workload's status the way `kubectl rollout status`
// reads a Deployment's: first every cluster must have seen the current
// generation, then have replaced its old replicas, then have every
// desired replica ready.
func Evaluate(w api.Workload) Progress {
	name, st := w.Metadata.Name, w.Status
	// A progressive rollout under way says where it is first: its
	// clusters run different revisions by design until it completes.
	if r := st.Rollout; r != nil && w.Spec.Rollout != nil {
		switch r.Phase {
		case api.RolloutRolledBack:
			msg := fmt.Sprintf("workload %q rollout of revision %d rolled back to %d: %s", name, r.Revision, r.StableRevision, r.Message)
			return Progress{Message: msg, Stalled: msg}
		case api.RolloutCompleted:
		default:
			return Progress{Message: fmt.Sprintf("Waiting for workload %q rollout to finish: revision %d, wave %s, %s: %s...", name, r.Revision, r.WaveName, r.Phase, r.Message)}
		}
	}
	var stalled []string
	var desired, updated, scheduled, ready int32
	var behind, pendingReport, lagging []string
	reporting := map[string]bool{}
	for _, c := range st.Clusters {
		if unreachable(c) {
			continue // the hub counts it for nothing; its share moves
		}
		reporting[c.Cluster] = true
		if gen := w.GivenGeneration(c.Cluster); c.Generation < gen {
			behind = append(behind, c.Cluster)
			continue
		}
		for _, cond := range c.Conditions {
			if cond.Type == "Progressing" && cond.Status == "False" {
				stalled = append(stalled, fmt.Sprintf("cluster %s: %s (%s)", c.Cluster, cond.Message, cond.Reason))
			}
		}
		if c.Updated < c.Desired || c.Scheduled > c.Updated || c.Ready < c.Desired {
			lag := fmt.Sprintf("%s: %d/%d updated", c.Cluster, c.Updated, c.Desired)
			if c.Scheduled > c.Updated {
				lag += fmt.Sprintf(", %d old", c.Scheduled-c.Updated)
			}
			if c.Ready < c.Desired {
				lag += fmt.Sprintf(", %d ready", c.Ready)
			}
			lagging = append(lagging, lag)
		}
		desired += c.Desired
		updated += c.Updated
		scheduled += c.Scheduled
		ready += c.Ready
	}
	if p := st.Placement; p != nil {
		for c, n := range p.Clusters {
			if n > 0 && !reporting[c] {
				pendingReport = append(pendingReport, c)
			}
		}
	}
	sort.Strings(behind)
	sort.Strings(lagging)
	// Which clusters hold the rollout up, and how.
	in := ""
	if len(lagging) > 0 && len(reporting) > 1 {
		in = " (" + strings.Join(lagging, "; ") + ")"
	}
	sort.Strings(pendingReport)
	wait := fmt.Sprintf("Waiting for workload %q rollout to finish: ", name)
	switch {
	case len(stalled) > 0:
		msg := fmt.Sprintf("workload %q rollout stalled: %s", name, strings.Join(stalled, "; "))
		return Progress{Message: msg, Stalled: msg}
	case st.Placement == nil || st.Placement.Epoch == 0:
		return Progress{Message: wait + "the hub has not placed it yet..."}
	case len(behind) > 0:
		verb := " is"
		if len(behind) > 1 {
			verb = " are"
		}
		return Progress{Message: wait + fmt.Sprintf("%s%s not yet on generation %d...", clusterList(behind), verb, w.Metadata.Generation)}
	case len(pendingReport) > 0:
		return Progress{Message: wait + fmt.Sprintf("waiting for %s to report...", clusterList(pendingReport))}
	case st.Placement.Unplaced > 0:
		return Progress{Message: wait + fmt.Sprintf("%d replicas could not be placed (%s)...", st.Placement.Unplaced, st.Placement.Reason)}
	case updated < desired:
		return Progress{Message: wait + fmt.Sprintf("%d out of %d new replicas have been updated...%s", updated, desired, in)}
	case scheduled > updated:
		return Progress{Message: wait + fmt.Sprintf("%d old replicas are pending termination...%s", scheduled-updated, in)}
	case ready < desired:
		return Progress{Message: wait + fmt.Sprintf("%d of %d updated replicas are available...%s", ready, desired, in)}
	}
	return Progress{Message: fmt.Sprintf("workload %q successfully rolled out", name), Done: true}
}

func unreachable(c api.ClusterReplicas) bool {
	for _, cond := range c.Conditions {
		if cond.Type == "Reporting" && cond.Status == "False" {
			return true
		}
	}
	return false
}

func clusterList(cs []string) string {
	if len(cs) == 1 {
		return "cluster " + cs[0]
	}
	return "clusters " + strings.Join(cs, ", ")
}

// StatusOptions tune Status.
type StatusOptions struct {
	// Watch follows the rollout until it is done; false: one look.
	Watch bool
	// Timeout ends the following with an error; 0 means none.
	Timeout time.Duration
	// Every is how often the workload is read again; 0 means 1s.
	Every time.Duration
}

// ErrStalled is in the chain of Status's error when the rollout stalled.
var ErrStalled = errors.New("rollout stalled")

// Status prints the rollout's progress to out, one line each time it
// changes, until it is done (nil), stalls (an error wrapping ErrStalled
// with the clusters' reasons) or times out.
func Status(ctx context.Context, c *client.Client, name string, out io.Writer, o StatusOptions) error {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	last := ""
	for {
		var w api.Workload
		err := c.Get(ctx, plural, name, &w)
		if err != nil && ctx.Err() == nil && api.ErrorCode(err) != api.CodeUnavailable {
			return err // a 503 (the database restarting, say) is asked again
		}
		if err == nil {
			p := Evaluate(w)
			switch {
			case p.Stalled != "":
				return fmt.Errorf("%w: %s", ErrStalled, p.Stalled)
			case p.Message != last:
				fmt.Fprintln(out, p.Message)
				last = p.Message
			}
			if p.Done || !o.Watch {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if o.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for workload %q to roll out; last: %s", o.Timeout, name, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
