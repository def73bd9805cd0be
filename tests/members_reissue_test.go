//go:build linux

package tests

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMemberLostKeyReissue: a member that lost its data folder (and so its
// NATS key) cannot take its own name back with a new key and a join token:
// the hub refuses it (409), with a Warning event on the cluster, and the
// refused member says how to go on. Once an admin re-issues the identity
// (`atoll cluster reissue`), the same join registers the new key as the
// same cluster, which comes back Ready; the old key is revoked.
func TestMemberLostKeyReissue(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)
	const name = "edge-lost"
	t.Cleanup(func() {
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+name+"?force=true", d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered (or already gone) after the test; got %d %s (%v)", name, status, body, err)
		}
	})
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("lost"), "--join", "--uses", "3").stdout)
	first := d.startMember(t, t, name, filepath.Join(t.TempDir(), "first"), join)
	before, _ := d.waitHealth(t, first, name, "Ready", healthTimeout)
	if before.Status.Identity == "" || before.Metadata.UID == "" {
		t.Fatalf("want %s registered with an identity and a uid; got %+v", name, before)
	}
	first.kill()

	// The data folder is gone: a new key.
	dir := filepath.Join(t.TempDir(), "second")
	d.refusedMember(t, name, dir, join, "already registered with another identity", "atoll cluster reissue "+name)
	var warned bool
	for _, e := range d.eventsOf(t, before.Metadata.UID) {
		warned = warned || e.Reason == "RegistrationRefused" && strings.Contains(e.Message, "join token")
	}
	if !warned {
		t.Errorf("want a RegistrationRefused event on %s naming the join token; got %+v", name, d.eventsOf(t, before.Metadata.UID))
	}
	if c, _, err := d.cluster(name); err != nil || c.Status.Identity != before.Status.Identity {
		t.Errorf("want %s's identity unchanged by the refused join (%s); got %q (%v)", name, before.Status.Identity, c.Status.Identity, err)
	}

	if r := d.mustAtoll(t, "", "cluster", "reissue", name); !strings.Contains(r.stdout, "cluster/"+name+" identity re-issued") {
		t.Errorf("want `atoll cluster reissue` to say it re-issued the identity; got %s", r)
	}
	if c, _, err := d.cluster(name); err != nil || c.Status.Identity != "" {
		t.Errorf("want %s without an identity after the re-issue; got %q (%v)", name, c.Status.Identity, err)
	}
	started := time.Now()
	second := d.startMember(t, t, name, dir, join)
	// A heartbeat since it started: the member saved its identity before
	// it started heartbeating.
	after := d.waitFor(t, second, name, "Ready with a new identity and a heartbeat", healthTimeout, func(c clusterView) bool {
		return c.Status.Health == "Ready" && c.Status.Identity != "" && c.Status.Identity != before.Status.Identity &&
			c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(started)
	})
	if after.Metadata.UID != before.Metadata.UID {
		t.Errorf("want the re-issued cluster to stay the same object (uid %s); got uid %s", before.Metadata.UID, after.Metadata.UID)
	}
	// Restarted, the new member comes back with its member token.
	second.kill()
	third := d.startMember(t, t, name, dir, "")
	restarted := time.Now()
	d.waitFor(t, third, name, "Ready with a heartbeat after its restart", healthTimeout, func(c clusterView) bool {
		return c.Status.Health == "Ready" && c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(restarted) && c.Status.Identity == after.Status.Identity
	})
}
