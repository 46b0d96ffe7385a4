package cluster

import (
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestKeysEscapeSegments(t *testing.T) {
	names := []string{"a", "a/b", "a b", "a@b.c-d", "a%2Fb", "ab", "a/b/c"}
	for _, ns := range names {
		for _, name := range names {
			f := whisk.FQN{Namespace: ns, Name: name}
			key := leaderKey(f)
			if got := strings.Count(strings.TrimPrefix(key, root), "/"); got != 3 {
				t.Errorf("leaderKey(%q) = %q: %d separators, want 3", f, key, got)
			}
			back, ok := parseLeaderKey(key)
			if !ok || back != f {
				t.Errorf("parseLeaderKey(leaderKey(%q)) = %q, %v", f, back, ok)
			}
			if _, ok := parseLeaderKey(followerKey(f, "s/0")); ok {
				t.Errorf("follower key of %q parsed as a leader key", f)
			}
		}
	}
}

func TestKeyPrefixesNeverCollide(t *testing.T) {
	names := []string{"a", "a/b", "ab", "a b", "b", "a@x", "a.x", "a-x"}
	type c = whisk.ContainerInfo
	var all []c
	for _, ns := range names {
		for _, act := range names {
			for _, rev := range []int64{1, 10} {
				all = append(all, c{Namespace: ns, Action: act, Rev: rev, InvokerID: "i/0", ContainerID: "c 1"})
			}
		}
	}
	for _, x := range all {
		for _, y := range all {
			kx, ky := containerKey(y), creationKey(whisk.CreationInfo{Namespace: y.Namespace, Action: y.Action, Rev: y.Rev, SchedulerID: "s", CreationID: "k"})
			fx := x.FQN()
			if got, want := strings.HasPrefix(kx, containerNamespacePrefix(x.Namespace)), x.Namespace == y.Namespace; got != want {
				t.Errorf("container ns prefix of %q matches %q: %v", x.Namespace, kx, got)
			}
			if got, want := strings.HasPrefix(kx, containerActionPrefix(fx)), fx == y.FQN(); got != want {
				t.Errorf("container action prefix of %q matches %q: %v", fx, kx, got)
			}
			if got, want := strings.HasPrefix(kx, containerRevPrefix(fx, x.Rev)), fx == y.FQN() && x.Rev == y.Rev; got != want {
				t.Errorf("container rev prefix of %q@%d matches %q: %v", fx, x.Rev, kx, got)
			}
			if got, want := strings.HasPrefix(ky, creationNamespacePrefix(x.Namespace)), x.Namespace == y.Namespace; got != want {
				t.Errorf("creation ns prefix of %q matches %q: %v", x.Namespace, ky, got)
			}
			if got, want := strings.HasPrefix(ky, creationRevPrefix(fx, x.Rev)), fx == y.FQN() && x.Rev == y.Rev; got != want {
				t.Errorf("creation rev prefix of %q@%d matches %q: %v", fx, x.Rev, ky, got)
			}
			if got, want := strings.HasPrefix(leaderKey(y.FQN()), queueActionPrefix(fx)), fx == y.FQN(); got != want {
				t.Errorf("queue prefix of %q matches leader of %q: %v", fx, y.FQN(), got)
			}
		}
	}
	// Different kinds of keys live in different subtrees.
	f := whisk.FQN{Namespace: "scheduler", Name: "x"}
	keys := []string{
		schedulerKey("x"), invokerKey("x"), leaderKey(f), followerKey(f, "x"),
		containerKey(whisk.ContainerInfo{Namespace: "x", Action: "x", Rev: 1, InvokerID: "x", ContainerID: "x"}),
		creationKey(whisk.CreationInfo{Namespace: "x", Action: "x", Rev: 1, SchedulerID: "x", CreationID: "x"}),
		throttleNamespaceKey("x"), throttleActionKey(whisk.FQN{Namespace: "x", Name: "x"}),
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, root) || seen[k] {
			t.Errorf("key %q outside %q or duplicated", k, root)
		}
		seen[k] = true
	}
	if throttleActionKey(whisk.FQN{Namespace: "a", Name: "b"}) == throttleNamespaceKey("a/b") {
		t.Error("throttle key of action a/b equals the one of namespace \"a/b\"")
	}
}
