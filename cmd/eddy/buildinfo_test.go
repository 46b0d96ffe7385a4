package main

import (
	"strings"
	"testing"
	"time"
)

func TestBuildInfo(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	build, no := buildInfo(started)
	if _, err := time.Parse(time.RFC3339, build); err != nil || !strings.HasSuffix(build, "Z") {
		t.Errorf("build %q is not an RFC 3339 UTC time: %v", build, err)
	}
	if no != version && !strings.HasPrefix(no, version+"+") {
		t.Errorf("buildno %q does not start with the version %q", no, version)
	}
}
