package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Pin is the pgstore.SpecPrepare of workloads: it sets, on the template,
// api.AnnotationData, the newest versions of the Configs and Secrets the
// workload references (its overrides' included), so that the template,
// and with it each revision, names the values its replicas get. A
// workload without references carries none (a value a client sent is
// dropped: the hub alone sets it). A reference to an object that does not
// exist pins nothing (CheckReferences refuses it).
func Pin(ctx context.Context, tx *pgstore.Tx, next *pgstore.Record) error {
	var spec api.WorkloadSpec
	if err := json.Unmarshal(next.Spec, &spec); err != nil {
		return fmt.Errorf("pin data versions of workload %s: %w", next.Meta.Name, err)
	}
	pins := map[string]int64{}
	for _, r := range spec.DataRefs() {
		id := r.Kind + "/" + r.Name
		if _, ok := pins[id]; ok {
			continue
		}
		v, ok, err := tx.DataVersion(ctx, r.Kind, r.Name)
		if err != nil {
			return fmt.Errorf("pin data versions of workload %s: %w", next.Meta.Name, err)
		}
		if ok {
			pins[id] = v
		}
	}
	want := api.FormatDataPins(pins)
	if spec.Template.Annotations[api.AnnotationData] == want {
		return nil
	}
	// Change the one annotation in the document as stored, leaving every
	// other field as the client wrote it.
	var doc map[string]any
	if err := json.Unmarshal(next.Spec, &doc); err != nil {
		return err
	}
	tmpl, _ := doc["template"].(map[string]any)
	if tmpl == nil {
		tmpl = map[string]any{}
		doc["template"] = tmpl
	}
	ann, _ := tmpl["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	if want == "" {
		delete(ann, api.AnnotationData)
	} else {
		ann[api.AnnotationData] = want
	}
	if len(ann) == 0 {
		delete(tmpl, "annotations")
	} else {
		tmpl["annotations"] = ann
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	next.Spec = b
	return nil
}

// Repin writes again, in tx, every workload that references the Config or
// Secret kind/name, so that each pins the values' newest version: for
// those whose pin moves, a new template, a new revision whose change
// cause is cause ("secret db v7"), rolled out as any template change (by
// spec.rollout's waves when it has one). It says how many workloads got a
// new revision. Workloads being deleted are left alone.
//
// The workloads are written in one batch (pgstore.Batch): their rows
// locked in one statement, the values' version read once, their newest
// revisions read ahead in one statement, the rows written in one round
// trip and their TemplateChanged events in one more before COMMIT, so a
// secret used by a hundred workloads costs a handful of round trips, not
// a few hundred.
func Repin(ctx context.Context, tx *pgstore.Tx, kind, name, cause string) (int, error) {
	recs, err := tx.List(ctx, "Workload")
	if err != nil {
		return 0, fmt.Errorf("workloads using %s %s: %w", kind, name, err)
	}
	var names []string
	for _, rec := range recs {
		if rec.Meta.DeletionTimestamp == nil && references(rec, kind, name) {
			names = append(names, rec.Meta.Name)
		}
	}
	if len(names) == 0 {
		return 0, nil
	}
	locked, err := tx.LockAll(ctx, "Workload", names)
	if err != nil {
		return 0, fmt.Errorf("lock the workloads using %s %s: %w", kind, name, err)
	}
	uids := make([]string, 0, len(locked))
	for _, rec := range locked {
		uids = append(uids, rec.Meta.UID)
	}
	if err := tx.LatestRevisions(ctx, uids); err != nil {
		return 0, fmt.Errorf("read the revisions of the workloads using %s %s: %w", kind, name, err)
	}
	b := tx.Batch()
	n := 0
	for _, wl := range names { // name order, as LockAll locked them
		rec, ok := locked[wl]
		// Read again under the lock: it may have changed or gone since.
		if !ok || rec.Meta.DeletionTimestamp != nil || !references(rec, kind, name) {
			continue
		}
		out, err := b.Refresh(ctx, pgstore.VerbUpdate, rec, cause)
		if err != nil {
			return 0, fmt.Errorf("roll workload %s to the new values of %s %s: %w", rec.Meta.Name, kind, name, err)
		}
		if out.Meta.Generation != rec.Meta.Generation {
			n++
		}
	}
	if err := b.Send(ctx); err != nil {
		return 0, fmt.Errorf("roll the workloads using %s %s to its new values: %w", kind, name, err)
	}
	return n, nil
}

// references says whether a workload's spec names kind/name.
func references(rec *pgstore.Record, kind, name string) bool {
	var spec api.WorkloadSpec
	if json.Unmarshal(rec.Spec, &spec) != nil {
		return false
	}
	for _, r := range spec.DataRefs() {
		if r.Kind == kind && r.Name == name {
			return true
		}
	}
	return false
}

// KeepConfig is the pgstore.SpecHook of Configs: every creation or change
// of a config's spec keeps its values at the write's resourceVersion (a
// revision may pin them after the config moved on) and rolls the
// workloads that use it (Repin, cause "config NAME vGENERATION").
func KeepConfig(ctx context.Context, tx *pgstore.Tx, _, next *pgstore.Record) error {
	rv, err := strconv.ParseInt(next.Meta.ResourceVersion, 10, 64)
	if err != nil {
		return fmt.Errorf("keep config %s: resourceVersion %q", next.Meta.Name, next.Meta.ResourceVersion)
	}
	if err := tx.PutConfigValue(ctx, next.Meta.UID, rv, next.Spec); err != nil {
		return fmt.Errorf("keep config %s: %w", next.Meta.Name, err)
	}
	_, err = Repin(ctx, tx, "Config", next.Meta.Name, fmt.Sprintf("config %s v%d", next.Meta.Name, next.Meta.Generation))
	return err
}
