package httpapi

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/danielgtaylor/huma/v2"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
)

// What reading a request body may cost. A body is read whole, up to its
// route's limit, and only once its caller is authenticated (huma runs
// authMiddleware before it reads the body). Decoding then costs far more
// than the bytes: huma decodes every body twice (into a generic value to
// check it against the schema, then into its type), and the generic form
// takes about 100 bytes per value. These limits keep the worst body of
// each format to a small multiple of maxBody (BENCHMARKS.md has the
// figures).
const (
	// maxBody is the largest request body the API reads: 1 MiB (huma
	// refuses a body that reaches its limit, hence the +1).
	maxBody = 1<<20 + 1
	// maxYAMLBody is the largest YAML body: the YAML parser allocates
	// about 150 bytes per byte of a dense document, twice, so 1 MiB of it
	// would cost 300 MiB. Manifests are a few KiB; larger objects go as
	// JSON (atoll apply always sends JSON).
	maxYAMLBody = 32 << 10
	// maxBodyTokens bounds the values (counted as the JSON punctuation
	// that separates them) of a JSON body: half a million numbers fit in
	// 1 MiB and would cost 50 MiB to decode.
	maxBodyTokens = 100_000
)

// jsonFormat reads JSON bodies after checking what decoding them would
// cost.
var jsonFormat = huma.Format{
	Marshal: huma.DefaultJSONFormat.Marshal,
	Unmarshal: func(data []byte, v any) error {
		if err := checkJSONCost(data); err != nil {
			return err
		}
		return unmarshalForValidation(data, v)
	},
}

// unmarshalForValidation decodes data into v, escaping the keys of the
// generic value huma decodes only to validate (see escapeKeys).
func unmarshalForValidation(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	if g, ok := v.(*any); ok {
		escapeKeys(*g)
	}
	return nil
}

// yamlFormat reads YAML request bodies (through JSON, so the schema and
// field names are the JSON ones) and writes YAML when asked to.
var yamlFormat = huma.Format{
	Marshal: func(w io.Writer, v any) error {
		js, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	},
	Unmarshal: func(data []byte, v any) error {
		js, err := yamlToJSON(data)
		if err != nil {
			return err
		}
		return unmarshalForValidation(js, v)
	},
}

// yamlToJSON converts a YAML body within maxYAMLBody (aliases are bounded
// by api.YAMLToJSON).
func yamlToJSON(data []byte) ([]byte, error) {
	if len(data) > maxYAMLBody {
		return nil, fmt.Errorf("a YAML body may be at most %d KiB, this one is %d KiB: send it as JSON (application/json), up to 1 MiB", maxYAMLBody>>10, len(data)>>10)
	}
	return api.YAMLToJSON(data)
}

// checkJSONCost refuses a JSON body with more than maxBodyTokens values
// before it is decoded. It counts the punctuation outside strings ({, [,
// : and ,): about one per value.
func checkJSONCost(data []byte) error {
	tokens, inString := 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[', ':', ',':
			tokens++
		}
	}
	if tokens > maxBodyTokens {
		return fmt.Errorf("the body holds more than %d values; split the object or trim its lists", maxBodyTokens)
	}
	return nil
}
