package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
)

// auditFlags are `atoll get audit`'s filters (admin): the hub's audit log,
// newest first.
type auditFlags struct {
	object, actor, verb, result, since string
	refused                            bool
	limit                              int
}

func (f *auditFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.object, "for", "", "get audit: only entries about KIND or KIND/NAME, e.g. cluster/us-east")
	fl.StringVar(&f.actor, "actor", "", "get audit: only this actor's entries, e.g. token:ops")
	fl.StringVar(&f.verb, "verb", "", "get audit: only this verb's entries, e.g. delete")
	fl.StringVar(&f.result, "result", "", "get audit: only entries with this result (ok, or a code such as Forbidden)")
	fl.BoolVar(&f.refused, "refused", false, "get audit: only refused requests")
	fl.StringVar(&f.since, "since", "", "get audit: only entries this recent (a duration such as 1h or 2d, or an RFC 3339 time)")
	fl.IntVar(&f.limit, "limit", 100, "get audit: at most this many entries")
}

// set says whether any audit filter was given (they are refused for other
// kinds).
func (f *auditFlags) set(cmd *cobra.Command) bool {
	for _, n := range []string{"for", "actor", "verb", "result", "refused", "since", "limit"} {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// query turns the filters into the audit route's parameters.
func (f *auditFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	if f.object != "" {
		kind, name, _ := strings.Cut(f.object, "/")
		k, err := kindArg(kind)
		if err != nil {
			return nil, fmt.Errorf("--for: %w", err)
		}
		q.Set("kind", k.Name)
		if name != "" {
			q.Set("name", name)
		}
	}
	for k, v := range map[string]string{"actor": f.actor, "verb": f.verb, "result": f.result} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.refused {
		if f.result != "" {
			return nil, errors.New("--refused and --result do not go together")
		}
		q.Set("result", "refused")
	}
	if f.since != "" {
		at, err := time.Parse(time.RFC3339, f.since)
		if err != nil {
			d, derr := api.ParseDuration(f.since)
			if derr != nil || d <= 0 {
				return nil, fmt.Errorf("--since: %q is neither a positive duration (1h, 2d) nor an RFC 3339 time", f.since)
			}
			at = now.Add(-d)
		}
		q.Set("since", at.UTC().Format(time.RFC3339))
	}
	if f.limit <= 0 || f.limit > 5000 {
		return nil, fmt.Errorf("--limit: %d is not between 1 and 5000", f.limit)
	}
	q.Set("limit", strconv.Itoa(f.limit))
	return q, nil
}

// auditTable renders audit entries.
var auditTable = output.Table{
	Headers:     []string{"TIME", "ACTOR", "VERB", "OBJECT", "RESULT"},
	WideHeaders: []string{"DETAIL", "REQUEST"},
	Row: func(raw json.RawMessage, wide bool) []string {
		var e struct {
			At        time.Time `json:"at"`
			Actor     string    `json:"actor"`
			Verb      string    `json:"verb"`
			Kind      string    `json:"kind"`
			Name      string    `json:"name"`
			Result    string    `json:"result"`
			Detail    string    `json:"detail"`
			RequestID string    `json:"requestId"`
		}
		_ = json.Unmarshal(raw, &e)
		obj := strings.ToLower(e.Kind)
		if e.Name != "" {
			obj += "/" + e.Name
		}
		row := []string{e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Verb, obj, e.Result}
		if wide {
			row = append(row, e.Detail, e.RequestID)
		}
		return row
	},
}
