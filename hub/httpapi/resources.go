package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
)

// objPtr is a pointer to a resource type.
type objPtr[T any] interface {
	*T
	api.Object
}

// kindRoutes describes how one kind is served.
type kindRoutes[T any, P objPtr[T], L any] struct {
	kind api.Kind
	// roles maps each write verb served (create, update, patch, delete) to
	// the role it needs; verbs not listed get no route.
	roles map[string]string
	// list wraps a page of items in the kind's list type.
	list func(items []T, meta api.ListMeta) L
	// create stores a validated object and returns it as stored; nil
	// means storeCreate.
	create func(ctx context.Context, s *API, a pgstore.Actor, obj P) (P, error)
	// remove deletes an object; nil means the store's Delete. force is
	// the delete's force parameter, which only kinds with forceDoc take.
	remove func(ctx context.Context, s *API, a pgstore.Actor, name, precondition string, force bool) (*pgstore.Record, error)
	// forceDoc, when set, says what a delete's force=true overrides; kinds
	// without it refuse the parameter.
	forceDoc string
	// decorate adds live data to objects read (nil: none).
	decorate func(obj P)
	// noDryRun, when set, says why creates of this kind cannot be dry
	// runs (a token's create makes its secret).
	noDryRun string
	// guard, when set, checks a change before it is written (patches
	// only): needs names what of the change calls for a check ("" for
	// nothing), check judges it outside the write's transaction (it may
	// read the whole fleet), and the write goes ahead only if the stored
	// change still needs what was checked. force=true skips the check;
	// kinds without a guard refuse force.
	guard *writeGuard[T, P]
	// check, when set, judges a create, update or patch against other
	// objects (what the kind's Validate cannot see alone): field errors
	// are refusals, audited as validation's are.
	check func(ctx context.Context, s *API, obj P) error
}

// writeGuard is a kind's check of changes that need judging before they
// are written (a cluster's drain, say).
type writeGuard[T any, P objPtr[T]] struct {
	needs func(old, next P) string
	check func(ctx context.Context, s *API, name string, old, next P) error
	doc   string // what force=true overrides
}

func opMeta(role, verb, kind string) map[string]any {
	return map[string]any{"role": role, "verb": verb, "kind": kind}
}

var bearer = []map[string][]string{{"bearer": {}}}

