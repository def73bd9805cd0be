package leader

import (
	"context"
	"fmt"
)

// Leadership is the part of the election the hub's controllers need
// (*Elector has it; Sole is a hub that leads alone).
type Leadership interface {
	IsLeader() bool
	// Fence fails inside a transaction when this hub's term is over, so a
	// paused-then-resumed old leader cannot write.
	Fence(ctx context.Context, tx Querier) error
	// Epoch is the leader epoch of this hub's term while it leads, else 0.
	Epoch() int64
	// Changes signals gains and losses; nil when there is no election.
	Changes() <-chan struct{}
}

// Sole is the leadership of a hub without election: it always leads.
type Sole struct{}

// IsLeader is always true.
func (Sole) IsLeader() bool { return true }

// Fence never fails.
func (Sole) Fence(context.Context, Querier) error { return nil }

// Epoch is 0: there are no terms.
func (Sole) Epoch() int64 { return 0 }

// Changes is nil: nothing changes.
func (Sole) Changes() <-chan struct{} { return nil }

// Audited is a hub's leadership as its controllers use it: its Fence also
// records, in the audit rows of the fenced transaction, which hub wrote
// under which leader epoch, so the audit log shows that no write of an old
// term lands after a takeover.
type Audited struct {
	Leadership
	Hub string
}

// auditor is the part of a store transaction Audited needs
// (*pgstore.Tx has it).
type auditor interface{ AuditOn(on string) }

// Fence checks the term inside tx and attributes tx's audit rows to it.
func (a Audited) Fence(ctx context.Context, tx Querier) error {
	if err := a.Leadership.Fence(ctx, tx); err != nil {
		return err
	}
	if at, ok := tx.(auditor); ok {
		if epoch := a.Epoch(); epoch > 0 {
			at.AuditOn(TermDetail(a.Hub, epoch))
		}
	}
	return nil
}

// Elected says whether this hub takes part in an election rather than
// leading alone.
func (a Audited) Elected() bool { return a.Changes() != nil }

// IsSole says whether l is the leadership of a hub without election.
func IsSole(l Leadership) bool {
	if a, ok := l.(Audited); ok {
		l = a.Leadership
	}
	_, sole := l.(Sole)
	return sole
}

// TermDetail is how audit rows name a leader term.
func TermDetail(hub string, epoch int64) string {
	return fmt.Sprintf("leader %s epoch %d", hub, epoch)
}
