package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/secrets"
)

// VerbReveal is the audit verb of a read of a secret's values.
const VerbReveal = "reveal"

// registerData serves configs (in clear, every verb) and secrets (values
// written, never read back but through the admin's data route).
func (s *API) registerData(hapi huma.API) {
	writers := map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbUpdate: api.RoleOperator, pgstore.VerbPatch: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator}
	registerKind(s, hapi, kindRoutes[api.Config, *api.Config, api.ConfigList]{
		kind: mustKind("Config"), roles: writers,
		decorate: func(c *api.Config) {
			c.Status = api.DataStatus{Keys: c.Spec.Describe(), Version: c.Metadata.Generation}
		},
		list: func(items []api.Config, meta api.ListMeta) api.ConfigList {
			return api.ConfigList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "ConfigList"}, Metadata: meta, Items: items}
		},
	})
	// Secrets: no dry runs, whose paths through the store would carry the
	// values into SQL (a rolled-back row still lands in the database's
	// files); their own update and merge patch keep values write-only.
	registerKind(s, hapi, kindRoutes[api.Secret, *api.Secret, api.SecretList]{
		kind: mustKind("Secret"), create: s.createSecret,
		noDryRun: "a secret's value is never written as a dry run",
		roles:    map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator},
		list: func(items []api.Secret, meta api.ListMeta) api.SecretList {
			return api.SecretList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "SecretList"}, Metadata: meta, Items: items}
		},
	})
	s.registerSecretUpdate(hapi)
	s.registerSecretPatch(hapi)
	s.registerSecretData(hapi)
}

// noVault is the answer of a hub started without a key-encryption key.
func noVault() error {
	return api.Errorf(api.CodeUnavailable, "this hub runs without a key-encryption key: secrets cannot be stored or read")
}

// createSecret stores the object without its values (its status names
// the keys and sizes, version 1) and the values sealed beside it, in one
// transaction.
func (s *API) createSecret(ctx context.Context, _ *API, a pgstore.Actor, obj *api.Secret) (*api.Secret, error) {
	if s.vault == nil {
		return nil, noVault()
	}
	ctx, span := s.tracer().Start(ctx, "secret.create", trace.WithAttributes(attribute.String("atoll.secret", obj.Metadata.Name)))
	defer span.End()
	data := obj.Spec
	obj.Spec = api.DataSpec{Residency: data.Residency} // the values go to the vault alone
	data.Residency = nil
	obj.Status = api.DataStatus{Keys: data.Describe(), Version: 1}
	rec := recordOf("Secret", obj)
	rec.Status, _ = json.Marshal(obj.Status)
	var out *pgstore.Record
	err := s.store.WriteTx(ctx, a, pgstore.VerbCreate, "Secret", obj.Metadata.Name, func(tx *pgstore.Tx) (err error) {
		if out, err = tx.Create(ctx, rec); err != nil {
			return err
		}
		if err := s.vault.Write(ctx, tx, out.Meta.UID, out.RV(), data); err != nil {
			return err
		}
		if err := s.secretEvent(ctx, tx, out, "SecretCreated", obj.Status); err != nil {
			return err
		}
		// Workloads that named a secret of this name before (deleted and
		// made again) pin the new one's values.
		_, err = secrets.Repin(ctx, tx, "Secret", out.Meta.Name, fmt.Sprintf("secret %s v%d", out.Meta.Name, obj.Status.Version))
		return err
	})
	if err != nil {
		return nil, err
	}
	var created api.Secret
	return &created, out.Decode(&created)
}

