package hub_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgDiag measures where one phase of BenchmarkCreatesVsPgbench spends its
// time (ATOLL_BENCH_DIAG=1): PostgreSQL's wait events sampled every 10 ms
// in the phase's database, the WAL it wrote, and the CPU of PostgreSQL's
// processes and of this process, so that each can be put per transaction.
type pgDiag struct {
	conn    *pgx.Conn
	db      string
	stop    chan struct{}
	done    sync.WaitGroup
	waits   map[string]int
	samples int
	lsn0    string
	pgCPU0  float64
	goCPU0  float64
	stats0  [6]float64
	start   time.Time
}

// dbStats reads the database's commits and rows read and written (as
// PostgreSQL last flushed its statistics: within a second).
func (d *pgDiag) dbStats(tb testing.TB) (v [6]float64) {
	err := d.conn.QueryRow(context.Background(), `SELECT xact_commit, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = $1`, d.db).
		Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5])
	if err != nil {
		tb.Fatalf("diag: %v", err)
	}
	return v
}

// startPgDiag begins sampling the database db (by name) through adminURL.
func startPgDiag(tb testing.TB, adminURL, db string) *pgDiag {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		tb.Fatalf("diag: %v", err)
	}
	d := &pgDiag{conn: conn, db: db, stop: make(chan struct{}), waits: map[string]int{}}
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&d.lsn0); err != nil {
		tb.Fatalf("diag: %v", err)
	}
	d.pgCPU0, d.goCPU0 = d.postgresCPU(tb), selfCPU()
	d.stats0 = d.dbStats(tb)
	d.start = time.Now()
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, '') FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, db)
			if err != nil {
				return
			}
			for rows.Next() {
				var state, typ, ev string
				if rows.Scan(&state, &typ, &ev) == nil {
					key := state
					if typ != "" {
						key += " " + typ + ":" + ev
					} else if state == "active" {
						key += " (on CPU)"
					}
					d.waits[key]++
				}
			}
			rows.Close()
			d.samples++
		}
	}()
	return d
}

// end stops sampling and logs the phase's figures for n transactions;
// it returns the CPU seconds per transaction of PostgreSQL and of this
// process.
func (d *pgDiag) end(tb testing.TB, what string, n float64) (pgPerTx, goPerTx float64) {
	close(d.stop)
	d.done.Wait()
	ctx := context.Background()
	var walBytes float64
	if err := d.conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)`, d.lsn0).Scan(&walBytes); err != nil {
		tb.Fatalf("diag: %v", err)
	}
	pgCPU, goCPU := d.postgresCPU(tb)-d.pgCPU0, selfCPU()-d.goCPU0
	took := time.Since(d.start).Seconds()
	time.Sleep(1100 * time.Millisecond) // sessions flush their statistics at most once a second
	st := d.dbStats(tb)
	keys := slices.Collect(maps.Keys(d.waits))
	slices.SortFunc(keys, func(a, b string) int { return d.waits[b] - d.waits[a] })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "\n    %6.2f  %s", float64(d.waits[k])/float64(max(d.samples, 1)), k)
	}
	tb.Logf("diag %s: %.0f transactions; per transaction: %.2f commits, rows returned %.1f, fetched %.1f, inserted %.2f, updated %.2f, deleted %.2f",
		what, n, (st[0]-d.stats0[0])/n, (st[1]-d.stats0[1])/n, (st[2]-d.stats0[2])/n, (st[3]-d.stats0[3])/n, (st[4]-d.stats0[4])/n, (st[5]-d.stats0[5])/n)
	// The cores each side got over the phase: on a machine shared with
	// other work, a phase with fewer runnable threads gets fewer of them.
	tb.Logf("diag %s: over %.1f s, PostgreSQL used %.2f cores, this process %.2f", what, took, pgCPU/took, goCPU/took)
	tb.Logf("diag %s: %.0f transactions; WAL %.0f bytes each; PostgreSQL CPU %.0f µs each, this process %.0f µs each; sessions by state and wait (mean per sample, %d samples):%s",
		what, n, walBytes/n, 1e6*pgCPU/n, 1e6*goCPU/n, d.samples, sb.String())
	d.conn.Close(ctx)
	return pgCPU / n, goCPU / n
}

// postgresCPU is the CPU seconds PostgreSQL's processes used so far: the
// live ones' and, through the postmaster's children totals, the ended
// ones' (pgbench's sessions end with the phase).
func (d *pgDiag) postgresCPU(tb testing.TB) float64 {
	var pid int
	if err := d.conn.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		tb.Fatalf("diag: %v", err)
	}
	f := procStat(pid)
	if f == nil {
		return 0
	}
	post, _ := strconv.Atoi(f[1]) // ppid
	pf := procStat(post)
	total := ticks(pf, 11) + ticks(pf, 12) + ticks(pf, 13) + ticks(pf, 14)
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", post, post))
	for _, k := range strings.Fields(string(kids)) {
		n, _ := strconv.Atoi(k)
		kf := procStat(n)
		total += ticks(kf, 11) + ticks(kf, 12)
	}
	return total / 100 // USER_HZ
}

// procStat returns /proc/pid/stat's fields after the command name
// (field 0 is the state).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ticks(f []string, i int) float64 {
	if i >= len(f) {
		return 0
	}
	v, _ := strconv.ParseFloat(f[i], 64)
	return v
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
