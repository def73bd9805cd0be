package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Services print their workload, ports and live endpoints.
func init() {
	printers["Service"] = printer{
		headers:     []string{"NAME", "WORKLOAD", "PORTS", "ENDPOINTS", "CLUSTERS", "AGE"},
		wideHeaders: []string{"HOSTNAMES", "FAILOVER"},
		row: func(raw json.RawMessage, now time.Time, wide bool) []string {
			var s api.Service
			_ = json.Unmarshal(raw, &s)
			ports := make([]string, len(s.Spec.Ports))
			for i, p := range s.Spec.Ports {
				ports[i] = p.Name + "/" + cmpOr(p.Protocol, "http")
				if p.Port != 0 {
					ports[i] += fmt.Sprintf(":%d", p.Port)
				}
			}
			clusters := strings.Join(s.Status.Clusters, ",")
			cells := []string{s.Metadata.Name, s.Spec.Workload, strings.Join(ports, ","), fmt.Sprint(s.Status.Endpoints), cmpOr(clusters, "<none>"), age(s.Metadata.CreationTimestamp, now)}
			if wide {
				failover := "<none>"
				switch l := s.Spec.Locality; {
				case l.Nearest():
					failover = "nearest"
				case l != nil && len(l.Failover) > 0:
					failover = strings.Join(l.Failover, ">")
				}
				cells = append(cells, strings.Join(s.Names(), ","), failover)
			}
			return cells
		},
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
