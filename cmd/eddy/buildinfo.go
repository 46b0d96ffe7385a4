package main

import (
	"runtime/debug"
	"time"
)

// buildInfo is what GET /api/v1 reports as "build" and "buildno", as
// OpenWhisk reports its build date and build number: the time of the
// source's commit (RFC 3339 UTC; the binary's start time when the build
// carries no VCS stamp) and the version set with -ldflags, followed by the
// commit's short hash when there is one ("dev+1a2b3c4d5e6f", ".dirty" for
// uncommitted changes).
func buildInfo(started time.Time) (build, buildNo string) {
	build = started.UTC().Format(time.RFC3339)
	buildNo = version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return build, buildNo
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				build = t.UTC().Format(time.RFC3339)
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		buildNo += "+" + rev
		if dirty {
			buildNo += ".dirty"
		}
	}
	return build, buildNo
}
