package handout

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

var (
	ctx = context.Background()
	fa  = whisk.FQN{Namespace: "guest", Name: "a"}
	fb  = whisk.FQN{Namespace: "guest", Name: "b"}
)

func ho(i int) whisk.Handout {
	return whisk.Handout{InvokerID: "invoker0", ContainerID: "c1", HandedAt: int64(i), Seq: uint64(i),
		Message: whisk.ActivationMessage{ActivationID: whisk.ActivationID(fmt.Sprintf("%032x", i))}}
}

func open(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func leftIDs(l *Log) []string {
	var ids []string
	for _, lo := range l.Leftovers() {
		ids = append(ids, lo.Action.Name+"/"+string(lo.Handout.Message.ActivationID))
	}
	slices.Sort(ids)
	return ids
}

// What a process recorded and did not forget is the next process's
// leftovers, and only that; a new process starts with nothing claimed.
func TestLeftoversAreWhatWasNotForgotten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handouts.log")
	l := open(t, path)
	ea, _, err := l.ClaimHandouts(ctx, fa)
	if err != nil {
		t.Fatal(err)
	}
	eb, _, _ := l.ClaimHandouts(ctx, fb)
	for i := 1; i <= 4; i++ {
		if err := l.PutHandout(ctx, fa, ea, ho(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.PutHandout(ctx, fb, eb, ho(9), nil)
	// 1 forgotten with a later hand-out, 2 on its own.
	if err := l.PutHandout(ctx, fa, ea, ho(5), []whisk.ActivationID{ho(1).Message.ActivationID}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteHandouts(ctx, fa, []whisk.ActivationID{ho(2).Message.ActivationID}); err != nil {
		t.Fatal(err)
	}
	_ = l.Close() // as kill -9 leaves it: nothing flushed beyond the writes

	l2 := open(t, path)
	want := []string{"a/" + string(ho(3).Message.ActivationID), "a/" + string(ho(4).Message.ActivationID),
		"a/" + string(ho(5).Message.ActivationID), "b/" + string(ho(9).Message.ActivationID)}
	if got := leftIDs(l2); !slices.Equal(got, want) {
		t.Fatalf("leftovers %v, want %v", got, want)
	}
	if lo := l2.Leftovers()[0]; lo.Handout.InvokerID != "invoker0" || lo.Handout.ContainerID != "c1" {
		t.Fatalf("leftover %+v lost its container", lo.Handout)
	}
	if _, hs, _ := l2.ClaimHandouts(ctx, fa); len(hs) != 0 {
		t.Fatalf("a new process claimed %d hand-outs of the previous one", len(hs))
	}
	// Leftovers stay until dropped, across another restart.
	_ = l2.Close()
	l3 := open(t, path)
	if got := leftIDs(l3); !slices.Equal(got, want) {
		t.Fatalf("leftovers after a second restart %v, want %v", got, want)
	}
	if err := l3.DropLeftovers(); err != nil {
		t.Fatal(err)
	}
	_ = l3.Close()
	if got := leftIDs(open(t, path)); len(got) != 0 {
		t.Fatalf("leftovers after DropLeftovers: %v", got)
	}
}

// A new claim of an action fences the previous leadership: its records
// and confirmations are refused with kind Conflict. Claims of the same
// process return what the earlier queue did not forget.
func TestClaimFencesThePreviousLeadership(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "handouts.log"))
	e1, _, _ := l.ClaimHandouts(ctx, fa)
	if err := l.PutHandout(ctx, fa, e1, ho(1), nil); err != nil {
		t.Fatal(err)
	}
	e2, hs, _ := l.ClaimHandouts(ctx, fa)
	if e2 == e1 || len(hs) != 1 || hs[0].Message.ActivationID != ho(1).Message.ActivationID || hs[0].Seq != 1 {
		t.Fatalf("second claim: epoch %d (first %d), hand-outs %+v", e2, e1, hs)
	}
	if err := l.PutHandout(ctx, fa, e1, ho(2), nil); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("a record under the ended leadership: %v, want Conflict", err)
	}
	if err := l.ConfirmEpoch(ctx, fa, e1); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("confirming the ended leadership: %v, want Conflict", err)
	}
	if err := l.ConfirmEpoch(ctx, fa, e2); err != nil {
		t.Fatalf("confirming the current leadership: %v", err)
	}
	if _, hs, _ := l.ClaimHandouts(ctx, fb); len(hs) != 0 {
		t.Fatalf("another action's claim got %d hand-outs", len(hs))
	}
}

// A write cut short by the kill (no newline) and a corrupt line are
// skipped; the rest is read.
func TestTornAndCorruptLinesSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handouts.log")
	l := open(t, path)
	e, _, _ := l.ClaimHandouts(ctx, fa)
	_ = l.PutHandout(ctx, fa, e, ho(1), nil)
	_ = l.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("{not json}\n")
	_, _ = f.WriteString(`{"op":"del","ns":"guest","action":"a","forget":["` + string(ho(1).Message.ActivationID)) // torn
	f.Close()
	if got := leftIDs(open(t, path)); len(got) != 1 {
		t.Fatalf("leftovers %v, want the one put (the torn delete never happened)", got)
	}
}

// The file is rewritten with only the live hand-outs once it has grown
// compactAfter lines past them.
func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handouts.log")
	l := open(t, path)
	e, _, _ := l.ClaimHandouts(ctx, fa)
	for i := 1; i <= 3*compactAfter; i++ {
		var forget []whisk.ActivationID
		if i > 2 {
			forget = []whisk.ActivationID{ho(i - 2).Message.ActivationID}
		}
		if err := l.PutHandout(ctx, fa, e, ho(i), forget); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := len(slices.DeleteFunc(splitLines(b), func(s string) bool { return s == "" })); lines > compactAfter+10 {
		t.Fatalf("%d lines after %d records of which 2 live: not compacted", lines, 3*compactAfter)
	}
	_ = l.Close()
	want := []string{"a/" + string(ho(3*compactAfter-1).Message.ActivationID), "a/" + string(ho(3*compactAfter).Message.ActivationID)}
	if got := leftIDs(open(t, path)); !slices.Equal(got, want) {
		t.Fatalf("leftovers after compactions %v, want %v", got, want)
	}
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// BenchmarkPutHandout is the cost of recording one hand-out (one write(2)
// of one line) and forgetting an earlier one with it.
func BenchmarkPutHandout(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "handouts.log"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e, _, _ := l.ClaimHandouts(ctx, fa)
	b.ResetTimer()
	for i := range b.N {
		var forget []whisk.ActivationID
		if i > 0 {
			forget = []whisk.ActivationID{ho(i - 1).Message.ActivationID}
		}
		if err := l.PutHandout(ctx, fa, e, ho(i), forget); err != nil {
			b.Fatal(err)
		}
	}
}
