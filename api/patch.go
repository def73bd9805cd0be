package api

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MergePatch applies an RFC 7386 JSON merge patch to a JSON document:
// objects merge key by key, null removes a key, anything else replaces.
func MergePatch(doc, patch []byte) ([]byte, error) {
	var d, p any
	if err := unmarshalNumbers(doc, &d); err != nil {
		return nil, fmt.Errorf("merge patch: document: %w", err)
	}
	if err := unmarshalNumbers(patch, &p); err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return json.Marshal(mergeValue(d, p))
}

// unmarshalNumbers is json.Unmarshal keeping numbers as json.Number, so
// that fields the patch leaves alone keep every digit (float64 would round
// integers above 2^53).
func unmarshalNumbers(data []byte, v any) error {
	if !json.Valid(data) {
		return json.Unmarshal(data, v) // for its error message
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func mergeValue(doc, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	dm, ok := doc.(map[string]any)
	if !ok {
		dm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(dm, k)
			continue
		}
		dm[k] = mergeValue(dm[k], v)
	}
	return dm
}
