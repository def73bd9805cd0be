package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// askTimeout bounds how long a replicas or nodes request waits for each
// member: a cluster that does not answer is listed as unavailable.
const askTimeout = 4 * time.Second

type replicasInput struct {
	Workload string `query:"workload" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" doc:"Only this workload's replicas."`
	Cluster  string `query:"cluster" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" doc:"Only this cluster (default: every cluster)."`
	Node     string `query:"node" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" doc:"Only replicas on this node."`
	Limit    int    `query:"limit" minimum:"0" maximum:"1000" doc:"At most this many per cluster (default and maximum 1000)."`
}

type replicasOutput struct{ Body api.ReplicaInfoList }

type nodesInput struct {
	Cluster string `query:"cluster" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" doc:"Only this cluster (default: every cluster)."`
}

type nodesOutput struct{ Body api.NodeInfoList }

// registerReplicas serves the replicas and nodes members run now: the hub
// asks each member over NATS (protocol.ReplicasSubject, NodesSubject)
// rather than storing them, so the answer is live and the hub's database
// holds no per-replica rows. Viewers may read them.
func registerReplicas(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "list-replicas", Method: http.MethodGet, Path: "/api/v1/replicas",
		Summary: "List replicas as their members see them now", Tags: []string{"Workloads"}, Security: bearer,
		Metadata: opMeta(api.RoleViewer, "", "Workload"), Errors: []int{401, 403, 404, 422, 503},
	}, func(ctx context.Context, in *replicasInput) (*replicasOutput, error) {
		if in.Workload != "" {
			if _, err := s.store.Get(ctx, "Workload", in.Workload); err != nil {
				return nil, toProblem(ctx, err)
			}
		}
		clusters, err := s.askable(ctx, in.Cluster)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		q, _ := json.Marshal(protocol.ReplicasQuery{Version: protocol.Version, Workload: in.Workload, Node: in.Node, Limit: in.Limit})
		out := api.ReplicaInfoList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "ReplicaInfoList"}, Items: []api.ReplicaInfo{}}
		var mu sync.Mutex
		s.askMembers(ctx, "hub.list_replicas", clusters, protocol.ReplicasSubject, q, func(cluster string, data []byte) error {
			var l protocol.ReplicaList
			if err := json.Unmarshal(data, &l); err != nil {
				return fmt.Errorf("unreadable answer: %v", err)
			}
			if l.Error != "" {
				return errors.New(l.Error)
			}
			mu.Lock()
			defer mu.Unlock()
			out.Total += l.Total
			for _, r := range l.Replicas {
				ri := api.ReplicaInfo{Replica: r.Replica, Workload: r.Workload, Cluster: cluster, Node: r.Node, State: r.State, Restarts: r.Restarts,
					ExitCode: r.ExitCode, Reason: r.Reason, Message: r.Message}
				if !r.StartedAt.IsZero() {
					t := r.StartedAt.UTC()
					ri.StartedAt = &t
				}
				if !r.NextStartAt.IsZero() {
					t := r.NextStartAt.UTC()
					ri.NextStartAt = &t
				}
				out.Items = append(out.Items, ri)
			}
			return nil
		}, &out.Unavailable)
		// Clusters answer in any order: by cluster, each member's order within.
		slices.SortStableFunc(out.Items, func(a, b api.ReplicaInfo) int { return strings.Compare(a.Cluster, b.Cluster) })
		return &replicasOutput{Body: out}, nil
	})
	huma.Register(hapi, huma.Operation{
		OperationID: "list-nodes", Method: http.MethodGet, Path: "/api/v1/nodes",
		Summary: "List member clusters' nodes as their members see them now", Tags: []string{"Clusters"}, Security: bearer,
		Metadata: opMeta(api.RoleViewer, "", "Cluster"), Errors: []int{401, 403, 404, 422, 503},
	}, func(ctx context.Context, in *nodesInput) (*nodesOutput, error) {
		clusters, err := s.askable(ctx, in.Cluster)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		out := api.NodeInfoList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "NodeInfoList"}, Items: []api.NodeInfo{}}
		var mu sync.Mutex
		s.askMembers(ctx, "hub.list_nodes", clusters, protocol.NodesSubject, []byte("{}"), func(cluster string, data []byte) error {
			var l protocol.NodeList
			if err := json.Unmarshal(data, &l); err != nil {
				return fmt.Errorf("unreadable answer: %v", err)
			}
			if l.Error != "" {
				return errors.New(l.Error)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range l.Nodes {
				out.Items = append(out.Items, nodeInfo(cluster, n))
			}
			return nil
		}, &out.Unavailable)
		slices.SortStableFunc(out.Items, func(a, b api.NodeInfo) int {
			if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		return &nodesOutput{Body: out}, nil
	})
}

