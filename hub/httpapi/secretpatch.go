package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"sort"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/secrets"
)

// registerSecretPatch serves PATCH /api/v1/secrets/{name}: a merge patch
// over labels, annotations, finalizers and residency, and over the values
// key by key (spec.data / spec.binaryData: a string sets a key, null
// removes it), the other keys' values kept though nobody read them. Only
// merge patches: a JSON patch's test operation would compare values that
// are never read back. No dry runs (a value would reach SQL in a
// rolled-back row). The audit row names the keys set and removed, never
// a value.
func (s *API) registerSecretPatch(hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "patch-secret", Method: http.MethodPatch, Path: "/api/v1/secrets/{name}",
		Summary:     "Patch a Secret",
		Description: "RFC 7386 JSON merge patch (application/merge-patch+json; application/json and application/yaml are read the same way) over metadata (labels, annotations, finalizers), spec.residency and the values: in spec.data and spec.binaryData a string sets a key (a key moves between the two when set in the other), null removes it, and the keys the patch does not name keep their values. A metadata.resourceVersion in the patch is a precondition. New values get the next status.version and roll the workloads that use the secret. JSON patches and dry runs are refused.",
		Tags:        []string{"Secrets"}, Security: bearer, MaxBodyBytes: maxBody, Metadata: opMeta(api.RoleOperator, pgstore.VerbPatch, "Secret"),
		Errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 503},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/merge-patch+json": {Schema: &huma.Schema{Description: "A merge patch over the secret (a JSON object)."}},
		}},
	}, func(ctx context.Context, in *struct {
		Name        string `path:"name" maxLength:"253"`
		DryRun      string `query:"dryRun" doc:"Refused: a secret's value is never written as a dry run."`
		ContentType string `header:"Content-Type"`
		RawBody     []byte
	}) (*struct{ Body api.Secret }, error) {
		a := s.actor(ctx)
		if in.DryRun != "" {
			return nil, located(http.StatusUnprocessableEntity, api.CodeInvalid, "dry run not supported", "query.dryRun", "a secret's value is never written as a dry run")
		}
		if mediaType(in.ContentType) == "application/json-patch+json" {
			return nil, bodyProblem(http.StatusUnsupportedMediaType, api.CodeUnsupportedMediaType,
				"a secret takes merge patches only (application/merge-patch+json): a JSON patch's test operation would compare values that are never read back")
		}
		raw, err := patchJSON(in.ContentType, in.RawBody)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		if s.vault == nil {
			return nil, toProblem(ctx, noVault())
		}
		meta, values, err := splitSecretPatch(raw)
		if err != nil {
			return nil, s.refuse(ctx, a, pgstore.VerbPatch, "Secret", in.Name, err)
		}
		ctx, span := s.tracer().Start(ctx, "secret.patch", trace.WithAttributes(attribute.String("atoll.secret", in.Name)))
		defer span.End()
		schema := hapi.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[api.Secret](), true, "")
		apply := func(doc []byte) ([]byte, error) {
			out, err := api.MergePatch(doc, meta)
			if err != nil {
				return nil, bodyProblem(http.StatusBadRequest, api.CodeBadRequest, err.Error())
			}
			return out, nil
		}
		var rec *pgstore.Record
		var data api.DataSpec
		changed := false
		err = s.store.WriteTx(ctx, a, pgstore.VerbPatch, "Secret", in.Name, func(tx *pgstore.Tx) (err error) {
			changed = false
			if !values.empty() {
				tx.AuditOn(values.String()) // the secret's audit row: keys, never values
			}
			rec, err = tx.Mutate(ctx, pgstore.VerbPatch, "Secret", in.Name, func(cur *pgstore.Record) error {
				obj, err := applyPatch[api.Secret](hapi, schema, cur, apply)
				if err != nil {
					return err
				}
				var st api.DataStatus
				_ = json.Unmarshal(cur.Status, &st)
				if !values.empty() {
					old, err := s.vault.ReadTx(ctx, tx, cur.Meta.UID)
					if err != nil && api.ErrorCode(err) != api.CodeNotFound {
						return err
					}
					data = values.apply(old)
					full := *obj
					full.Spec.Data, full.Spec.BinaryData = data.Data, data.BinaryData
					if fe := full.Validate(); fe != nil {
						return fe
					}
					if changed = err != nil || !secrets.Equal(old, data); changed {
						st = api.DataStatus{Keys: data.Describe(), Version: st.Version + 1}
					}
				} else if fe := obj.Validate(); fe != nil {
					return fe
				}
				obj.Spec = api.DataSpec{Residency: obj.Spec.Residency} // the values go to the vault alone
				setUserFields(cur, recordOf("Secret", obj))
				cur.Status, _ = json.Marshal(st)
				return nil
			})
			tx.AuditOn("")
			if err != nil || !changed {
				return err
			}
			return s.secretValuesChanged(ctx, tx, rec, data)
		})
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		span.SetAttributes(attribute.String("atoll.resource_version", rec.Meta.ResourceVersion), attribute.Bool("atoll.values_changed", changed))
		return answer[api.Secret](ctx, rec)
	})
}

