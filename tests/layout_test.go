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
