package leader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// lockKey is the session advisory lock that makes a hub leader. It differs
// from pgstore's transaction-scoped write lock (0x61746f6c6c).
const lockKey int64 = 0x61746f6c6c4c45 // "atollLE"

// maxAppName is the longest application_name PostgreSQL keeps (NAMEDATALEN
// - 1); Hubs reads holders from it.
const maxAppName = 63

// ErrNotLeader is returned by Fence and CheckEpoch when this hub's term is
// over (or never began): a newer leader may be writing.
var ErrNotLeader = errors.New("not the leader")

// Config configures an Elector.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string for the elector's
	// dedicated connection. It must reach PostgreSQL directly, not through
	// a transaction pooler. Required.
	DatabaseURL string
	// HolderID names this hub in leader_epoch.holder, in logs and in the
	// application_name of its elector's connection (so at most 50 bytes);
	// empty means "<hostname>/<pid>" (the host name shortened to fit).
	HolderID string
	// Logger receives leadership changes; nil discards them.
	Logger *slog.Logger
	// Now is the clock for the elector's own heartbeat age; nil means
	// time.Now. Lease ages in the database use the database clock.
	Now func() time.Time
	// RetryEvery is how often a follower campaigns and a leader refreshes
	// its heartbeat; it also bounds each heartbeat. 0 means 1 s.
	RetryEvery time.Duration
	// Lease is how old the leader's heartbeat may grow before a follower
	// terminates its session and takes over. 0 means 3 s; it must be at
	// least twice RetryEvery.
	Lease time.Duration
}

// Querier is what CheckEpoch needs: pgx.Tx has it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Elector campaigns for leadership and holds it. Start runs it in the
// background; RunOnce runs one round.
type Elector struct {
	connCfg *pgx.ConnConfig
	holder  string
	log     *slog.Logger
	now     func() time.Time
	every   time.Duration
	lease   time.Duration

	runMu sync.Mutex // serialises rounds; guards conn
	conn  *pgx.Conn

	mu       sync.Mutex // guards the fields below
	leader   bool
	epoch    int64
	lastBeat time.Time // last successful acquire or heartbeat, on e.now
	cancel   context.CancelFunc
	done     chan struct{}
	stopped  bool

	changes  chan struct{}
	stopOnce sync.Once

	// pauseHeartbeat makes a leader skip its rounds, as if its process were
	// stopped (tests only).
	pauseHeartbeat atomic.Bool
}

// New validates cfg and returns an Elector; it connects nothing until the
// first round.
func New(cfg Config) (*Elector, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("new elector: no database url")
	}
	cc, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, errors.New("new elector: parse database url: invalid connection string") // the error may quote the password
	}
	e := &Elector{
		connCfg: cc,
		holder:  cfg.HolderID,
		log:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		now:     cfg.Now,
		every:   cmp.Or(cfg.RetryEvery, time.Second),
		lease:   cmp.Or(cfg.Lease, 3*time.Second),
		changes: make(chan struct{}, 1),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.holder == "" {
		host, _ := os.Hostname()
		pid := "/" + strconv.Itoa(os.Getpid())
		e.holder = host[:min(len(host), maxAppName-len(appPrefix)-len(pid))] + pid
	}
	if len(appPrefix)+len(e.holder) > maxAppName {
		return nil, fmt.Errorf("new elector: holder %q is longer than %d bytes", e.holder, maxAppName-len(appPrefix))
	}
	if e.every < 0 || e.lease < 2*e.every {
		return nil, fmt.Errorf("new elector: lease %v must be at least twice the retry interval %v", e.lease, e.every)
	}

	// A dead peer must be noticed in seconds on both ends: the client by
	// keepalives here (and by the heartbeat's timeout), the server by its
	// own keepalive settings, so that it frees the lock of a vanished host.
	cc.ConnectTimeout = e.lease
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: e.lease, Interval: e.every, Count: 3}}
	cc.DialFunc = dialer.DialContext
	secs := func(d time.Duration) string { return strconv.Itoa(max(1, int(d/time.Second))) }
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["tcp_keepalives_idle"] = secs(e.lease)
	cc.RuntimeParams["tcp_keepalives_interval"] = secs(e.every)
	cc.RuntimeParams["tcp_keepalives_count"] = "3"
	// Hubs finds the electors by this name, whatever the URL says.
	cc.RuntimeParams["application_name"] = appPrefix + e.holder
	return e, nil
}

// Holder is the name this elector records when it leads.
func (e *Elector) Holder() string { return e.holder }

// IsLeader reports whether this hub leads now: it won the lock, and its
// last heartbeat is younger than the lease on its own clock.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading()
}

// leading is IsLeader with e.mu held.
func (e *Elector) leading() bool {
	return e.leader && e.now().Sub(e.lastBeat) < e.lease
}

// Epoch is the epoch of the current term while this hub leads, else 0.
func (e *Elector) Epoch() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading() {
		return 0
	}
	return e.epoch
}

// Changes receives a value (coalesced) after this hub gains or loses
// leadership; read IsLeader and Epoch for the new state.
func (e *Elector) Changes() <-chan struct{} { return e.changes }

