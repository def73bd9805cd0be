// Package imagepin resolves the image tag of every workload template
// revision to a digest, once, so that every cluster runs the same bits:
// the placer delivers a revision's template with its image pinned
// (repository:tag@sha256:...), and a tag moved after the revision was
// made changes nothing a replica of that revision runs, in any cluster,
// at any later start.
//
// Resolving talks to a registry, so it never runs inside the write that
// makes a revision (package revisions records it with no digest): the
// leader's Resolver finds the revisions not pinned yet, asks their
// registries (member/image.Resolver: HTTPS with the system's roots or the
// configured CA, plain HTTP only to registries listed insecure) and
// records each digest on its revision row.
// Until then the placer holds the revision's delivery; the workload's
// ImageResolved condition says why, with the registry's answer when it
// refused or could not be reached (retried with backoff), and a Warning
// event (deduplicated) says so too. Pins reads what was pinned, for the
// placer and the warm standby.
//
// It asks with the credentials the revision's replicas pull with: the
// template's imagePullSecret, at the version the revision pins (the
// newest when it pins none), read through Credentials at each attempt,
// before the hub's own credentials file. A registry reachable only with
// a workload's secret is thus resolved at the hub, and a secret given new
// values (a new revision, which pins them) or fixed is used at the next
// attempt. The credentials are never logged, traced or written in a
// condition or an event; a secret or key that cannot be read is named
// (never its value) in the ImageResolved condition.
//
// It must not deliver anything or decide placement; it writes nothing
// but pins, the condition and events.
package imagepin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/protocol"
)

// Store is what the resolver reads and writes.
type Store interface {
	UnpinnedRevisions(ctx context.Context, limit int) ([]pgstore.UnpinnedRevision, error)
	PinRevisionImage(ctx context.Context, workloadUID string, number int64, digest string) (bool, error)
	StaleImageConditions(ctx context.Context) ([]string, error)
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
}

// Registry resolves a reference to its manifest digest, asking with the
// credentials of image.WithCredentials before its own (*image.Resolver
// has it).
type Registry interface {
	Resolve(ctx context.Context, ref string, opts ...image.PullOption) (string, error)
}

// Credentials reads the registry credentials a template's replicas pull
// with: its imagePullSecret's key (a docker config.json), at the version
// the template pins (api.AnnotationData; the newest when it pins none).
// Errors say what is missing (the Resolver names the secret and the key
// before them) and never quote a value.
type Credentials interface {
	PullAuth(ctx context.Context, t api.ReplicaTemplate) ([]byte, error)
}

// Config tunes a Resolver. Zero values mean the defaults.
type Config struct {
	// Every is the pass period (default 2 s); a new revision wakes a
	// pass at once (Wake).
	Every time.Duration
	// Timeout bounds one registry request (default 15 s).
	Timeout time.Duration
	// Backoff is the first wait after a failure, doubling up to
	// MaxBackoff (defaults 2 s and 1 min).
	Backoff, MaxBackoff time.Duration
	// OnPinned is called after a pass pinned a revision (the placer and
	// the warm standby are woken).
	OnPinned func()
	// Credentials reads templates' imagePullSecrets; nil: a template
	// that names one is not resolved (its condition says the hub cannot
	// read it).
	Credentials Credentials
	Logger      *slog.Logger
	Now         func() time.Time
	Meter       metric.MeterProvider
}

// Resolver is the controller.
type Resolver struct {
	store    Store
	registry Registry
	lead     leader.Leadership
	cfg      Config
	log      *slog.Logger
	wake     chan struct{}
	loop     loop.Loop

	mu     sync.Mutex
	failed map[string]failure // uid/number -> the last failure
	swept  time.Time          // the last pass that cleared stale conditions

	resolved metric.Int64Counter
	duration metric.Float64Histogram
}

type failure struct {
	attempts int
	next     time.Time
	message  string
}

var actor = pgstore.Actor{Name: "system:image-resolver"}

// New makes a resolver; a nil lead leads alone.
func New(store Store, registry Registry, lead leader.Leadership, cfg Config) *Resolver {
	cfg.Every = max(cfg.Every, 0)
	if cfg.Every == 0 {
		cfg.Every = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.GetMeterProvider()
	}
	if lead == nil {
		lead = leader.Sole{}
	}
	r := &Resolver{store: store, registry: registry, lead: lead, cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), failed: map[string]failure{}}
	m := cfg.Meter.Meter("github.com/atollhq/atoll/hub/imagepin")
	r.resolved, _ = m.Int64Counter("image.resolutions", metric.WithUnit("{revision}"), metric.WithDescription("Revisions' image tags resolved to a digest, by result (pinned, failed)."))
	r.duration, _ = m.Float64Histogram("image.resolution.duration", metric.WithUnit("s"), metric.WithDescription("One registry request resolving a tag."))
	return r
}

