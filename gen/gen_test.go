// Package gen_test fails when the checked-in generated code no longer matches the
// contracts under proto/ (someone changed a .proto and forgot `make gen`), or when the
// contracts break buf's STANDARD lint rules.
package gen_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func buf(t *testing.T, root string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "-modfile=tools/go.mod", "buf"}, args...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf %v: %v\n%s", args, err, out)
	}
}

func TestContractsLint(t *testing.T) {
	buf(t, repoRoot(t), "lint")
}

func TestGeneratedCodeIsCurrent(t *testing.T) {
	root := repoRoot(t)
	out := t.TempDir()
	buf(t, root, "generate", "-o", out)

	fresh := readTree(t, filepath.Join(out, "gen"))
	checkedIn := readTree(t, filepath.Join(root, "gen"))
	for name, want := range fresh {
		got, ok := checkedIn[name]
		switch {
		case !ok:
			t.Errorf("gen/%s is missing: run make gen", name)
		case !bytes.Equal(got, want):
			t.Errorf("gen/%s is stale: run make gen", name)
		}
	}
	for name := range checkedIn {
		if _, ok := fresh[name]; !ok && isGenerated(name) {
			t.Errorf("gen/%s is no longer generated from proto/: run make gen", name)
		}
	}
}

// isGenerated tells the generators' outputs from hand-written files kept under gen/
// (this test, embed helpers).
func isGenerated(name string) bool {
	for _, suffix := range []string{".pb.go", ".pb.gw.go", ".swagger.json"} {
		if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