// Fence fails with ErrNotLeader unless this hub leads and the database's
// epoch is still this hub's. Call it inside the transaction of every
// leader-only write; the check holds until that transaction ends.
func (e *Elector) Fence(ctx context.Context, tx Querier) error {
	e.mu.Lock()
	leader, epoch := e.leading(), e.epoch
	e.mu.Unlock()
	if !leader {
		return fmt.Errorf("fence: %w", ErrNotLeader)
	}
	return CheckEpoch(ctx, tx, epoch)
}

// CheckEpoch fails with ErrNotLeader unless epoch is the current leader
// epoch. Call it inside a transaction: it locks the epoch row FOR KEY
// SHARE, so no takeover can commit before the transaction ends. A
// controller that captured Epoch when its work began passes that value.
func CheckEpoch(ctx context.Context, tx Querier, epoch int64) error {
	var current int64
	if err := tx.QueryRow(ctx, `SELECT epoch FROM leader_epoch WHERE id = 1 FOR KEY SHARE`).Scan(&current); err != nil {
		return fmt.Errorf("check leader epoch: %w", err)
	}
	if epoch == 0 || current != epoch {
		return fmt.Errorf("check leader epoch: held %d, current %d: %w", epoch, current, ErrNotLeader)
	}
	return nil
}

// Start campaigns and holds leadership in the background until Stop or ctx
// ends. Later calls, and calls after Stop, do nothing.
func (e *Elector) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e.mu.Lock()
	if e.cancel != nil || e.stopped {
		e.mu.Unlock()
		cancel()
		return
	}
	e.cancel, e.done = cancel, done
	e.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(e.every)
		defer t.Stop()
		failing := false
		for {
			_, err := e.RunOnce(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing:
				e.log.WarnContext(ctx, "leader election round failed", "holder", e.holder, "err", err)
			case err != nil:
				e.log.DebugContext(ctx, "leader election round failed", "holder", e.holder, "err", err)
			}
			failing = err != nil
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the background loop and closes the dedicated connection, which
// frees the lock at once for another hub. It is safe to call twice, and
// without Start; the Elector cannot be started again.
func (e *Elector) Stop() {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		cancel, done := e.cancel, e.done
		e.stopped = true
		e.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
		e.runMu.Lock()
		defer e.runMu.Unlock()
		if e.conn != nil {
			// Closing the connection frees the lock only once the server
			// has ended the session; unlocking first hands over at once.
			ctx, cancel := context.WithTimeout(context.Background(), e.every)
			_, _ = e.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
			cancel()
		}
		e.closeConn(context.Background(), "stopped", nil)
	})
}

// RunOnce runs one round: a leader refreshes its heartbeat, a follower
// campaigns (taking over from a leader whose lease ran out). It reports
// whether this hub leads after the round. After Stop it fails.
func (e *Elector) RunOnce(ctx context.Context) (bool, error) {
	e.runMu.Lock()
	defer e.runMu.Unlock()

	e.mu.Lock()
	leader, epoch, stopped := e.leader, e.epoch, e.stopped
	e.mu.Unlock()
	if stopped {
		return false, errors.New("elector stopped")
	}
	if leader {
		if e.pauseHeartbeat.Load() {
			return true, nil
		}
		if err := e.heartbeat(ctx, epoch); err != nil {
			e.closeConn(ctx, "heartbeat failed", err)
			return false, fmt.Errorf("leader heartbeat: %w", err)
		}
		return true, nil
	}

	if e.conn == nil {
		cctx, cancel := context.WithTimeout(ctx, e.lease)
		conn, err := pgx.ConnectConfig(cctx, e.connCfg)
		cancel()
		if err != nil {
			return false, fmt.Errorf("campaign: connect: %w", err)
		}
		e.conn = conn
	}
	won, err := e.campaign(ctx)
	if err != nil {
		e.closeConn(ctx, "campaign failed", err)
		return false, fmt.Errorf("campaign: %w", err)
	}
	return won, nil
}

// heartbeat proves the session (and so the lock) is alive and the epoch is
// still ours.
func (e *Elector) heartbeat(ctx context.Context, epoch int64) error {
	ctx, cancel := context.WithTimeout(ctx, e.every)
	defer cancel()
	tag, err := e.conn.Exec(ctx, `UPDATE leader_epoch SET heartbeat_at = now()
		WHERE id = 1 AND epoch = $1 AND pid = pg_backend_pid()`, epoch)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("epoch %d was superseded", epoch)
	}
	e.mu.Lock()
	e.lastBeat = e.now()
	e.mu.Unlock()
	return nil
}

