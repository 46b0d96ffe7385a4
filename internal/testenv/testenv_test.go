package testenv

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEventuallyWaitsForTheCondition: Eventually returns once cond holds,
// after as many polls as it took.
func TestEventuallyWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	Eventually(t, 10*time.Second, "the fifth poll", func() bool { return n.Add(1) >= 5 })
	if n.Load() != 5 {
		t.Fatalf("polled %d times, want 5", n.Load())
	}
}

// recorder is a testing.TB that records a Fatalf instead of ending the
// test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
}

// TestEventuallyFailsAfterItsTimeout: a condition that never holds fails
// the test once the timeout passed.
func TestEventuallyFailsAfterItsTimeout(t *testing.T) {
	r := &recorder{TB: t}
	polls := 0
	Eventually(r, 20*time.Millisecond, "never", func() bool {
		polls++
		return r.failed != "" // Fatalf does not stop a recorder: end the loop
	})
	if r.failed == "" || polls < 2 {
		t.Fatalf("failed %q after %d polls", r.failed, polls)
	}
}

func TestMain(m *testing.M) { Main(m) }

// TestFillSetsEveryFieldApart: every leaf of a filled value is non-zero,
// and zeroing one changes the value.
func TestFillSetsEveryFieldApart(t *testing.T) {
	type inner struct {
		A string
		B *int
	}
	type outer struct {
		X  int
		Y  bool
		In inner
		L  []inner
		M  map[string]string
		p  int // unexported: left alone
	}
	var v outer
	Fill(&v)
	if v.X == 0 || !v.Y || v.In.A == "" || v.In.B == nil || len(v.L) != 1 || v.L[0].A == "" || len(v.M) != 1 || v.p != 0 {
		t.Fatalf("filled: %+v", v)
	}
	if v.In.A == v.L[0].A {
		t.Fatalf("two fields got the same value %q", v.In.A)
	}
	var paths []string
	for _, l := range Leaves(&v) {
		paths = append(paths, l.Path)
	}
	want := "X Y In In.A In.B In.B* L L[0] L[0].A L[0].B L[0].B* M"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("leaves %q, want %q", got, want)
	}
	Leaves(&v)[0].Zero()
	if v.X != 0 {
		t.Fatal("Zero of X left it set")
	}
}
