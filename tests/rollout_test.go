//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// followTimeout bounds one `atoll rollout status` that must finish.
const followTimeout = 90 * time.Second

// rolloutWorkload is a workload of sim replicas over the three dev
// regions, rolled one replica at a time (maxSurge 1, maxUnavailable 0),
// each new replica taking latency to be ready; failing makes every start
// fail, and the update then gives up after 3 s without progress (60 s
// otherwise: a busy machine must not stall a good rollout).
func rolloutWorkload(name, cause string, replicas int, latency string, failing bool) string {
	failure, deadline := "", "60s"
	if failing {
		failure, deadline = ", failureRate: 1", "3s"
	}
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: %s
  annotations: {atoll.dev/change-cause: %q}
spec:
  replicas: %d
  template:
    driver: sim
    sim: {startLatency: %s%s}
    resources: {cpu: 10m, memory: 8Mi}
  placement:
    clusterSelector:
      matchExpressions:
      - {key: region, operator: In, values: [us-east, eu-west, ap-south]}
  update: {maxSurge: 1, maxUnavailable: 0, progressDeadline: %s}
`, name, cause, replicas, latency, failure, deadline)
}

// TestRolloutCLI drives scale and rollout status|restart|history|undo with
// the built binary against atoll dev's real members and sim nodes.
func TestRolloutCLI(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	name := uniqueName("roll")
	d.mustAtoll(t, rolloutWorkload(name, "first", 3, "1s", false), "apply", "-f", "-")

	status := func(args ...string) cliResult {
		t.Helper()
		return d.atollWithin(t, followTimeout+10*time.Second, nil, "", append([]string{"rollout", "status", "workload", name, "--timeout", followTimeout.String()}, args...)...)
	}
	done := fmt.Sprintf("workload %q successfully rolled out", name)
	if r := status(); r.code != 0 || !hasLine(r.stdout, done) {
		t.Fatalf("want the first rollout followed to its end (exit 0, %q); got %s", done, r)
	}

	// scale, with a precondition that fails, then one that holds.
	r := d.atoll(t, nil, "", "scale", "workload", name, "--replicas", "4", "--current-replicas", "2")
	if r.code == 0 || !strings.Contains(r.stderr, "has 3 replicas, not 2") || !strings.Contains(r.stderr, "Conflict") {
		t.Errorf("want scale with a wrong --current-replicas refused with a Conflict naming the count; got %s", r)
	}
	if w, _, _ := d.getWorkload(name); w.Spec.Replicas != 3 {
		t.Errorf("want the refused scale to change nothing; replicas are %d", w.Spec.Replicas)
	}
	if r := d.mustAtoll(t, "", "scale", "workload", name, "--replicas", "4", "--current-replicas", "3"); !hasLine(r.stdout, "workload/"+name+" scaled") {
		t.Errorf("want `workload/%s scaled`; got %s", name, r)
	}
	if r := status(); r.code != 0 || !hasLine(r.stdout, done) {
		t.Fatalf("want the scale followed to its end; got %s", r)
	}
	if r := d.mustAtoll(t, "", "rollout", "status", "workload", name, "--watch=false"); strings.TrimSpace(r.stdout) != done {
		t.Errorf("want one look with --watch=false to say %q; got %s", done, r)
	}
	before, _, _ := d.getWorkload(name)
	if before.Spec.Replicas != 4 || before.Status.ReadyReplicas != 4 {
		t.Fatalf("want 4 replicas, 4 ready after the scale; got %d, %d ready", before.Spec.Replicas, before.Status.ReadyReplicas)
	}

	// restart: a new template, so every cluster replaces every replica
	// one at a time; status prints the progress as it changes.
	if r := d.mustAtoll(t, "", "rollout", "restart", "workload", name); !hasLine(r.stdout, "workload/"+name+" restarted") {
		t.Errorf("want `workload/%s restarted`; got %s", name, r)
	}
	r = status()
	if r.code != 0 || !hasLine(r.stdout, done) || !strings.Contains(r.stdout, "Waiting for workload") {
		t.Fatalf("want the restart followed with progress lines to its end; got %s", r)
	}
	t.Logf("atoll rollout status after a restart:\n%s", r.stdout)
	after, _, _ := d.getWorkload(name)
	if after.Spec.Template.Annotations[api.AnnotationRestartedAt] == "" || after.Metadata.Generation <= before.Metadata.Generation ||
		after.Status.ObservedGeneration != after.Metadata.Generation || after.Status.UpdatedReplicas != 4 || after.Status.ReadyReplicas != 4 {
		t.Errorf("want the restarted template, every cluster on the new generation with 4 updated ready replicas; got %+v / %+v", after.Metadata, after.Status)
	}

	// history: the create and the restart (the scale kept the template).
	r = d.mustAtoll(t, "", "rollout", "history", "workload", name)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "1 ") || !strings.Contains(lines[2], "first") ||
		!strings.HasPrefix(lines[3], "2 ") || !strings.Contains(lines[3], "atoll rollout restart") || !strings.Contains(lines[3], "token:") {
		t.Errorf("want a header and revisions 1 (first) and 2 (atoll rollout restart) with their actor; got %s", r)
	}
	if r := d.mustAtoll(t, "", "rollout", "history", "wl/"+name, "--revision", "2"); !strings.Contains(r.stdout, api.AnnotationRestartedAt) {
		t.Errorf("want revision 2's template with its restartedAt; got %s", r)
	}

	// undo: back to revision 1's template, recorded as revision 3.
	if r := d.mustAtoll(t, "", "rollout", "undo", "workload", name); !hasLine(r.stdout, "workload/"+name+" rolled back to revision 1") {
		t.Errorf("want `rolled back to revision 1`; got %s", r)
	}
	if r := status(); r.code != 0 || !hasLine(r.stdout, done) {
		t.Fatalf("want the undo followed to its end; got %s", r)
	}
	w, _, _ := d.getWorkload(name)
	if len(w.Spec.Template.Annotations) != 0 || w.Spec.Replicas != 4 {
		t.Errorf("want revision 1's template (no annotations) and the replicas kept; got %+v", w.Spec)
	}
	r = d.mustAtoll(t, "", "rollout", "undo", "workload", name, "--to-revision", "1")
	if !strings.Contains(r.stdout, "skipped rollback") {
		t.Errorf("want an undo to the template it has skipped; got %s", r)
	}
	var revs api.RevisionList
	if status, body, err := d.request("GET", "/api/v1/workloads/"+name+"/revisions", d.token, nil); err != nil || status != 200 || json.Unmarshal(body, &revs) != nil ||
		len(revs.Items) != 3 || revs.Items[2].TemplateHash != revs.Items[0].TemplateHash || revs.Items[2].ChangeCause != "atoll rollout undo --to-revision 1" {
		t.Errorf("want 3 revisions, the third revision 1's template with the undo as its cause; got %d %s (%v)", status, body, err)
	}

	// Every change was an ordinary, audited write: the scale and the
	// restart merge patches, the undo an update.
	var audit struct {
		Items []struct{ Verb, Result string } `json:"items"`
	}
	if status, body, err := d.request("GET", "/api/v1/audit?kind=Workload&name="+name, d.token, nil); err != nil || status != 200 || json.Unmarshal(body, &audit) != nil {
		t.Fatalf("want the audit log; got %d %s (%v)", status, body, err)
	}
	verbs := map[string]int{}
	for _, a := range audit.Items {
		if a.Result == "ok" {
			verbs[a.Verb]++
		}
	}
	if verbs["patch"] < 2 || verbs["update"] < 1 {
		t.Errorf("want the scale and restart audited as patches and the undo as an update; got %v", verbs)
	}

	// Refusals: one line, non-zero, nothing changed.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "undo", "workload", name, "--to-revision", "99"}, "no revision 99"},
		{[]string{"rollout", "undo", "workload", "no-such-workload"}, "not found"},
		{[]string{"rollout", "status", "token", name}, "only workloads"},
		{[]string{"rollout", "status", name}, "name the workload as workload NAME or workload/NAME"},
		{[]string{"scale", "workload", name, "--replicas", "-1"}, "must be 0 or more"},
		{[]string{"scale", "workload", name}, "--replicas is required"},
		{[]string{"rollout", "status", "workload", name, "--timeout", "-1s"}, "must not be negative"},
		{[]string{"rollout", "history", "workload", name, "--revision", "99"}, "no revision 99"},
	} {
		if r := d.atoll(t, nil, "", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want %q refused saying %q; got %s", strings.Join(c.args, " "), c.want, r)
		}
	}

	// A template whose replicas never start: the members stop after the
	// progress deadline (Progressing=False), and status exits non-zero
	// with their reason.
	d.mustAtoll(t, rolloutWorkload(name, "broken", 4, "100ms", true), "apply", "-f", "-")
	r = status()
	if r.code == 0 || !strings.Contains(r.stderr, "rollout stalled") || !strings.Contains(r.stderr, "ProgressDeadlineExceeded") {
		t.Errorf("want status of a stalled rollout to exit non-zero with the members' reason; got %s", r)
	}
	// Undo returns to the good template, and it rolls out again (with
	// the generous deadline back first).
	if status, body, err := d.request("PATCH", "/api/v1/workloads/"+name, d.token, []byte(`{"spec":{"update":{"progressDeadline":"60s"}}}`)); err != nil || status != 200 {
		t.Fatalf("want the progress deadline patched back; got %d %s (%v)", status, body, err)
	}
	d.mustAtoll(t, "", "rollout", "undo", "workload", name)
	if r := status(); r.code != 0 || !hasLine(r.stdout, done) {
		t.Fatalf("want the undo of the stalled rollout to finish; got %s", r)
	}

	// --timeout: a rollout that cannot finish (no node has the label) but
	// does not stall either.
	stuck := uniqueName("roll-stuck")
	d.mustAtoll(t, strings.Replace(rolloutWorkload(stuck, "", 1, "100ms", false), "    driver: sim\n", "    driver: sim\n    nodeSelector: {no-such-label: x}\n", 1), "apply", "-f", "-")
	r = d.atollWithin(t, 30*time.Second, nil, "", "rollout", "status", "workload", stuck, "--timeout", "3s")
	if r.code == 0 || !strings.Contains(r.stderr, "timed out after 3s") {
		t.Errorf("want status to give up after --timeout; got %s", r)
	}
	d.mustAtoll(t, "", "delete", "workload", stuck)
	d.mustAtoll(t, "", "delete", "workload", name)
}