// registerKind adds create, get, list, update, patch, delete and watch for
// one kind.
func registerKind[T any, P objPtr[T], L any](s *API, hapi huma.API, k kindRoutes[T, P, L]) {
	kind, plural := k.kind.Name, k.kind.Plural
	if k.create == nil {
		k.create = func(ctx context.Context, s *API, a pgstore.Actor, obj P) (P, error) {
			return storeCreate[T, P](ctx, s, a, kind, obj)
		}
	}
	remove := k.remove
	if remove == nil {
		remove = func(ctx context.Context, s *API, a pgstore.Actor, name, precondition string, _ bool) (*pgstore.Record, error) {
			rec, _, err := s.store.Delete(ctx, a, kind, name, precondition)
			return rec, err
		}
	}
	decorate := func(P) {}
	if k.decorate != nil {
		decorate = k.decorate
	}
	base := "/api/v1/" + plural
	tags := []string{kind + "s"}

	if role, ok := k.roles[pgstore.VerbCreate]; ok {
		huma.Register(hapi, huma.Operation{
			OperationID: "create-" + k.kind.Short[0], Method: http.MethodPost, Path: base,
			Summary: "Create a " + kind, Tags: tags, Security: bearer, DefaultStatus: http.StatusCreated,
			MaxBodyBytes: maxBody, Metadata: opMeta(role, pgstore.VerbCreate, kind),
			Errors: []int{400, 401, 403, 409, 413, 415, 422, 503},
		}, func(ctx context.Context, in *struct {
			DryRun string `query:"dryRun" enum:"All" doc:"All: check the object and answer what would be stored, storing nothing."`
			Body   T
		}) (*struct {
			Location string `header:"Location"`
			Body     T
		}, error) {
			obj := P(&in.Body)
			a := s.actor(ctx)
			ctx = withDryRun(ctx, in.DryRun)
			if err := s.validateWrite(ctx, a, pgstore.VerbCreate, kind, obj); err != nil {
				return nil, err
			}
			if obj.GetMetadata().ResourceVersion != "" {
				return nil, s.refuse(ctx, a, pgstore.VerbCreate, kind, obj.GetMetadata().Name, api.FieldErrors{{Field: "metadata.resourceVersion", Message: "must not be set when creating"}})
			}
			if err := k.checkWrite(ctx, s, a, pgstore.VerbCreate, obj); err != nil {
				return nil, err
			}
			create := k.create
			if in.DryRun != "" {
				if k.noDryRun != "" {
					return nil, located(http.StatusUnprocessableEntity, api.CodeInvalid, "dry run not supported", "query.dryRun", k.noDryRun)
				}
				create = func(ctx context.Context, s *API, a pgstore.Actor, obj P) (P, error) {
					return dryRunCreate[T, P](ctx, s, a, kind, obj)
				}
			}
			created, err := create(ctx, s, a, obj)
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			return &struct {
				Location string `header:"Location"`
				Body     T
			}{Location: base + "/" + created.GetMetadata().Name, Body: *created}, nil
		})
	}

	huma.Register(hapi, huma.Operation{
		OperationID: "get-" + k.kind.Short[0], Method: http.MethodGet, Path: base + "/{name}",
		Summary: "Read a " + kind, Tags: tags, Security: bearer,
		Metadata: opMeta(k.kind.ReadRole, "", kind), Errors: []int{401, 403, 404, 503},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"253"`
	}) (*struct{ Body T }, error) {
		rec, err := s.store.Get(ctx, kind, in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		out := &struct{ Body T }{}
		if err := rec.Decode(&out.Body); err != nil {
			return nil, toProblem(ctx, err)
		}
		decorate(&out.Body)
		return out, nil
	})

	huma.Register(hapi, huma.Operation{
		OperationID: "list-" + k.kind.Short[0], Method: http.MethodGet, Path: base,
		Summary: "List " + kind + "s", Tags: tags, Security: bearer,
		Metadata: opMeta(k.kind.ReadRole, "", kind), Errors: []int{400, 401, 403, 422, 503},
	}, func(ctx context.Context, in *listParams) (*struct{ Body L }, error) {
		sel, err := in.selector()
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		res, err := s.store.List(ctx, kind, pgstore.ListOptions{Selector: sel, Limit: in.Limit, Continue: in.Continue})
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		items := make([]T, len(res.Items))
		for i, rec := range res.Items {
			if err := rec.Decode(&items[i]); err != nil {
				return nil, toProblem(ctx, err)
			}
			decorate(&items[i])
		}
		return &struct{ Body L }{Body: k.list(items, api.ListMeta{ResourceVersion: res.ResourceVersion, Continue: res.Continue})}, nil
	})

	if role, ok := k.roles[pgstore.VerbUpdate]; ok {
		huma.Register(hapi, huma.Operation{
			OperationID: "replace-" + k.kind.Short[0], Method: http.MethodPut, Path: base + "/{name}",
			Summary: "Replace a " + kind, Description: "Replaces labels, annotations, finalizers and spec. With metadata.resourceVersion set, fails with 409 when the object changed since.",
			Tags: tags, Security: bearer, MaxBodyBytes: maxBody, Metadata: opMeta(role, pgstore.VerbUpdate, kind),
			Errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 503},
		}, func(ctx context.Context, in *struct {
			Name   string `path:"name" maxLength:"253"`
			DryRun string `query:"dryRun" enum:"All" doc:"All: check the change and answer what would be stored, storing nothing."`
			Body   T
		}) (*struct{ Body T }, error) {
			obj := P(&in.Body)
			a := s.actor(ctx)
			ctx = withDryRun(ctx, in.DryRun)
			if obj.GetMetadata().Name == "" {
				obj.GetMetadata().Name = in.Name
			}
			if obj.GetMetadata().Name != in.Name {
				return nil, s.refuse(ctx, a, pgstore.VerbUpdate, kind, in.Name, api.FieldErrors{{Field: "metadata.name", Message: fmt.Sprintf("must match the name in the path (%q)", in.Name), Value: obj.GetMetadata().Name}})
			}
			if err := s.validateWrite(ctx, a, pgstore.VerbUpdate, kind, obj); err != nil {
				return nil, err
			}
			if err := k.checkWrite(ctx, s, a, pgstore.VerbUpdate, obj); err != nil {
				return nil, err
			}
			want := recordOf(kind, obj)
			rec, err := s.mutate(ctx, a, in.DryRun != "", pgstore.VerbUpdate, kind, in.Name, func(cur *pgstore.Record) error {
				if err := pgstore.CheckVersion(cur, obj.GetMetadata().ResourceVersion); err != nil {
					return err
				}
				if obj.GetMetadata().Finalizers == nil {
					// Finalizers left out are kept: a manifest applied again
					// must not drop the hub's own (atoll.dev/placement).
					want.Meta.Finalizers = cur.Meta.Finalizers
				}
				setUserFields(cur, want)
				return nil
			})
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			return answer[T](ctx, rec)
		})
	}

	if role, ok := k.roles[pgstore.VerbPatch]; ok {
		huma.Register(hapi, huma.Operation{
			OperationID: "patch-" + k.kind.Short[0], Method: http.MethodPatch, Path: base + "/{name}",
			Summary: "Patch a " + kind, Description: "RFC 7386 JSON merge patch (application/merge-patch+json; application/json and application/yaml are read the same way), or RFC 6902 JSON patch (application/json-patch+json), over metadata (labels, annotations, finalizers) and spec. A metadata.resourceVersion in the patch is a precondition.",
			Tags: tags, Security: bearer, MaxBodyBytes: maxBody, Metadata: opMeta(role, pgstore.VerbPatch, kind),
			Errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 503},
			RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
				// No types: huma checks a raw body against the schema of any
				// one of these, so the handler checks the shape itself.
				"application/merge-patch+json": {Schema: &huma.Schema{Description: "A merge patch over the object (a JSON object)."}},
				"application/json-patch+json":  {Schema: &huma.Schema{Description: "RFC 6902 operations (a JSON array), applied in order, all or none."}},
			}},
		}, func(ctx context.Context, in *struct {
			Name        string `path:"name" maxLength:"253"`
			DryRun      string `query:"dryRun" enum:"All" doc:"All: check the patch and answer what would be stored, storing nothing."`
			Force       bool   `query:"force" doc:"Clusters only: write a change the hub would refuse (a drain that leaves a workload with no replica anywhere, or below its disruption budget). Other kinds refuse it."`
			ContentType string `header:"Content-Type"`
			RawBody     []byte
		}) (*struct{ Body T }, error) {
			a := s.actor(ctx)
			ctx = withDryRun(ctx, in.DryRun)
			if in.Force && k.guard == nil {
				p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "force applies to clusters only")
				p.Errors = []api.ProblemDetail{{Location: "query.force", Message: "only clusters take force", Value: true}}
				return nil, p
			}
			apply, err := readPatch(in.ContentType, in.RawBody)
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			schema := hapi.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[T](), true, "")
			checked := ""
			if k.guard != nil && !in.Force {
				if checked, err = guardPatch(ctx, s, a, k.guard, hapi, schema, kind, in.Name, apply); err != nil {
					return nil, err
				}
			}
			rec, err := s.mutate(ctx, a, in.DryRun != "", pgstore.VerbPatch, kind, in.Name, func(cur *pgstore.Record) error {
				obj, err := applyPatch[T, P](hapi, schema, cur, apply)
				if err != nil {
					return err
				}
				if k.guard != nil && !in.Force {
					old := P(new(T))
					if err := cur.Decode(old); err != nil {
						return err
					}
					if needs := k.guard.needs(old, obj); needs != "" && needs != checked {
						return api.Errorf(api.CodeConflict, "%s %s changed while the change was being checked; try again", kind, in.Name)
					}
				}
				if k.check != nil {
					if err := k.check(ctx, s, obj); err != nil {
						return err
					}
				}
				want := recordOf(kind, obj)
				setUserFields(cur, want)
				return nil
			})
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			return answer[T](ctx, rec)
		})
	}

	if role, ok := k.roles[pgstore.VerbDelete]; ok {
		huma.Register(hapi, huma.Operation{
			OperationID: "delete-" + k.kind.Short[0], Method: http.MethodDelete, Path: base + "/{name}",
			Summary:     "Delete a " + kind,
			Description: "Deletes the object, or, while finalizers remain, marks it with a deletionTimestamp. Answers with the object's last state.",
			Tags:        tags, Security: bearer, Metadata: opMeta(role, pgstore.VerbDelete, kind),
			Errors: []int{401, 403, 404, 409, 503},
		}, func(ctx context.Context, in *struct {
			Name            string `path:"name" maxLength:"253"`
			ResourceVersion string `query:"resourceVersion" doc:"Delete only if the object is still at this version."`
			Force           bool   `query:"force" doc:"Clusters only: deregister even while the member still heartbeats. Other kinds refuse it."`
		}) (*struct{ Body T }, error) {
			if in.Force && k.forceDoc == "" {
				p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "force applies to clusters only")
				p.Errors = []api.ProblemDetail{{Location: "query.force", Message: "only clusters take force", Value: true}}
				return nil, p
			}
			rec, err := remove(ctx, s, s.actor(ctx), in.Name, in.ResourceVersion, in.Force)
			if err != nil {
				return nil, toProblem(ctx, err)
			}
			return answer[T](ctx, rec)
		})
	}

	registerWatch(s, hapi, k.kind)
}

// guardPatch checks a patch with the kind's guard against the object as
// it is now, outside the write's transaction, and returns what it
// checked (the write compares it with what the stored change needs). A
// refusal is audited; an object that is missing or a patch that does not
// apply is left for the write to report.
func guardPatch[T any, P objPtr[T]](ctx context.Context, s *API, a pgstore.Actor, g *writeGuard[T, P], hapi huma.API, schema *huma.Schema, kind, name string, apply func([]byte) ([]byte, error)) (string, error) {
	cur, err := s.store.Get(ctx, kind, name)
	if err != nil {
		return "", nil
	}
	next, err := applyPatch[T, P](hapi, schema, cur, apply)
	if err != nil {
		return "", nil
	}
	old := P(new(T))
	if err := cur.Decode(old); err != nil {
		return "", nil
	}
	needs := g.needs(old, next)
	if needs == "" {
		return "", nil
	}
	if err := g.check(ctx, s, name, old, next); err != nil {
		var p *problem
		var fe api.FieldErrors
		if errors.As(err, &p) || errors.As(err, &fe) {
			return "", s.refuse(ctx, a, pgstore.VerbPatch, kind, name, err) // audited: a write was refused
		}
		return "", toProblem(ctx, err)
	}
	return needs, nil
}

// checkWrite runs the kind's check, when it has one, and audits a refusal.
func (k kindRoutes[T, P, L]) checkWrite(ctx context.Context, s *API, a pgstore.Actor, verb string, obj P) error {
	if k.check == nil {
		return nil
	}
	if err := k.check(ctx, s, obj); err != nil {
		var fe api.FieldErrors
		if errors.As(err, &fe) {
			return s.refuse(ctx, a, verb, k.kind.Name, obj.GetMetadata().Name, fe)
		}
		return toProblem(ctx, err)
	}
	return nil
}

// dryRunCreate answers what creating the object would store (with the
// finalizers a workload gets), storing nothing.
func dryRunCreate[T any, P objPtr[T]](ctx context.Context, s *API, a pgstore.Actor, kind string, obj P) (P, error) {
	if w, ok := any(obj).(*api.Workload); ok {
		s.addFinalizers(w)
	}
	var rec *pgstore.Record
	err := s.store.DryRun(ctx, a, pgstore.VerbCreate, kind, obj.GetMetadata().Name, func(tx *pgstore.Tx) (err error) {
		rec, err = tx.Create(ctx, recordOf(kind, obj))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := P(new(T))
	return out, rec.DecodeObject(out)
}

// mutate is the store's Mutate, or with dry its dry run.
func (s *API) mutate(ctx context.Context, a pgstore.Actor, dry bool, verb, kind, name string, fn pgstore.MutateFunc) (*pgstore.Record, error) {
	if !dry {
		return s.store.Mutate(ctx, a, verb, kind, name, fn)
	}
	var rec *pgstore.Record
	err := s.store.DryRun(ctx, a, verb, kind, name, func(tx *pgstore.Tx) (err error) {
		rec, err = tx.Mutate(ctx, verb, kind, name, fn)
		return err
	})
	return rec, err
}

// storeCreate creates the object as sent.
func storeCreate[T any, P objPtr[T]](ctx context.Context, s *API, a pgstore.Actor, kind string, obj P) (P, error) {
	rec, err := s.store.Create(ctx, a, recordOf(kind, obj))
	if err != nil {
		return nil, err
	}
	out := P(new(T))
	return out, rec.DecodeObject(out)
}

// setUserFields copies what users own (labels, annotations, finalizers,
// spec) from want onto cur; identity, versions and status stay the store's.
func setUserFields(cur, want *pgstore.Record) {
	cur.Meta.Labels, cur.Meta.Annotations, cur.Meta.Finalizers = want.Meta.Labels, want.Meta.Annotations, want.Meta.Finalizers
	cur.Spec = want.Spec
}

// answer decodes a stored record as the response body.
func answer[T any](ctx context.Context, rec *pgstore.Record) (*struct{ Body T }, error) {
	out := &struct{ Body T }{}
	if err := rec.Decode(&out.Body); err != nil {
		return nil, toProblem(ctx, err)
	}
	return out, nil
}

// listParams are the query parameters of every list.
type listParams struct {
	LabelSelector string `query:"labelSelector" maxLength:"4096" doc:"Kubernetes label selector, e.g. app=web,tier in (a,b),!legacy"`
	Limit         int    `query:"limit" minimum:"0" maximum:"5000" doc:"Page size; 0 means 500."`
	Continue      string `query:"continue" maxLength:"4096" doc:"Token from the previous page."`
}

func (p *listParams) selector() (api.Selector, error) {
	sel, err := api.ParseSelector(p.LabelSelector)
	if err != nil {
		pr := newProblem(http.StatusBadRequest, api.CodeBadRequest, "invalid label selector")
		pr.Errors = []api.ProblemDetail{{Location: "query.labelSelector", Message: err.Error(), Value: p.LabelSelector}}
		return sel, pr
	}
	return sel, nil
}

// actor names the caller for the audit log.
func (s *API) actor(ctx context.Context) pgstore.Actor {
	return actor(ctx, telemetry.RequestIDFrom(ctx))
}

// validateWrite checks an object and audits a refusal.
func (s *API) validateWrite(ctx context.Context, a pgstore.Actor, verb, kind string, obj api.Object) error {
	if fe := obj.Validate(); fe != nil {
		return s.refuse(ctx, a, verb, kind, obj.GetMetadata().Name, fe)
	}
	return nil
}

// refuse audits a refused write and returns its problem. A dry run's
// refusal is not audited: no write was attempted.
func (s *API) refuse(ctx context.Context, a pgstore.Actor, verb, kind, name string, err error) error {
	if dry, _ := ctx.Value(dryRunKey{}).(bool); !dry {
		s.store.AuditRefusal(ctx, a, verb, kind, name, api.CodeInvalid, err.Error())
	}
	return toProblem(ctx, err)
}

type dryRunKey struct{}

// withDryRun marks a request's context as a dry run's (dryRun non-empty).
func withDryRun(ctx context.Context, dryRun string) context.Context {
	if dryRun == "" {
		return ctx
	}
	return context.WithValue(ctx, dryRunKey{}, true)
}

// recordOf splits a typed object into what the store keeps.
func recordOf(kind string, obj api.Object) *pgstore.Record {
	m := *obj.GetMetadata()
	if k, ok := api.LookupKind(kind); ok && k.Inline {
		b, _ := json.Marshal(obj)
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(b, &fields)
		delete(fields, "apiVersion")
		delete(fields, "kind")
		delete(fields, "metadata")
		spec, _ := json.Marshal(fields)
		return &pgstore.Record{Kind: kind, Meta: m, Spec: spec}
	}
	if spec, ok := specField(obj); ok {
		b, _ := json.Marshal(spec)
		return &pgstore.Record{Kind: kind, Meta: m, Spec: b}
	}
	b, _ := json.Marshal(obj)
	var parts struct {
		Spec json.RawMessage `json:"spec"`
	}
	_ = json.Unmarshal(b, &parts)
	return &pgstore.Record{Kind: kind, Meta: m, Spec: parts.Spec}
}

// specField returns a pointer to obj's spec field (a struct field tagged
// exactly `json:"spec"`), which marshals to the same bytes as the field
// inside the whole object: recordOf then renders the spec alone instead
// of the object and parsing it again. The field is found once per type.
func specField(obj api.Object) (any, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	t := v.Elem().Type()
	i, ok := specFields.Load(t)
	if !ok {
		i = -1
		for n := range t.NumField() {
			if f := t.Field(n); f.IsExported() && f.Tag.Get("json") == "spec" {
				i = n
				break
			}
		}
		specFields.Store(t, i)
	}
	if i.(int) < 0 {
		return nil, false
	}
	return v.Elem().Field(i.(int)).Addr().Interface(), true
}

// specFields caches specField's index per type (-1: none).
var specFields sync.Map

// readPatch reads a patch body in any of the accepted media types and
// returns the function that applies it to a document.
func readPatch(contentType string, body []byte) (func(doc []byte) ([]byte, error), error) {
	if mediaType(contentType) == "application/json-patch+json" {
		if err := checkJSONCost(body); err != nil {
			return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, err.Error())
		}
		patch, err := readJSONPatch(body)
		if err != nil {
			return nil, err
		}
		return func(doc []byte) ([]byte, error) { return applyJSONPatch(doc, patch) }, nil
	}
	merge, err := patchJSON(contentType, body)
	if err != nil {
		return nil, err
	}
	return func(doc []byte) ([]byte, error) {
		out, err := api.MergePatch(doc, merge)
		if err != nil {
			return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, err.Error())
		}
		return out, nil
	}, nil
}

// patchJSON reads a merge patch body in any of the accepted media types.
func patchJSON(contentType string, body []byte) ([]byte, error) {
	switch mediaType(contentType) {
	case "application/merge-patch+json", "application/json", "":
	case "application/yaml", "application/x-yaml", "text/yaml":
		js, err := yamlToJSON(body)
		if err != nil {
			return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, "the patch is not valid YAML: "+err.Error())
		}
		body = js
	default:
		return nil, bodyProblem(http.StatusUnsupportedMediaType, api.CodeUnsupportedMediaType,
			fmt.Sprintf("content type %q is not accepted: send application/merge-patch+json, application/json, application/yaml or application/json-patch+json", contentType))
	}
	if err := checkJSONCost(body); err != nil {
		return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, err.Error())
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		if json.Valid(body) {
			return nil, bodyProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "a merge patch must be a JSON object (send a JSON patch, an array, as application/json-patch+json)")
		}
		return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, "the patch must be a JSON object")
	}
	if _, ok := m["status"]; ok {
		p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "validation failed")
		p.Errors = []api.ProblemDetail{{Location: "body.status", Message: "is written by the hub, not by clients"}}
		return nil, p
	}
	return body, nil
}

func bodyProblem(status int, code, msg string) *problem {
	p := newProblem(status, code, msg)
	p.Errors = []api.ProblemDetail{{Location: "body", Message: msg}}
	return p
}

// applyPatch applies a patch over the current object, then checks the
// result against the schema (so unknown fields are reported with their
// path) and the kind's validation.
func applyPatch[T any, P objPtr[T]](hapi huma.API, schema *huma.Schema, cur *pgstore.Record, patch func([]byte) ([]byte, error)) (P, error) {
	doc := *cur
	doc.Status = nil
	base, err := doc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	merged, err := patch(base)
	if err != nil {
		return nil, err
	}
	var generic any
	_ = json.Unmarshal(merged, &generic)
	escapeKeys(generic)
	pb := huma.NewPathBuffer([]byte("body"), 0)
	res := &huma.ValidateResult{}
	huma.Validate(hapi.OpenAPI().Components.Schemas, schema, pb, huma.ModeWriteToServer, generic, res)
	if len(res.Errors) > 0 {
		p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "validation failed")
		for _, e := range res.Errors {
			if d, ok := e.(*huma.ErrorDetail); ok {
				p.Errors = append(p.Errors, api.ProblemDetail{Location: unescapeLocation(d.Location), Message: d.Message, Value: sanitizeValue(d.Value)})
			} else {
				p.Errors = append(p.Errors, api.ProblemDetail{Message: e.Error()})
			}
		}
		return nil, p
	}
	obj := P(new(T))
	if err := api.DecodeStrict(merged, obj); err != nil {
		return nil, bodyProblem(http.StatusUnprocessableEntity, api.CodeInvalid, err.Error())
	}
	m := obj.GetMetadata()
	if m.Name != cur.Meta.Name {
		return nil, api.FieldErrors{{Field: "metadata.name", Message: "cannot be changed", Value: m.Name}}
	}
	if m.UID != cur.Meta.UID {
		return nil, api.FieldErrors{{Field: "metadata.uid", Message: "cannot be changed", Value: m.UID}}
	}
	if err := pgstore.CheckVersion(cur, m.ResourceVersion); err != nil {
		return nil, err
	}
	if fe := obj.Validate(); fe != nil {
		return nil, fe
	}
	return obj, nil
}

// createWorkload stores a new workload with the finalizers this hub's
// controllers need from the start (the placement finalizer when the hub
// places workloads), so no delete can ever skip its tombstones.
func (s *API) createWorkload(ctx context.Context, _ *API, a pgstore.Actor, w *api.Workload) (*api.Workload, error) {
	s.addFinalizers(w)
	return storeCreate[api.Workload, *api.Workload](ctx, s, a, "Workload", w)
}

// addFinalizers adds the finalizers this hub's controllers need.
func (s *API) addFinalizers(w *api.Workload) {
	for _, f := range s.finalizers {
		if !slices.Contains(w.Metadata.Finalizers, f) {
			w.Metadata.Finalizers = append(w.Metadata.Finalizers, f)
		}
	}
}

// tokenCreate makes the secret, fixes the expiry and stores the hash.
func tokenCreate(ctx context.Context, s *API, a pgstore.Actor, t *api.Token) (*api.Token, error) {
	now := s.now().UTC()
	if t.Spec.TypeOrDefault() == api.TokenJoin && t.Spec.TTL == "" && t.Spec.ExpiresAt == nil {
		t.Spec.TTL = "24h" // join tokens are short-lived unless told otherwise
	}
	switch {
	case t.Spec.TTL != "" && t.Spec.ExpiresAt != nil:
		return nil, api.FieldErrors{{Field: "spec.ttl", Message: "set ttl or expiresAt, not both"}}
	case t.Spec.TTL != "":
		exp := now.Add(t.Spec.TTL.Get(0))
		t.Spec.ExpiresAt = &exp
	case t.Spec.ExpiresAt != nil && !t.Spec.ExpiresAt.After(now):
		return nil, api.FieldErrors{{Field: "spec.expiresAt", Message: "is in the past"}}
	}
	secret, prefix := tokens.NewSecret()
	if t.Spec.TypeOrDefault() == api.TokenJoin {
		if s.bus == nil {
			return nil, api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so members cannot join it")
		}
		inner := secret
		secret = api.JoinToken{Hub: s.hubURL(ctx), CA: s.caFingerprint, Secret: inner}.Encode()
		prefix = api.JoinTokenPrefix + "…" + inner[len(tokens.Prefix):len(tokens.Prefix)+6]
	}
	t.Status = api.TokenStatus{Prefix: prefix}
	rec := recordOf("Token", t)
	status, _ := json.Marshal(t.Status)
	rec.Status = status
	out, err := s.store.CreateToken(ctx, a, rec, tokens.Hash(secret))
	if err != nil {
		return nil, err
	}
	var created api.Token
	if err := out.Decode(&created); err != nil {
		return nil, err
	}
	created.Status.Secret = secret
	return &created, nil
}

// auditParams are the query parameters of the audit log.
type auditParams struct {
	Kind   string    `query:"kind" maxLength:"64"`
	Name   string    `query:"name" maxLength:"253"`
	Actor  string    `query:"actor" maxLength:"128" doc:"Only this actor's entries, e.g. token:ops."`
	Verb   string    `query:"verb" maxLength:"32" doc:"Only this verb's entries, e.g. delete."`
	Result string    `query:"result" maxLength:"64" doc:"ok, refused (every result but ok), or one result code such as Forbidden."`
	Since  time.Time `query:"since" doc:"Only entries at or after this time (RFC 3339)."`
	Before int64     `query:"before" minimum:"0" doc:"Only entries with an id below this (for paging)."`
	Limit  int       `query:"limit" minimum:"0" maximum:"5000"`
}

// AuditList is a page of the audit log.
type AuditList struct {
	Items []pgstore.AuditEntry `json:"items"`
}

func registerAudit(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: "/api/v1/audit",
		Summary: "Read the audit log, newest first", Tags: []string{"Audit"}, Security: bearer,
		Metadata: opMeta(api.RoleAdmin, "", "Audit"), Errors: []int{401, 403, 503},
	}, func(ctx context.Context, in *auditParams) (*struct{ Body AuditList }, error) {
		items, err := s.store.AuditQuery(ctx, pgstore.AuditFilter{Kind: in.Kind, Name: in.Name, Actor: in.Actor, Verb: in.Verb,
			Result: in.Result, Since: in.Since, Before: in.Before, Limit: in.Limit})
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		if items == nil {
			items = []pgstore.AuditEntry{}
		}
		return &struct{ Body AuditList }{Body: AuditList{Items: items}}, nil
	})
}
