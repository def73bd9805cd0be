package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` on the module and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestEveryPackageHasADocComment keeps STYLE rule 3.
func TestEveryPackageHasADocComment(t *testing.T) {
	t.Parallel()
	for _, line := range goList(t, "-f", "{{.ImportPath}}\t{{.Doc}}", "./...") {
		path, doc, _ := strings.Cut(line, "\t")
		if strings.TrimSpace(doc) == "" {
			t.Errorf("package %s has no doc comment", path)
		}
	}
}

// TestMemberSideDoesNotImportTheHub keeps STYLE rule 5: members (and the
// protocol and API contracts they share) never link the hub or a
// database driver.
func TestMemberSideDoesNotImportTheHub(t *testing.T) {
	t.Parallel()
	forbidden := []string{"github.com/atollhq/atoll/hub", "github.com/jackc/pgx", "github.com/pressly/goose"}
	for _, pkg := range []string{"./member/...", "./protocol/...", "./api/..."} {
		for _, dep := range goList(t, "-deps", "-f", "{{.ImportPath}}", pkg) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// deps maps every package of the module to its transitive imports.
func deps(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...") {
		fields := strings.Fields(line)
		out[fields[0]] = fields[1:]
	}
	return out
}

const module = "github.com/atollhq/atoll/"

// under says whether pkg is dir or inside it (dir relative to the module).
func under(pkg, dir string) bool {
	return pkg == module+dir || strings.HasPrefix(pkg, module+dir+"/")
}

// TestImportRules keeps the rooms of ARCHITECTURE.md apart: the contracts
// and the pure decisions import nothing of the hub or the members; the
// console reaches the hub only through its store; the hub's controllers
// and its HTTP surface never import one another (they meet in package
// hub, which wires them, through interfaces each defines); nothing
// inside hub/ imports the wiring; and the client's logic (cli/) imports
// neither the hub nor the members.
func TestImportRules(t *testing.T) {
	t.Parallel()
	all := deps(t)
	pure := []string{"api", "placement", "protocol", "failover", "progressive"}
	controllers := []string{"hub/httpapi", "hub/members", "hub/placer", "hub/drill", "hub/compactor"}
	for pkg, ds := range all {
		for _, d := range ds {
			for _, p := range pure {
				if under(pkg, p) && (under(d, "hub") || under(d, "member")) {
					t.Errorf("%s imports %s: the contracts and pure decisions must not depend on the hub or the members", pkg, d)
				}
			}
			if (under(pkg, "failover") || under(pkg, "placement") || under(pkg, "progressive")) && (strings.HasPrefix(d, "github.com/jackc/pgx") || strings.HasPrefix(d, "github.com/nats-io/nats")) {
				t.Errorf("%s imports %s: decisions do no I/O", pkg, d)
			}
			if under(pkg, "cli") && (under(d, "hub") || under(d, "member")) {
				t.Errorf("%s imports %s: the client's logic reaches the hub only through its API", pkg, d)
			}
			if under(pkg, "web") && under(d, "hub") && !under(d, "hub/pgstore") {
				t.Errorf("%s imports %s: the console reaches the hub through the store and the API router only", pkg, d)
			}
			if under(pkg, "hub") && pkg != module+"hub" && d == module+"hub" {
				t.Errorf("%s imports %s: no package inside hub/ may import the wiring", pkg, d)
			}
			for _, a := range controllers {
				for _, b := range controllers {
					if a != b && under(pkg, a) && under(d, b) {
						t.Errorf("%s imports %s: controllers and the HTTP surface never import one another", pkg, d)
					}
				}
			}
		}
	}
}
