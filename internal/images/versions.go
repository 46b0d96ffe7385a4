package images

import (
	"fmt"
	"os"
	"strings"
)

// packageVersion is the upstream version (no epoch, no Debian revision,
// no +suffix) of pkg in a dpkg status file.
func packageVersion(statusFile, pkg string) (string, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return "", err
	}
	for _, para := range strings.Split(string(b), "\n\n") {
		var name, version string
		for _, line := range strings.Split(para, "\n") {
			if v, ok := strings.CutPrefix(line, "Package: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "Version: "); ok {
				version = v
			}
		}
		if name == pkg && version != "" {
			return upstreamVersion(version), nil
		}
	}
	return "", fmt.Errorf("package %s is not installed in the root file system", pkg)
}

func upstreamVersion(v string) string {
	if i := strings.Index(v, ":"); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		v = v[:i]
	}
	if i := strings.IndexAny(v, "+~"); i >= 0 {
		v = v[:i]
	}
	return v
}

// major is "18" of "18.20.4"; majorMinor is "3.11" of "3.11.2".
func major(v string) string {
	s, _, _ := strings.Cut(v, ".")
	return s
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}