// valuesPatch is what a secret's merge patch does to its values, key by
// key: set (a string; text in data, base64 in binaryData) or remove
// (nil), each map wholly removed when the patch nulls it.
type valuesPatch struct {
	data, binary         map[string]*string
	dropData, dropBinary bool
}

func (v valuesPatch) empty() bool {
	return len(v.data) == 0 && len(v.binary) == 0 && !v.dropData && !v.dropBinary
}

// String names the keys the patch sets and removes, never a value (the
// audit row's detail).
func (v valuesPatch) String() string {
	var set, removed []string
	for _, m := range []map[string]*string{v.data, v.binary} {
		for k, val := range m {
			if val == nil {
				removed = append(removed, k)
			} else {
				set = append(set, k)
			}
		}
	}
	sort.Strings(set)
	sort.Strings(removed)
	out := fmt.Sprintf("values: set %v, removed %v", set, removed)
	if v.dropData {
		out += ", every text key removed"
	}
	if v.dropBinary {
		out += ", every binary key removed"
	}
	return out
}

// apply is old with the patch applied: a key set in one map leaves the
// other.
func (v valuesPatch) apply(old api.DataSpec) api.DataSpec {
	out := api.DataSpec{Data: maps.Clone(old.Data), BinaryData: maps.Clone(old.BinaryData)}
	if v.dropData {
		out.Data = nil
	}
	if v.dropBinary {
		out.BinaryData = nil
	}
	set := func(dst *map[string]string, other map[string]string, k string, val *string) {
		delete(other, k)
		if val == nil {
			delete(*dst, k)
			return
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[k] = *val
	}
	for k, val := range v.data {
		set(&out.Data, out.BinaryData, k, val)
	}
	for k, val := range v.binary {
		set(&out.BinaryData, out.Data, k, val)
	}
	if len(out.Data) == 0 {
		out.Data = nil
	}
	if len(out.BinaryData) == 0 {
		out.BinaryData = nil
	}
	return out
}

// splitSecretPatch takes spec.data and spec.binaryData out of a secret's
// merge patch: the rest applies to the object as stored (which holds no
// values), they to the values in the vault.
func splitSecretPatch(raw []byte) ([]byte, valuesPatch, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, valuesPatch{}, api.FieldErrors{{Field: "body", Message: "a merge patch is a JSON object"}}
	}
	var v valuesPatch
	spec, isObject := doc["spec"].(map[string]any)
	if !isObject {
		return raw, v, nil
	}
	var fe api.FieldErrors
	take := func(field string, into *map[string]*string, drop *bool) {
		val, ok := spec[field]
		if !ok {
			return
		}
		delete(spec, field)
		if val == nil {
			*drop = true
			return
		}
		m, ok := val.(map[string]any)
		if !ok {
			fe = append(fe, api.FieldError{Field: "spec." + field, Message: "must be an object of keys (a string sets one, null removes it)"})
			return
		}
		*into = map[string]*string{}
		for k, x := range m {
			switch x := x.(type) {
			case nil:
				(*into)[k] = nil
			case string:
				(*into)[k] = &x
			default:
				fe = append(fe, api.FieldError{Field: "spec." + field + "[" + k + "]", Message: "must be a string (sets the key) or null (removes it)"})
			}
		}
	}
	take("data", &v.data, &v.dropData)
	take("binaryData", &v.binary, &v.dropBinary)
	if len(fe) > 0 {
		sort.Slice(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
		return nil, valuesPatch{}, fe
	}
	out, err := json.Marshal(doc)
	return out, v, err
}