// Start runs passes until Stop or ctx ends.
func (r *Resolver) Start(ctx context.Context) {
	r.Wake()
	r.loop.Start(ctx, r.log, "image resolution pass failed", r.cfg.Every, r.wake, r.RunOnce)
}

// Stop ends the controller; safe to call twice and before Start.
func (r *Resolver) Stop() { r.loop.Stop() }

// Wake asks for a pass soon (a workload changed).
func (r *Resolver) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// passLimit bounds the revisions one pass resolves.
const passLimit = 100

// RunOnce resolves the revisions not pinned yet whose backoff is over
// (on the leader only).
func (r *Resolver) RunOnce(ctx context.Context) error {
	if !r.lead.IsLeader() {
		return nil
	}
	list, err := r.store.UnpinnedRevisions(ctx, passLimit)
	if err != nil {
		return err
	}
	pinned := 0
	for _, u := range list {
		key := u.WorkloadUID + "/" + strconv.FormatInt(u.Number, 10)
		r.mu.Lock()
		f, failedBefore := r.failed[key]
		r.mu.Unlock()
		if failedBefore && r.cfg.Now().Before(f.next) {
			continue
		}
		digest, secret, err := r.resolve(ctx, u)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			f.attempts++
			f.next = r.cfg.Now().Add(min(r.cfg.Backoff<<min(f.attempts-1, 16), r.cfg.MaxBackoff))
			msg := fmt.Sprintf("revision %d: image %s could not be resolved to a digest (delivery waits; retried): %s", u.Number, u.Image, bounded(err.Error()))
			first := !failedBefore || f.message != msg
			f.message = msg
			r.mu.Lock()
			r.failed[key] = f
			r.mu.Unlock()
			r.resolved.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "failed")))
			if first {
				r.log.WarnContext(ctx, "image not resolved", "workload", u.Workload, "revision", u.Number, "image", u.Image, "err", err)
			}
			if !u.Latest {
				continue // the workload's condition and events are about its newest revision
			}
			if err := r.record(ctx, u, "False", api.ReasonResolveFailed, msg, api.EventWarning); err != nil && api.ErrorCode(err) != api.CodeNotFound {
				r.log.WarnContext(ctx, "recording an image resolution failure", "workload", u.Workload, "err", err)
			}
			continue
		}
		ok, err := r.store.PinRevisionImage(ctx, u.WorkloadUID, u.Number, digest)
		if err != nil {
			return err
		}
		r.mu.Lock()
		delete(r.failed, key)
		r.mu.Unlock()
		if !ok {
			continue // pinned by another pass meanwhile (a former leader)
		}
		pinned++
		r.resolved.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "pinned")))
		r.log.InfoContext(ctx, "image pinned", "workload", u.Workload, "revision", u.Number, "image", u.Image, "digest", digest)
		if !u.Latest {
			continue
		}
		msg := fmt.Sprintf("revision %d: image %s is %s%s; every cluster runs it pinned", u.Number, u.Image, digest, secret)
		if err := r.record(ctx, u, "True", api.ReasonImageResolved, msg, api.EventNormal); err != nil && api.ErrorCode(err) != api.CodeNotFound {
			r.log.WarnContext(ctx, "recording an image resolution", "workload", u.Workload, "err", err)
		}
	}
	if pinned > 0 && r.cfg.OnPinned != nil {
		r.cfg.OnPinned()
	}
	if now := r.cfg.Now(); now.Sub(r.swept) >= sweepEvery {
		r.swept = now
		return r.sweep(ctx)
	}
	return nil
}

// sweepEvery is how often a pass looks for conditions to clear.
const sweepEvery = 30 * time.Second

