package explain

import (
	"strings"
	"testing"
)

const doc = `{"info":{"version":"v1.2.3"},
"paths":{"/api/v1/things":{"get":{},"post":{}},"/api/v1/things/{name}":{"get":{},"delete":{}},"/api/v1/watch/things":{"get":{}}},
"components":{"schemas":{
 "Thing":{"type":"object","required":["spec"],"properties":{
   "spec":{"$ref":"#/components/schemas/ThingSpec"},
   "status":{"$ref":"#/components/schemas/ThingStatus","readOnly":true}}},
 "ThingSpec":{"type":"object","description":"What a thing should be.","required":["size"],"properties":{
   "size":{"type":"integer","description":"How big."},
   "tags":{"type":["array","null"],"items":{"$ref":"#/components/schemas/Tag"}},
   "env":{"type":"object","additionalProperties":{"type":"string"}},
   "mode":{"type":"string","enum":["a","b"],"description":"The mode."}}},
 "Tag":{"type":"object","properties":{"key":{"type":"string","description":"The key."}}},
 "ThingStatus":{"type":"object","properties":{}}}}}`

func TestExplain(t *testing.T) {
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Explain("Thing", "x/v1", []string{"spec"})
	if err != nil {
		t.Fatal(err)
	}
	want := `KIND:     Thing
VERSION:  x/v1

FIELD:    spec <ThingSpec> -required-

DESCRIPTION:
     What a thing should be.

FIELDS:
   env	<map[string]string>

   mode	<string>
     The mode.

   size	<integer> -required-
     How big.

   tags	<[]Tag>
`
	if got != want {
		t.Fatalf("want\n%s\ngot\n%s", want, got)
	}
	if got, err := d.Explain("Thing", "x/v1", []string{"spec", "tags", "key"}); err != nil || !strings.Contains(got, "FIELD:    key <string>\n") {
		t.Fatalf("a field through a list: got %q, %v", got, err)
	}
	if got, _ := d.Explain("Thing", "x/v1", []string{"spec", "mode"}); !strings.Contains(got, "One of: a, b.") {
		t.Fatalf("want an enum's values; got %q", got)
	}
	if _, err := d.Explain("Thing", "x/v1", []string{"spec", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope" does not exist in Thing.spec`) {
		t.Fatalf("want an unknown field refused; got %v", err)
	}
	if v := strings.Join(d.Verbs("things"), ","); v != "create,delete,get,list,watch" {
		t.Fatalf("verbs: got %s", v)
	}
}
