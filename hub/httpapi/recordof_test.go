package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestRecordOfSpecAlone: the spec recordOf renders alone is, byte for
// byte, the spec as it appears inside the whole object rendered (what
// recordOf stored before it rendered the spec alone), for every kind
// with a spec, empty and filled (HTML-escaped characters included).
func TestRecordOfSpecAlone(t *testing.T) {
	filled := map[string]string{
		"Workload": `{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"replicas":3,"template":{"driver":"process","command":"/bin/sh","args":["-c","echo <a & b> é\u2028"],"env":[{"name":"X","value":"<y>"}]},"placement":{"clusterSelector":{"matchLabels":{"region":"eu"}}}}}`,
		"Service":  `{"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80}]}}`,
		"Drill":    `{"metadata":{"name":"d"},"spec":{"type":"region-loss"}}`,
		"Cluster":  `{"metadata":{"name":"eu"},"spec":{"region":"eu","labels":{"a":"b"}}}`,
	}
	checked := 0
	for _, k := range api.Kinds {
		if k.Inline {
			continue
		}
		for _, doc := range []string{"{}", filled[k.Name]} {
			if doc == "" {
				continue
			}
			obj := k.New()
			if err := json.Unmarshal([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %v", k.Name, err)
			}
			whole, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			var parts struct {
				Spec json.RawMessage `json:"spec"`
			}
			if err := json.Unmarshal(whole, &parts); err != nil {
				t.Fatal(err)
			}
			if _, ok := specField(obj); !ok && parts.Spec != nil {
				t.Errorf("%s: specField found no spec field; the whole object has one", k.Name)
			}
			got := recordOf(k.Name, obj).Spec
			if !bytes.Equal(got, parts.Spec) {
				t.Errorf("%s from %s: recordOf's spec\n%s\nwant the whole object's\n%s", k.Name, doc, got, parts.Spec)
			}
			checked++
		}
	}
	if checked < 8 {
		t.Errorf("checked %d objects; want every kind with a spec, empty and filled", checked)
	}
}