// sweep removes the ImageResolved condition of workloads whose template
// has no tag to resolve any more (changed to a digest, or to another
// driver): it would speak of an image they no longer run.
func (r *Resolver) sweep(ctx context.Context) error {
	names, err := r.store.StaleImageConditions(ctx)
	if err != nil || len(names) == 0 {
		return err
	}
	return r.store.InTx(ctx, actor, func(tx *pgstore.Tx) error {
		if err := r.lead.Fence(ctx, tx); err != nil {
			return err
		}
		for _, name := range names {
			_, err := tx.Mutate(ctx, "resolve image", "Workload", name, func(cur *pgstore.Record) error {
				var spec api.WorkloadSpec
				if json.Unmarshal(cur.Spec, &spec) != nil || (spec.Template.Driver == "oci" && !protocol.IsPinnedImage(spec.Template.Image)) {
					return nil // a tag again meanwhile
				}
				var s api.WorkloadStatus
				if err := json.Unmarshal(cur.Status, &s); err != nil {
					return nil
				}
				s.Conditions = slices.DeleteFunc(s.Conditions, func(c api.Condition) bool { return c.Type == api.ConditionImageResolved })
				b, err := json.Marshal(s)
				cur.Status = b
				return err
			})
			if err != nil && api.ErrorCode(err) != api.CodeNotFound {
				return err
			}
		}
		return nil
	})
}

// resolve asks the registry for u's image, bounded by the timeout, with
// the credentials of its template's imagePullSecret when it names one
// (said, for the condition, by secret: " (asked with ...)").
func (r *Resolver) resolve(ctx context.Context, u pgstore.UnpinnedRevision) (digest, secret string, err error) {
	ctx, span := otel.Tracer("github.com/atollhq/atoll/hub/imagepin").Start(ctx, "imagepin.resolve")
	span.SetAttributes(attribute.String("image.ref", u.Image))
	defer span.End()
	fail := func(err error) (string, string, error) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return "", "", err
	}
	var t api.ReplicaTemplate
	if len(u.Template) > 0 {
		if err := json.Unmarshal(u.Template, &t); err != nil {
			return fail(fmt.Errorf("read the revision's template: %w", err))
		}
	}
	var opts []image.PullOption
	if ref := t.ImagePullSecret; ref != nil {
		// Named, never quoted: the credentials go to the registry alone.
		source := fmt.Sprintf("imagePullSecret (secret %q, key %q)", ref.Name, ref.Key)
		span.SetAttributes(attribute.String("image.pull_secret", ref.Name))
		if r.cfg.Credentials == nil {
			return fail(fmt.Errorf("%s: this hub does not read image pull secrets", source))
		}
		auth, err := r.cfg.Credentials.PullAuth(ctx, t)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", source, err))
		}
		opts = append(opts, image.WithCredentials(auth, source))
		secret = fmt.Sprintf(" (asked with the imagePullSecret %q)", ref.Name)
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	digest, err = r.registry.Resolve(rctx, u.Image, opts...)
	r.duration.Record(ctx, time.Since(start).Seconds())
	if err != nil {
		return fail(err)
	}
	span.SetAttributes(attribute.String("image.digest", digest))
	return digest, secret, nil
}

// record sets the workload's ImageResolved condition and records the
// event (deduplicated: a registry that stays down counts up one event),
// for the workload's newest revision only: an older one a rollout still
// delivers is resolved silently (but for the log and metrics).
func (r *Resolver) record(ctx context.Context, u pgstore.UnpinnedRevision, status, reason, msg, typ string) error {
	return r.store.InTx(ctx, actor, func(tx *pgstore.Tx) error {
		if err := r.lead.Fence(ctx, tx); err != nil {
			return err
		}
		now := r.cfg.Now().UTC().Truncate(time.Millisecond)
		var uid string
		changed := false
		_, err := tx.Mutate(ctx, "resolve image", "Workload", u.Workload, func(cur *pgstore.Record) error {
			uid = cur.Meta.UID
			if cur.Meta.UID != u.WorkloadUID {
				return nil // made again under the same name
			}
			var s api.WorkloadStatus
			_ = json.Unmarshal(cur.Status, &s)
			c := api.Condition{Type: api.ConditionImageResolved, Status: status, Reason: reason, Message: msg, LastTransitionTime: &now}
			for _, old := range s.Conditions {
				if old.Type == c.Type && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
					return nil
				}
			}
			s.Conditions = api.SetCondition(s.Conditions, c)
			b, err := json.Marshal(s)
			cur.Status = b
			changed = true
			return err
		})
		if err != nil || uid != u.WorkloadUID {
			return err
		}
		ref := api.ObjectReference{Kind: "Workload", Name: u.Workload, UID: uid}
		if typ == api.EventWarning {
			return events.Dedup(ctx, tx, now, ref, typ, "ImageResolveFailed", "", msg, "hub/imagepin", 1)
		}
		if !changed {
			return nil
		}
		return events.Record(ctx, tx, now, ref, typ, "ImageResolved", msg, "hub/imagepin")
	})
}

// bounded cuts a registry's answer to a length a condition and an event
// carry.
func bounded(s string) string { return api.Truncate(s, 1000) }
