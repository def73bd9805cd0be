package describe

import (
	"fmt"
	"io"
	"strconv"

	"github.com/atollhq/atoll/api"
)

// Traffic writes a service's traffic through the gateways under
// "Traffic (last W):": the total, a row per region of the endpoints that
// answered and, during a rollout, per region and revision.
func Traffic(out io.Writer, t *api.ServiceTraffic) error {
	d := newDoc(out)
	d.head(0, "Traffic (last "+string(t.Window)+", through every gateway)")
	if t.Total.Requests == 0 {
		d.line(1, "<no request>")
		return d.flush()
	}
	headers := []string{"REGION", "REQUESTS", "PER SECOND", "ERRORS", "ERROR RATIO", "P50", "P99"}
	rows := [][]string{}
	for _, r := range t.Regions {
		rows = append(rows, trafficCells(r.Region, r))
	}
	rows = append(rows, trafficCells("(all)", t.Total))
	d.table(1, headers, rows)
	if len(t.Revisions) > 0 {
		d.head(0, "Traffic per revision")
		rows = rows[:0]
		for _, r := range t.Revisions {
			rev := "unknown"
			if r.Revision > 0 {
				rev = strconv.FormatInt(r.Revision, 10)
			}
			rows = append(rows, append([]string{r.Region, rev}, trafficCells("", r)[1:]...))
		}
		d.table(1, append([]string{"REGION", "REVISION"}, headers[1:]...), rows)
	}
	return d.flush()
}

func trafficCells(region string, r api.TrafficRow) []string {
	return []string{region, strconv.FormatUint(r.Requests, 10), strconv.FormatFloat(r.RequestsPerSecond, 'f', 1, 64), strconv.FormatUint(r.Errors, 10),
		strconv.FormatFloat(r.ErrorRatio*100, 'f', 2, 64) + "%", fmt.Sprintf("%.1fms", r.P50Millis), fmt.Sprintf("%.1fms", r.P99Millis)}
}
