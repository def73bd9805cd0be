package httpapi

import (
	"maps"
	"strings"
)

// huma's validator builds an error's location by pushing each map key on
// a path and popping back to the last '.' or '[' afterwards, so a key
// holding one (a label such as app.kubernetes.io/name) leaves part of
// itself behind, and every error found after it gets a wrong location
// (body.metadata.labels.spec.replicas). The hub therefore validates a
// value whose keys have those characters escaped (escapeKeys), and turns
// the locations back (unescapeLocation) before answering. The object the
// handler gets is decoded again from the body as sent.

var (
	keyEscaper   = strings.NewReplacer("%", "%25", ".", "%2E", "[", "%5B")
	keyUnescaper = strings.NewReplacer("%25", "%", "%2E", ".", "%5B", "[")
)

// escapeKeys escapes '%', '.' and '[' in the object keys of v, a freshly
// decoded JSON value used only for validation, in place.
func escapeKeys(v any) {
	switch x := v.(type) {
	case map[string]any:
		// Every key to rename is taken out before any escaped one goes
		// in: "a.b" escapes to a key that may be sent too ("a%2Eb", itself
		// renamed), and one at a time the first would overwrite it.
		renamed := map[string]any{}
		for k, e := range x {
			escapeKeys(e)
			if strings.ContainsAny(k, "%.[") {
				renamed[keyEscaper.Replace(k)] = e
				delete(x, k)
			}
		}
		maps.Copy(x, renamed) // escaped keys hold '%', the ones left none: no clash
	case []any:
		for _, e := range x {
			escapeKeys(e)
		}
	}
}

// unescapeLocation turns a location found in an escaped value back into
// the keys as sent.
func unescapeLocation(loc string) string {
	if !strings.Contains(loc, "%") {
		return loc
	}
	return keyUnescaper.Replace(loc)
}
