package main

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestPrintHubs(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	since := now.Add(-90 * time.Second)
	list := api.HubList{ServedBy: "hub-b", Leader: &api.LeaderTerm{Hub: "hub-a", Epoch: 7, HeartbeatAgeSeconds: 0.4},
		Items: []api.Hub{{Name: "hub-a", Leader: true, ConnectedSince: &since, Address: "10.0.0.1"}, {Name: "hub-b", ConnectedSince: &since}}}
	var out strings.Builder
	if err := printHubs(&out, list, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME    ROLE                  EPOCH   HEARTBEAT   CONNECTED   ADDRESS
hub-a   leader                7       0.4s ago    90s         10.0.0.1
hub-b   follower (answered)                       90s         
`
	if out.String() != want {
		t.Errorf("printHubs:\n%s\nwant:\n%s", out.String(), want)
	}
	list.Items = list.Items[1:]
	out.Reset()
	if err := printHubs(&out, list, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "The last leader, hub-a (epoch 7, heartbeat 0.4s ago), is not connected") {
		t.Errorf("printHubs without the leader connected:\n%s\nwant a line saying the leader hub-a is gone", out.String())
	}
}
