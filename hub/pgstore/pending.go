package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pendingConn is a write transaction's connection with some statements
// held back: those whose results no one reads (a revision's row and its
// trim) wait and go to PostgreSQL in one batch with the next statement
// the transaction sends, or with its COMMIT, a round trip fewer each. The
// order of statements is kept, so the transaction reads what it wrote;
// an error of a held statement is the error of the statement it went
// with (so fails the transaction). Batches sent through it are read by
// their callbacks (BatchResults.Close), never by position.
//
// A transaction may hold even its BEGIN (Store.Create): until something
// is sent, the server knows nothing of it (sent is false).
type pendingConn struct {
	conn    txConn
	pending pgx.Batch
	sent    bool // a statement went to the server
}

// hold queues a statement to go with the next one sent; its result goes
// to the callback set on the returned query, if any.
func (p *pendingConn) hold(sql string, args ...any) *pgx.QueuedQuery {
	return p.pending.Queue(sql, args...)
}

// take returns the held statements as a batch of their own and holds
// none.
func (p *pendingConn) take() *pgx.Batch {
	b := &pgx.Batch{QueuedQueries: p.pending.QueuedQueries}
	p.pending = pgx.Batch{}
	return b
}

func (p *pendingConn) flush(ctx context.Context) error {
	if p.pending.Len() == 0 {
		return nil
	}
	p.sent = true
	return p.conn.SendBatch(ctx, p.take()).Close()
}

func (p *pendingConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	p.sent = true
	return p.conn.Exec(ctx, sql, args...)
}

func (p *pendingConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	p.sent = true
	return p.conn.Query(ctx, sql, args...)
}

func (p *pendingConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.flush(ctx); err != nil {
		return errRow{err}
	}
	p.sent = true
	return p.conn.QueryRow(ctx, sql, args...)
}

// SendBatch sends the held statements first in the same batch.
func (p *pendingConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	p.sent = true
	if p.pending.Len() == 0 {
		return p.conn.SendBatch(ctx, b)
	}
	all := p.take()
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	return p.conn.SendBatch(ctx, all)
}

// commit sends COMMIT, with the held statements before it, in one round
// trip; tag is COMMIT's answer ("ROLLBACK" when a statement had failed
// and the transaction went on).
func (p *pendingConn) commit(ctx context.Context) (pgconn.CommandTag, error) {
	p.sent = true
	if p.pending.Len() == 0 {
		return p.conn.Exec(ctx, "COMMIT")
	}
	var tag pgconn.CommandTag
	answered := false
	b := p.take()
	b.Queue("COMMIT").Exec(func(t pgconn.CommandTag) error {
		tag, answered = t, true
		return nil
	})
	err := p.conn.SendBatch(ctx, b).Close()
	if answered { // it committed, whatever else the batch said
		return tag, nil
	}
	return tag, err
}

// errRow is a pgx.Row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
