package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
)

// checkInput runs after authentication and before huma decodes anything.
// It refuses parameters that are not text (400, located as
// "path.name" or "query.labelSelector"), then reads the body itself:
// within the route's limit and read timeout, so that a truncated or
// malformed body is a 400 (huma would answer 500); YAML is converted to
// JSON once, here (api.YAMLToJSON bounds its aliases); the JSON's values
// are counted before anything decodes them (checkJSONCost); and every
// string in it, keys included, must be text (api.TextProblem), or the
// answer is a 400 located at the string ("body.metadata.annotations.note").
// Huma then reads the checked JSON. Refusals are counted by reason.
func (s *API) checkInput(hapi huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		refuse := func(reason string, p *problem) {
			s.metrics.refused.Add(ctx.Context(), 1, metric.WithAttributes(attribute.String("reason", reason)))
			writeErr(hapi, ctx, toProblem(ctx.Context(), p))
		}
		op := ctx.Operation()
		for _, p := range op.Parameters {
			var v string
			switch p.In {
			case "path":
				v = ctx.Param(p.Name)
			case "query":
				v = ctx.Query(p.Name)
			case "header":
				v = ctx.Header(p.Name)
			default:
				continue
			}
			if msg := api.TextProblem(v, false); msg != "" {
				refuse("parameter", located(http.StatusBadRequest, api.CodeBadRequest, "invalid "+p.In+" parameter "+p.Name, p.In+"."+p.Name, msg))
				return
			}
		}
		u := ctx.URL()
		for k := range u.Query() {
			if msg := api.TextProblem(k, false); msg != "" {
				refuse("parameter", located(http.StatusBadRequest, api.CodeBadRequest, "invalid query parameter name", "query", "a parameter name "+msg))
				return
			}
		}
		if op.RequestBody == nil {
			next(ctx)
			return
		}
		r, _ := humachi.Unwrap(ctx)
		body, p := readBody(ctx, r, op)
		if p != nil {
			refuse("body_unreadable", p)
			return
		}
		setBody(r, body)
		if len(body) == 0 {
			next(ctx)
			return
		}
		switch mt := mediaType(ctx.Header("Content-Type")); {
		case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml":
			if jsonOnly, _ := op.Metadata["jsonOnly"].(bool); jsonOnly {
				next(ctx) // the handler answers 415
				return
			}
			js, err := yamlToJSON(body)
			if err != nil {
				refuse("yaml", located(http.StatusBadRequest, api.CodeBadRequest, "the body is not accepted as YAML", "body", err.Error()))
				return
			}
			body = js
			setBody(r, body)
			r.Header.Set("Content-Type", "application/json")
		case mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json"):
		default:
			next(ctx) // huma answers 415
			return
		}
		if err := checkJSONCost(body); err != nil {
			refuse("body_too_costly", located(http.StatusBadRequest, api.CodeBadRequest, "the body is too costly to read", "body", err.Error()))
			return
		}
		if !cleanJSONText(body) {
			loc, msg := findBadText(body)
			refuse("body_text", located(http.StatusBadRequest, api.CodeBadRequest, "the body holds a string that is not text", loc, msg))
			return
		}
		next(ctx)
	}
}

// setBody hands huma the body read.
func setBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
}

// bodyReadTimeout is how long a body may take to arrive (huma's default).
const bodyReadTimeout = 5 * time.Second

func located(status int, code, detail, location, msg string) *problem {
	p := newProblem(status, code, detail)
	p.Errors = []api.ProblemDetail{{Location: location, Message: msg}}
	return p
}

// readBody reads a request's body as huma would (up to the route's limit,
// within its read timeout), but answers a body that cannot be read
// (truncated, malformed chunks) with a 400.
func readBody(ctx huma.Context, r *http.Request, op *huma.Operation) ([]byte, *problem) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	_ = ctx.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	defer func() { _ = ctx.SetReadDeadline(time.Time{}) }() // the handler may take longer
	limit := cmp.Or(op.MaxBodyBytes, maxBody)
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength < limit {
		buf.Grow(int(r.ContentLength))
	}
	n, err := io.Copy(&buf, io.LimitReader(r.Body, limit))
	if n == limit {
		return nil, located(http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, fmt.Sprintf("request body is too large: the limit is %d bytes", limit-1), "body", "too large")
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, located(http.StatusRequestTimeout, api.CodeBadRequest, "the body did not arrive in time", "body", "read timed out")
		}
		if errors.Is(err, context.Canceled) {
			return nil, newProblem(499, api.CodeBadRequest, "request cancelled")
		}
		return nil, located(http.StatusBadRequest, api.CodeBadRequest, "the body could not be read", "body", err.Error())
	}
	return buf.Bytes(), nil
}

// cleanJSONText tells, without allocating, that every string of a JSON
// text is text: valid UTF-8, and no control character but tab, newline
// and carriage return, raw (DEL, C1) or escaped ("\u0000", "\b"). Raw C0
// characters are not JSON, which the decoder refuses later.
func cleanJSONText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch {
		case c == '"':
			inString = false
		case c == 0x7f, c == 0xc2 && i+1 < len(data) && data[i+1] >= 0x80 && data[i+1] <= 0x9f:
			return false
		case c == '\\' && i+1 < len(data):
			i++
			switch data[i] {
			case 'b', 'f':
				return false
			case 'u':
				if i+4 < len(data) {
					v, err := strconv.ParseUint(string(data[i+1:i+5]), 16, 16)
					if err == nil && api.TextProblem(string(rune(v)), true) != "" && (v < 0xd800 || v > 0xdfff) {
						return false
					}
					i += 4
				}
			}
		}
	}
	return true
}

// findBadText locates the first string of a JSON text that is not text,
// as huma locates fields ("body.spec.template.command[1]"; a bad key is
// located at its object). It decodes token by token: only bodies that
// cleanJSONText refused come here.
func findBadText(data []byte) (location, msg string) {
	badByte := -1
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				badByte = i
				break
			}
			i += size
		}
	}
	type frame struct {
		object  bool
		key     string
		index   int
		needKey bool
	}
	var stack []frame
	path := func(withLast bool) string {
		var b strings.Builder
		b.WriteString("body")
		for i, f := range stack {
			if i == len(stack)-1 && !withLast {
				break
			}
			if f.object {
				b.WriteString("." + f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.index)
			}
		}
		return b.String()
	}
	done := func() { // a value ended: move its container on
		if len(stack) == 0 {
			return
		}
		if f := &stack[len(stack)-1]; f.object {
			f.needKey = true
		} else {
			f.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			break
		}
		end := dec.InputOffset()
		invalid := badByte >= int(start) && badByte < int(end)
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, needKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			problem := api.TextProblem(t, true)
			if invalid {
				problem = "is not valid UTF-8"
			}
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].needKey {
				if problem != "" {
					return path(false), "a key " + problem
				}
				stack[len(stack)-1].key, stack[len(stack)-1].needKey = t, false
				continue
			}
			if problem != "" {
				return path(true), problem
			}
			done()
		default:
			done()
		}
	}
	if badByte >= 0 {
		return "body", fmt.Sprintf("is not valid UTF-8 (byte %d)", badByte)
	}
	return "body", "holds a control character"
}
