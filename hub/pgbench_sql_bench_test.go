package hub_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/jackc/pgx/v5"
)

// BenchmarkCreateSQLVsPgbench runs the SQL of one workload create (the
// statements pgstore sends, with the row, change and revision JSON of a
// real create by the API, on the hub's schema with all its indexes) as a
// pgbench script, 8 clients, prepared statements, against `pgbench -N -c
// 8` on the same PostgreSQL, alternating, with ATOLL_BENCH_DIAG's figures
// for each: what PostgreSQL's share of a create costs with the cheapest
// client and no watchers, the bound BenchmarkCreatesVsPgbench could reach
// if the hub cost nothing.
//
//	go test ./hub -run '^$' -bench BenchmarkCreateSQLVsPgbench -benchtime 1x -v
//
// ATOLL_BENCH_SECONDS sets each run's length (default 8) and
// ATOLL_BENCH_ROUNDS the rounds (default 2).
func BenchmarkCreateSQLVsPgbench(b *testing.B) {
	pgbench := findPgbench(b)
	secs := envInt("ATOLL_BENCH_SECONDS", 8)
	hubDB := newHubDatabase(b)
	e := newEnvOn(b, hubDB)
	e.create(workload("sample", 3, map[string]string{"app": "bench"}))
	admin := pgtest.Server().SuperuserURL(dbNameOf(b, hubDB))
	// The sample's rows, as the API wrote them.
	conn, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		b.Fatal(err)
	}
	var spec, obj, tmpl, hash string
	if err := conn.QueryRow(context.Background(), `SELECT o.spec::text, c.object::text, r.template::text, r.template_hash FROM objects o JOIN changes c ON c.name = o.name AND c.kind = o.kind JOIN workload_revisions r ON r.workload_uid = o.uid WHERE o.name = 'sample'`).Scan(&spec, &obj, &tmpl, &hash); err != nil {
		b.Fatal(err)
	}
	conn.Close(context.Background())
	e.server.Stop() // no watchers: PostgreSQL's work for the write alone
	// The JSON's colons get a space after them: pgbench takes ":name" for
	// a variable, even in a literal.
	q := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "'", "''"), `":`, `": `) + "'"
	}
	// As pgstore's Store.Create sends them: in one pipeline (one round
	// trip), the version drawn in SQL from the transaction's id, the row
	// with its change and audit rows in one statement (pgstore's
	// createSQL), the change's object split around the version.
	field := `"resourceVersion":"`
	ri := strings.Index(obj, field) + len(field)
	head, tail := obj[:ri], obj[ri+strings.Index(obj[ri:], `"`):]
	rv := `(CASE WHEN pg_current_xact_id()::text::bigint < 8796093022208 THEN (pg_current_xact_id()::text::bigint << 20) + 0::bigint END)`
	name := `('p' || :r::text || '-' || :client_id::text)`
	uid := `md5(:r::text || '-' || :client_id::text)::uuid`
	script := `\set r random(1, 9000000000000000000)
\startpipeline
BEGIN;
SELECT pg_current_xact_id()::text::bigint, set_config('lock_timeout', '3000', true), set_config('statement_timeout', '10000', true);
WITH o AS (INSERT INTO objects (kind, name, uid, resource_version, generation, labels, annotations, finalizers, spec, status, created_at, deletion_timestamp) VALUES ('Workload', ` + name + `, ` + uid + `, ` + rv + `, 1, '{"app": "bench"}', '{}', '{}', ` + q(spec) + `, '{}', now(), NULL) RETURNING resource_version), c AS (INSERT INTO changes (resource_version, kind, name, type, object) SELECT o.resource_version, 'Workload', ` + name + `, 'ADDED', (` + q(head) + `::text || o.resource_version::text || ` + q(tail) + `::text)::json FROM o) INSERT INTO audit_log (actor, verb, kind, name, resource_version, result, detail, request_id) SELECT 'token-admin', 'create', 'Workload', ` + name + `, o.resource_version, 'ok', '', 'req' FROM o;
INSERT INTO workload_revisions (workload_uid, number, template_hash, template, generation, actor, change_cause, created_at) VALUES (` + uid + `, 1, ` + q(hash) + `, ` + q(tmpl) + `, 1, 'token-admin', '', now());
COMMIT;
\endpipeline
`
	path := filepath.Join(b.TempDir(), "create.sql")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	benchDB := pgtest.NewDatabase(b)
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "8", benchDB).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	tps := regexp.MustCompile(`tps = ([0-9.]+)`)
	txl := regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
	adminURL := pgtest.Server().SuperuserURL("postgres")
	run := func(what, db string, args ...string) {
		d := startPgDiag(b, adminURL, dbNameOf(b, db))
		cmd := exec.Command(pgbench, append(args, "-c", "8", "-j", "2", "-T", strconv.Itoa(secs), "-n", db)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%v %s", err, out)
		}
		m, t := txl.FindSubmatch(out), tps.FindSubmatch(out)
		if m == nil || t == nil {
			b.Fatalf("pgbench printed no totals:\n%s", out)
		}
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		d.end(b, what, n)
		b.Logf("%s: %s tps; pgbench itself %.0f µs CPU per transaction", what, t[1], 1e6*(cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Seconds()/n)
	}
	for range envInt("ATOLL_BENCH_ROUNDS", 2) {
		run("create SQL (-M prepared)", hubDB, "-M", "prepared", "-f", path)
		run("pgbench -N", benchDB, "-N")
	}
}

// dbNameOf is the database a URL names.
func dbNameOf(b *testing.B, url string) string {
	c, err := pgx.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	return c.Database
}
