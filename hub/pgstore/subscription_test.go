package pgstore

import "testing"

// TestSubscriptionPassed: a subscription reports the highest horizon its
// wake-ups passed, and 0 once after a wake-up that knew none (a
// reconnect), so that its reader then reads the log afresh.
func TestSubscriptionPassed(t *testing.T) {
	t.Parallel()
	n := (&Store{}).NewNotifier(nil)
	sub := n.SubscribeChanges("Workload")
	defer sub.Close()
	if n.Subscribers() != 1 {
		t.Fatalf("want one subscriber; got %d", n.Subscribers())
	}
	n.wake("Workload", 300)
	n.wake("Workload", 200) // an older horizon never lowers it
	n.wake("Cluster", 900)  // another kind's
	if got := sub.Passed(); got != 300 {
		t.Errorf("want passed 300; got %d", got)
	}
	select {
	case <-sub.C:
	default:
		t.Error("want a wake-up signalled")
	}
	n.wake("", 0)
	if got := sub.Passed(); got != 0 {
		t.Errorf("after a wake-up with no horizon: want 0 (read afresh); got %d", got)
	}
	if got := sub.Passed(); got != 300 {
		t.Errorf("once read afresh: want passed 300 again; got %d", got)
	}
	sub.Close()
	if n.Subscribers() != 0 {
		t.Errorf("want no subscriber after Close; got %d", n.Subscribers())
	}
}
