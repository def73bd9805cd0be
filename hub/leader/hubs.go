package leader

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// appPrefix starts the application_name of every elector's dedicated
// connection; the rest is its holder.
const appPrefix = "atoll-leader "

// Term is the leader's record in the database.
type Term struct {
	Epoch       int64
	Holder      string // empty before any hub led
	AcquiredAt  time.Time
	HeartbeatAt time.Time
	// HeartbeatAge is how old HeartbeatAt is, on the database clock.
	HeartbeatAge time.Duration
}

// Candidate is a hub whose elector is connected now: the leader and every
// follower campaigning.
type Candidate struct {
	Holder string
	// ConnectedAt and Address are those of the elector's connection; zero
	// when the database does not show them to this role.
	ConnectedAt time.Time
	Address     string
}

// Rows is what Hubs needs: pgxpool.Pool, pgx.Conn and pgx.Tx have it.
type Rows interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Hubs reads the current term and the hubs whose electors are connected,
// sorted by holder: the hubs sharing the database, as PostgreSQL sees them.
func Hubs(ctx context.Context, db Rows) (Term, []Candidate, error) {
	var term Term
	rows, err := db.Query(ctx, `SELECT epoch, holder, acquired_at, heartbeat_at, extract(epoch FROM now() - heartbeat_at)
		FROM leader_epoch WHERE id = 1`)
	if err != nil {
		return term, nil, fmt.Errorf("read leader term: %w", err)
	}
	term, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (Term, error) {
		var t Term
		var age float64
		err := r.Scan(&t.Epoch, &t.Holder, &t.AcquiredAt, &t.HeartbeatAt, &age)
		t.HeartbeatAge = time.Duration(age * float64(time.Second))
		return t, err
	})
	if err != nil {
		return term, nil, fmt.Errorf("read leader term: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT application_name, backend_start, coalesce(host(client_addr), '')
		FROM pg_stat_activity
		WHERE datname = current_database() AND starts_with(application_name, $1)
		ORDER BY application_name`, appPrefix)
	if err != nil {
		return term, nil, fmt.Errorf("list hubs: %w", err)
	}
	hubs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Candidate, error) {
		var c Candidate
		var app string
		var at *time.Time
		err := r.Scan(&app, &at, &c.Address)
		c.Holder = strings.TrimPrefix(app, appPrefix)
		if at != nil {
			c.ConnectedAt = *at
		}
		return c, err
	})
	if err != nil {
		return term, nil, fmt.Errorf("list hubs: %w", err)
	}
	return term, hubs, nil
}