// registerSecretUpdate serves PUT /api/v1/secrets/{name}: labels,
// annotations, finalizers and the values. Values equal to the stored ones
// change nothing; others get a new data key and the next status.version.
func (s *API) registerSecretUpdate(hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "replace-secret", Method: http.MethodPut, Path: "/api/v1/secrets/{name}",
		Summary: "Replace a Secret", Description: "Replaces labels, annotations, finalizers, residency and the values (spec.data and spec.binaryData, all of them; neither given keeps the stored values, an empty data empties them). With metadata.resourceVersion set, fails with 409 when the object changed since. Values equal to the stored ones leave status.version as it is.",
		Tags: []string{"Secrets"}, Security: bearer, MaxBodyBytes: maxBody, Metadata: opMeta(api.RoleOperator, pgstore.VerbUpdate, "Secret"),
		Errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 503},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"253"`
		Body api.Secret
	}) (*struct{ Body api.Secret }, error) {
		obj := &in.Body
		a := s.actor(ctx)
		if obj.Metadata.Name == "" {
			obj.Metadata.Name = in.Name
		}
		if obj.Metadata.Name != in.Name {
			return nil, s.refuse(ctx, a, pgstore.VerbUpdate, "Secret", in.Name, api.FieldErrors{{Field: "metadata.name", Message: fmt.Sprintf("must match the name in the path (%q)", in.Name), Value: obj.Metadata.Name}})
		}
		if err := s.validateWrite(ctx, a, pgstore.VerbUpdate, "Secret", obj); err != nil {
			return nil, err
		}
		if s.vault == nil {
			return nil, toProblem(ctx, noVault())
		}
		ctx, span := s.tracer().Start(ctx, "secret.update", trace.WithAttributes(attribute.String("atoll.secret", in.Name)))
		defer span.End()
		data := obj.Spec
		obj.Spec = api.DataSpec{Residency: data.Residency} // the values go to the vault alone
		data.Residency = nil
		// Values are write-only, so a client that read the secret (atoll
		// edit, a label) sends none back: no data and no binaryData at all
		// keeps the stored values; "data: {}" empties them.
		keep := data.Data == nil && data.BinaryData == nil
		want := recordOf("Secret", obj)
		var rec *pgstore.Record
		err := s.store.WriteTx(ctx, a, pgstore.VerbUpdate, "Secret", in.Name, func(tx *pgstore.Tx) (err error) {
			changed := false
			rec, err = tx.Mutate(ctx, pgstore.VerbUpdate, "Secret", in.Name, func(cur *pgstore.Record) error {
				if err := pgstore.CheckVersion(cur, obj.Metadata.ResourceVersion); err != nil {
					return err
				}
				var st api.DataStatus
				_ = json.Unmarshal(cur.Status, &st)
				if !keep {
					old, err := s.vault.ReadTx(ctx, tx, cur.Meta.UID)
					if err != nil && api.ErrorCode(err) != api.CodeNotFound {
						return err
					}
					if changed = err != nil || !secrets.Equal(old, data); changed {
						st = api.DataStatus{Keys: data.Describe(), Version: st.Version + 1}
					}
				}
				if want.Meta.Finalizers == nil {
					want.Meta.Finalizers = cur.Meta.Finalizers
				}
				setUserFields(cur, want)
				cur.Status, _ = json.Marshal(st)
				return nil
			})
			if err != nil || !changed {
				return err
			}
			return s.secretValuesChanged(ctx, tx, rec, data)
		})
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		span.SetAttributes(attribute.String("atoll.resource_version", rec.Meta.ResourceVersion))
		return answer[api.Secret](ctx, rec)
	})
}

// registerSecretData serves GET /api/v1/secrets/{name}/data: the values,
// to admins only, each read audited.
func (s *API) registerSecretData(hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "reveal-secret", Method: http.MethodGet, Path: "/api/v1/secrets/{name}/data",
		Summary:     "Read a Secret with its values",
		Description: "Answers the Secret with spec.data and spec.binaryData filled in. Admins only; every read is audited (verb reveal). The answer is marked no-store.",
		Tags:        []string{"Secrets"}, Security: bearer, Metadata: opMeta(api.RoleAdmin, "", "Secret"),
		Errors: []int{401, 403, 404, 503},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"253"`
	}) (*struct {
		CacheControl string `header:"Cache-Control"`
		Body         api.Secret
	}, error) {
		if s.vault == nil {
			return nil, toProblem(ctx, noVault())
		}
		ctx, span := s.tracer().Start(ctx, "secret.reveal", trace.WithAttributes(attribute.String("atoll.secret", in.Name)))
		defer span.End()
		rec, err := s.store.Get(ctx, "Secret", in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		out := &struct {
			CacheControl string `header:"Cache-Control"`
			Body         api.Secret
		}{CacheControl: "no-store"}
		if err := rec.Decode(&out.Body); err != nil {
			return nil, toProblem(ctx, err)
		}
		data, err := s.vault.Read(ctx, s.store, rec.Meta.UID)
		if err != nil {
			return nil, toProblem(ctx, fmt.Errorf("reveal secret %s: %w", in.Name, err))
		}
		data.Residency = out.Body.Spec.Residency
		out.Body.Spec = data
		s.store.AuditRead(ctx, s.actor(ctx), VerbReveal, "Secret", in.Name)
		return out, nil
	})
}

// secretValuesChanged stores a secret's new values in the transaction of
// the write that changed them (rec, as written), records the change as an
// event (keys and version, no value), and rolls the workloads that use
// the secret onto the new version (secrets.Repin: a new revision each,
// cause "secret NAME vN", out by their rollout's waves).
func (s *API) secretValuesChanged(ctx context.Context, tx *pgstore.Tx, rec *pgstore.Record, data api.DataSpec) error {
	if err := s.vault.Write(ctx, tx, rec.Meta.UID, rec.RV(), data); err != nil {
		return err
	}
	var st api.DataStatus
	_ = json.Unmarshal(rec.Status, &st)
	if err := s.secretEvent(ctx, tx, rec, "SecretUpdated", st); err != nil {
		return err
	}
	n, err := secrets.Repin(ctx, tx, "Secret", rec.Meta.Name, fmt.Sprintf("secret %s v%d", rec.Meta.Name, st.Version))
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int("atoll.workloads_rolled", n))
	return err
}

// tracer is the API's tracer for spans of its own.
func (s *API) tracer() trace.Tracer {
	return s.tel.Tracer.Tracer("github.com/atollhq/atoll/hub/httpapi")
}

// secretEvent records a change of a secret's values as an Event on it,
// in the change's transaction: keys and version, never a value.
func (s *API) secretEvent(ctx context.Context, tx *pgstore.Tx, rec *pgstore.Record, reason string, st api.DataStatus) error {
	names := make([]string, len(st.Keys))
	for i, k := range st.Keys {
		names[i] = k.Name
	}
	msg := fmt.Sprintf("values at version %d, keys: %s", st.Version, strings.Join(names, ", "))
	if len(names) == 0 {
		msg = fmt.Sprintf("values at version %d, no keys", st.Version)
	}
	return events.Record(ctx, tx, s.now(), api.ObjectReference{Kind: "Secret", Name: rec.Meta.Name, UID: rec.Meta.UID}, api.EventNormal, reason, msg, "hub/api")
}
