package main

import (
	"strings"
	"testing"
)

func TestExplainVersionAPIResources(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	sameOutput(t, h.must(t, "version"), "Client Version: "+version+"\nServer Version: v9.9.9-test\n")
	out, _, err := runAtoll(t, "version", "--client", "--server", "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	sameOutput(t, out, "Client Version: "+version+"\n")

	sameOutput(t, h.must(t, "api-resources"), `NAME        SHORTNAMES   APIVERSION     NAMESPACED   KIND       VERBS
workloads   wl           atoll.dev/v1   false        Workload   create,delete,get,list,patch,update,watch
tokens                   atoll.dev/v1   false        Token      create,delete,get,list,watch
clusters    cl           atoll.dev/v1   false        Cluster    delete,get,list,patch,watch
events      ev           atoll.dev/v1   false        Event      get,list,watch
drills                   atoll.dev/v1   false        Drill      create,delete,get,list,watch
services    svc          atoll.dev/v1   false        Service    create,delete,get,list,patch,update,watch
configs     cfg          atoll.dev/v1   false        Config     create,delete,get,list,patch,update,watch
secrets                  atoll.dev/v1   false        Secret     create,delete,get,list,patch,update,watch
`)

	sameOutput(t, h.must(t, "explain", "workload.spec.replicas"), `KIND:     Workload
VERSION:  atoll.dev/v1

FIELD:    replicas <integer> -required-

DESCRIPTION:
     Desired replicas: in total when placement.replicaMode is Divided, per selected cluster when Duplicated.
`)
	top := h.must(t, "explain", "wl")
	for _, want := range []string{"KIND:     Workload\n", "FIELDS:\n", "   spec\t<WorkloadSpec> -required-\n", "   status\t<WorkloadStatus> -read-only-\n", "   apiVersion\t<string>\n     Always atoll.dev/v1.\n"} {
		if !strings.Contains(top, want) {
			t.Errorf("explain wl: want %q in\n%s", want, top)
		}
	}
	if out := h.must(t, "explain", "workload.spec.template"); !strings.Contains(out, "FIELD:    template <ReplicaTemplate> -required-") || !strings.Contains(out, "   command\t<string>") {
		t.Errorf("explain workload.spec.template: want the field and its fields; got\n%s", out)
	}
	if _, _, err := h.run(t, "explain", "workload.spec.nope"); err == nil || !strings.Contains(err.Error(), `"nope" does not exist in Workload.spec`) {
		t.Errorf("want an unknown field named with where it was looked for; got %v", err)
	}
	if _, _, err := h.run(t, "explain", "gadget"); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Errorf("want an unknown kind refused; got %v", err)
	}
}