// campaign tries the lock, terminating a holder whose lease ran out, and
// on success starts a new term.
func (e *Elector) campaign(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.lease)
	defer cancel()
	won, err := e.tryLock(ctx)
	if err != nil {
		return false, err
	}
	if !won {
		// Terminate the lock's holder only if it is the backend the row
		// names: a leader that has just won but not yet written its row
		// has a fresh pid and is left alone.
		var holder string
		var pid int32
		err := e.conn.QueryRow(ctx, `
			SELECT l.holder, l.pid, pg_terminate_backend(l.pid, $4)
			FROM leader_epoch l
			JOIN pg_locks k ON k.pid = l.pid
			WHERE l.id = 1 AND l.heartbeat_at < now() - make_interval(secs => $1)
			  AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
			  AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND k.classid::bigint = $2 AND k.objid::bigint = $3`,
			e.lease.Seconds(), lockKey>>32, lockKey&0xffffffff, e.every.Milliseconds()).Scan(&holder, &pid, new(bool))
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("take over a stale leader: %w", err)
		}
		e.log.WarnContext(ctx, "terminated the session of a leader whose lease ran out", "holder", e.holder, "stale_leader", holder, "pid", pid, "lease", e.lease)
		if won, err = e.tryLock(ctx); err != nil || !won {
			return false, err
		}
	}

	epoch, err := e.bump(ctx)
	if errors.Is(err, errEpochRowBusy) {
		// A fenced transaction of the previous term holds the row and its
		// hub is not running it (paused or cut off mid-transaction): it
		// would hold off the takeover for as long as its session lives.
		// End it (it rolls back; nothing it wrote commits) and try again.
		if err = e.endStuckTransactions(ctx); err == nil {
			epoch, err = e.bump(ctx)
		}
	}
	if err != nil {
		return false, fmt.Errorf("bump leader epoch: %w", err)
	}
	e.setLeader(true, epoch)
	e.log.InfoContext(ctx, "became leader", "holder", e.holder, "epoch", epoch)
	return true, nil
}

// lockNotAvailable is PostgreSQL's SQLSTATE for a lock_timeout.
const lockNotAvailable = "55P03"

// errEpochRowBusy is bump's error when another session held the epoch row
// for longer than RetryEvery.
var errEpochRowBusy = errors.New("the leader_epoch row is locked by another session")

// bump starts a new term: the row lock waits for the old leader's fenced
// transactions in flight to end, for at most RetryEvery.
func (e *Elector) bump(ctx context.Context) (int64, error) {
	var epoch int64
	err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, strconv.FormatInt(e.every.Milliseconds(), 10)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM leader_epoch WHERE id = 1 FOR UPDATE`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE leader_epoch
			SET epoch = epoch + 1, holder = $1, pid = pg_backend_pid(), acquired_at = now(), heartbeat_at = now()
			WHERE id = 1 RETURNING epoch`, e.holder).Scan(&epoch)
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable {
		return 0, errEpochRowBusy
	}
	return epoch, err
}

// endStuckTransactions terminates the sessions that hold a lock on the
// epoch row while sitting idle in a transaction: fenced transactions of
// the previous term whose process stopped between two statements. The
// caller holds the advisory lock, so no other hub leads; a transaction that
// is still running is left to finish.
func (e *Elector) endStuckTransactions(ctx context.Context) error {
	rows, err := e.conn.Query(ctx, `
		SELECT a.pid, a.application_name, pg_terminate_backend(a.pid, $1)
		FROM pg_stat_activity a
		WHERE a.pid <> pg_backend_pid()
		  AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
		  AND a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.relation = 'leader_epoch'::regclass AND l.granted)`,
		e.every.Milliseconds())
	if err != nil {
		return fmt.Errorf("end stuck transactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int32
		var app string
		if err := rows.Scan(&pid, &app, new(bool)); err != nil {
			return fmt.Errorf("end stuck transactions: %w", err)
		}
		e.log.WarnContext(ctx, "terminated a stuck transaction of the previous leader term", "holder", e.holder, "pid", pid, "application", app)
	}
	return rows.Err()
}

func (e *Elector) tryLock(ctx context.Context) (bool, error) {
	var won bool
	if err := e.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&won); err != nil {
		return false, fmt.Errorf("try lock: %w", err)
	}
	return won, nil
}

// closeConn drops the dedicated connection, and with it the lock and any
// leadership. The caller holds runMu.
func (e *Elector) closeConn(ctx context.Context, why string, err error) {
	if e.conn != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = e.conn.Close(cctx)
		cancel()
		e.conn = nil
	}
	e.mu.Lock()
	was, epoch := e.leader, e.epoch
	e.mu.Unlock()
	if !was {
		return
	}
	e.setLeader(false, 0)
	if err == nil || errors.Is(err, context.Canceled) {
		e.log.InfoContext(ctx, "gave up leadership", "holder", e.holder, "epoch", epoch, "reason", why)
		return
	}
	e.log.WarnContext(ctx, "lost leadership", "holder", e.holder, "epoch", epoch, "reason", why, "err", err)
}

func (e *Elector) setLeader(leader bool, epoch int64) {
	e.mu.Lock()
	changed := e.leader != leader || e.epoch != epoch
	e.leader, e.epoch = leader, epoch
	if leader {
		e.lastBeat = e.now()
	}
	e.mu.Unlock()
	if changed {
		select {
		case e.changes <- struct{}{}:
		default:
		}
	}
}
