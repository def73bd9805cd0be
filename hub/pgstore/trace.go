package pgstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// queryTracer gives every query a client span ("db SELECT") and a sample
// in atoll_db_query_duration_seconds, labelled by operation only (the SQL
// text goes on the span, never on the metric).
type queryTracer struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
}

type queryStartKey struct{}

type queryStart struct {
	at time.Time
	op string
}

func newQueryTracer(tp trace.TracerProvider, mp metric.MeterProvider) *queryTracer {
	q := &queryTracer{tracer: tp.Tracer("github.com/atollhq/atoll/hub/pgstore")}
	q.duration, _ = mp.Meter("github.com/atollhq/atoll/hub/pgstore").Float64Histogram("db.query.duration",
		metric.WithUnit("s"), metric.WithDescription("Time PostgreSQL took to answer a query."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
	return q
}

func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexAny(sql, " \n\t("); i > 0 {
		sql = sql[:i]
	}
	return strings.ToUpper(sql)
}

// TraceQueryStart implements pgx.QueryTracer.
func (q *queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	op := operation(d.SQL)
	stmt := d.SQL
	if len(stmt) > 500 {
		stmt = stmt[:500]
	}
	ctx, _ = q.tracer.Start(ctx, "db "+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system", "postgresql"), attribute.String("db.operation", op), attribute.String("db.statement", stmt)))
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), op: op})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (q *queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if d.Err != nil {
		span.RecordError(d.Err)
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
	if start, ok := ctx.Value(queryStartKey{}).(queryStart); ok {
		q.duration.Record(ctx, time.Since(start.at).Seconds(), metric.WithAttributes(attribute.String("db.operation", start.op)))
	}
}

// storeMetrics are the store's own instruments; the zero value records
// nothing.
type storeMetrics struct {
	writeRetries metric.Int64Counter
}

func newStoreMetrics(mp metric.MeterProvider) storeMetrics {
	m := mp.Meter("github.com/atollhq/atoll/hub/pgstore")
	var sm storeMetrics
	sm.writeRetries, _ = m.Int64Counter("atoll.store.write.retries",
		metric.WithDescription("Write transactions run again after PostgreSQL ended a run that committed nothing (a deadlock victim, a session ended idle in its transaction)."))
	return sm
}

// retried counts one more run of a write transaction and notes it on the
// current span.
func (m storeMetrics) retried(ctx context.Context, cause error) {
	code := "other"
	var pgErr *pgconn.PgError
	if errors.As(cause, &pgErr) {
		code = pgErr.Code
	}
	trace.SpanFromContext(ctx).AddEvent("write transaction retried", trace.WithAttributes(attribute.String("db.sqlstate", code)))
	if m.writeRetries != nil {
		m.writeRetries.Add(ctx, 1, metric.WithAttributes(attribute.String("db.sqlstate", code)))
	}
}
