package apply

import "testing"

func TestDiff(t *testing.T) {
	live := []byte(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"w","uid":"u1","resourceVersion":"5","generation":2,"creationTimestamp":"2026-01-01T00:00:00Z"},"spec":{"replicas":2},"status":{"readyReplicas":2}}`)
	same := []byte(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"w","uid":"u1","resourceVersion":"9","generation":2,"creationTimestamp":"2026-01-01T00:00:00Z"},"spec":{"replicas":2},"status":{"readyReplicas":0}}`)
	if d, err := Diff("workload/w", live, same); err != nil || d != "" {
		t.Fatalf("want no diff when only status and versions differ; got %q, %v", d, err)
	}
	changed := []byte(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"w","generation":3},"spec":{"replicas":3}}`)
	d, err := Diff("workload/w", live, changed)
	if err != nil {
		t.Fatal(err)
	}
	want := `--- live/workload/w
+++ applied/workload/w
@@ -3,4 +3,4 @@
 metadata:
   name: w
 spec:
-  replicas: 2
+  replicas: 3
`
	if d != want {
		t.Fatalf("want\n%s\ngot\n%s", want, d)
	}
	if d, err := Diff("workload/w", nil, nil); err != nil || d != "" {
		t.Fatalf("two absent objects: want no diff; got %q, %v", d, err)
	}
}
