package images

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteTar(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "dev/pts"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "dev/null-ish"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/python3.11"), []byte("#!python"), 0o755))
	must(os.Link(filepath.Join(dir, "usr/bin/python3.11"), filepath.Join(dir, "usr/bin/python3-hard")))
	must(os.Symlink("python3.11", filepath.Join(dir, "usr/bin/python3")))

	var buf bytes.Buffer
	must(writeTar(dir, &buf))
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		got[h.Name] = h
	}
	if h := got["usr/bin/python3"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "python3.11" {
		t.Errorf("symlink: %+v", h)
	}
	a, b := got["usr/bin/python3.11"], got["usr/bin/python3-hard"]
	if a == nil || b == nil || (a.Typeflag == tar.TypeLink) == (b.Typeflag == tar.TypeLink) {
		t.Errorf("hard link: %+v %+v", a, b)
	}
	if got["dev/"] == nil || got["dev/pts/"] != nil || got["dev/null-ish"] != nil {
		t.Errorf("dev: only the directory itself belongs in the tar: %v", keys(got))
	}
	if h := got["usr/bin/python3.11"]; h != nil && h.Typeflag == tar.TypeReg && h.Mode&0o111 == 0 {
		t.Errorf("mode lost: %o", h.Mode)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
