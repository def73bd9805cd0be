package state

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/atollhq/atoll/protocol"
)

// TestDataVersions: the store keeps several versions of an item side by
// side (a rollout's old and new values), removes one or all, and opens
// them again from JetStream, an entry written before versions were kept
// apart (keyed by its item) included; no entry holds a value in clear.
func TestDataVersions(t *testing.T) {
	t.Parallel()
	nc := jetStream(t)
	ctx := t.Context()
	key := bytes.Repeat([]byte{7}, DataKeySize)
	d, err := OpenData(ctx, nc, key)
	if err != nil {
		t.Fatal(err)
	}
	item := func(v int64, value string) protocol.DataItem {
		return protocol.DataItem{Kind: protocol.DataSecret, Name: "db", Version: v, Values: map[string][]byte{"password": []byte(value)}}
	}
	// An entry as an earlier member wrote it: key Secret.db.
	sealed, err := d.seal("Secret.db", item(3, "pw-three"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.kv.Put(ctx, "Secret.db", sealed); err != nil {
		t.Fatal(err)
	}
	for v, value := range map[int64]string{5: "pw-five", 7: "pw-seven"} {
		if err := d.Put(ctx, item(v, value)); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() *DataStore {
		t.Helper()
		d, err := OpenData(ctx, nc, key)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d = reopen()
	if got := fmt.Sprint(d.Versions()); got != "map[Secret/db:[3 5 7]]" || d.Held()["Secret/db"] != 7 {
		t.Fatalf("want versions 3 (the earlier entry), 5 and 7, the newest 7; got %s", got)
	}
	if got := string(d.Items()["Secret/db"][5].Values["password"]); got != "pw-five" {
		t.Errorf("version 5: want its own value; got %q", got)
	}
	for _, v := range []int64{3, 5} {
		if err := d.Delete(ctx, "Secret/db", v); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(reopen().Versions()); got != "map[Secret/db:[7]]" {
		t.Errorf("after removing 3 and 5: want 7 alone, after a reopen too; got %s", got)
	}
	keys, err := d.kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := d.kv.Get(ctx, k)
		if err == nil && bytes.Contains(e.Value(), []byte("pw-")) {
			t.Errorf("entry %s holds a value in clear", k)
		}
	}
	if err := d.Delete(ctx, "Secret/db", 0); err != nil {
		t.Fatal(err)
	}
	if got := reopen().Versions(); len(got) != 0 {
		t.Errorf("after removing every version: want nothing; got %v", got)
	}
}