// askable is the clusters to ask: the one named (404 when unknown), or
// every registered one.
func (s *API) askable(ctx context.Context, cluster string) ([]string, error) {
	if cluster != "" {
		if _, err := s.store.Get(ctx, "Cluster", cluster); err != nil {
			return nil, err
		}
	}
	if s.bus == nil {
		return nil, api.Errorf(api.CodeUnavailable, "this hub runs without NATS: no member can be asked")
	}
	if cluster != "" {
		return []string{cluster}, nil
	}
	res, err := s.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range res.Items {
		out = append(out, c.Meta.Name)
	}
	return out, nil
}

// askMembers sends body to every cluster's subject at once and hands each
// answer to take; clusters that do not answer in time, or whose answer
// take refuses, go to unavailable, sorted.
func (s *API) askMembers(ctx context.Context, span string, clusters []string, subject func(string) string, body []byte,
	take func(cluster string, data []byte) error, unavailable *[]api.ClusterProblem) {
	ctx, sp := s.tel.Tracer.Tracer("github.com/atollhq/atoll/hub/httpapi").Start(ctx, span, trace.WithAttributes(attribute.Int("clusters", len(clusters))))
	defer sp.End()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, askTimeout)
			defer cancel()
			data, err := s.bus.Request(cctx, c, subject(c), body)
			if err == nil {
				err = take(c, data)
			} else if errors.Is(err, natsbus.ErrNoReply) {
				err = fmt.Errorf("its member did not answer within %s (down, unreachable, or older than this hub)", askTimeout)
			}
			if err != nil {
				mu.Lock()
				*unavailable = append(*unavailable, api.ClusterProblem{Cluster: c, Message: err.Error()})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(*unavailable, func(a, b api.ClusterProblem) int { return strings.Compare(a.Cluster, b.Cluster) })
	sp.SetAttributes(attribute.Int("unavailable", len(*unavailable)))
}

// memberNodes is one cluster's nodes as its member lists them now (for
// the console's cluster page).
func (s *API) memberNodes(ctx context.Context, cluster string) ([]api.NodeInfo, error) {
	if s.bus == nil {
		return nil, errors.New("this hub runs without NATS")
	}
	var out []api.NodeInfo
	var unavailable []api.ClusterProblem
	s.askMembers(ctx, "hub.console_nodes", []string{cluster}, protocol.NodesSubject, []byte("{}"), func(c string, data []byte) error {
		var l protocol.NodeList
		if err := json.Unmarshal(data, &l); err != nil {
			return fmt.Errorf("unreadable answer: %v", err)
		}
		if l.Error != "" {
			return errors.New(l.Error)
		}
		for _, n := range l.Nodes {
			out = append(out, nodeInfo(c, n))
		}
		return nil
	}, &unavailable)
	if len(unavailable) > 0 {
		return nil, errors.New(unavailable[0].Message)
	}
	return out, nil
}

func nodeInfo(cluster string, n protocol.NodeInfo) api.NodeInfo {
	return api.NodeInfo{Name: n.Name, Cluster: cluster, Zone: n.Zone, Labels: n.Labels, Taints: n.Taints, Ready: n.Ready, Lost: n.Lost,
		CPUMillis: n.Allocatable.MilliCPU, MemoryBytes: n.Allocatable.Memory, Replicas: n.Replicas, ReplicasReady: n.ReplicasReady, LimitsEnforced: n.LimitsEnforced}
}
