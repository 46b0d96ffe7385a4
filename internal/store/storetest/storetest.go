// Package storetest is the contract suite of store.Store: every
// implementation's tests call Run with a function that opens an empty store.
// Persistence across close and reopen is implementation-specific and is
// tested in each implementation's own package.
//
// Beyond the comments of store.Store, the suite pins down these choices so
// that implementations agree:
//   - PutAction with expectRev > 0 on a missing action is a Conflict
//     (MsgConcurrentUpdate), like a stale revision;
//   - ListActions, and ActivationFilter.Limit, treat a limit of 0 as "no limit";
//   - activations with the same Start are ordered by activation id ascending.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Run runs the contract suite. open must return a new, empty store; it may
// register its cleanup (closing the store) with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"IdentityRoundTrip", testIdentityRoundTrip},
		{"IdentityKeyHashed", testIdentityKeyHashed},
		{"IdentityNotFound", testIdentityNotFound},
		{"IdentityListAndDelete", testIdentityListDelete},
		{"NamespaceLimits", testNamespaceLimits},
		{"ActionCreate", testActionCreate},
		{"ActionCreateConflict", testActionCreateConflict},
		{"ActionCompareAndSwap", testActionCAS},
		{"ActionReplaceNotMerge", testActionReplaceNotMerge},
		{"ActionDelete", testActionDelete},
		{"ActionNotFound", testActionNotFound},
		{"ActionListAndCount", testActionList},
		{"ActionConcurrentCAS", testActionConcurrentCAS},
		{"PackagedActions", testPackagedActions},
		{"ActivationPackageFilter", testActivationPackageFilter},
		{"ActivationRoundTrip", testActivationRoundTrip},
		{"ActivationFirstWins", testActivationFirstWins},
		{"ActivationNotFound", testActivationNotFound},
		{"ActivationOrder", testActivationOrder},
		{"ActivationFilters", testActivationFilters},
		{"ActivationEach", testActivationEach},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tc := range append(tests, entityTests...) {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	// A guard against a hang that ends a little before the test binary's
	// -timeout, not a budget for the case's work: a fixed 30 s ran out
	// under load (ConcurrentWriters' 1,550 writes and reads at load
	// average 58 on 2 cores).
	dl, ok := t.Deadline()
	if !ok {
		return t.Context()
	}
	ctx, cancel := context.WithDeadline(t.Context(), dl.Add(-min(time.Until(dl)/10, time.Minute)))
	t.Cleanup(cancel)
	return ctx
}

// sameJSON reports whether a and b marshal to the same JSON (this
// normalizes json.RawMessage spacing, and compares every exported field).
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func wantKind(t *testing.T, err error, kind whisk.Kind, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want kind %v", kind)
	}
	if got := whisk.KindOf(err); got != kind {
		t.Fatalf("kind = %v (err %v), want %v", got, err, kind)
	}
	if msg != "" {
		if got := whisk.UserMessage(err); got != msg {
			t.Fatalf("user message = %q, want %q", got, msg)
		}
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func newAction(ns, name, code string) whisk.Action {
	return whisk.Action{
		Namespace:   ns,
		Name:        name,
		Version:     "0.0.1",
		Exec:        whisk.Exec{Kind: "python:3", Code: code, Main: "main"},
		Parameters:  whisk.Params{{Key: "p", Value: raw(`"v"`)}},
		Annotations: whisk.Params{{Key: "exec", Value: raw(`"python:3"`)}},
		Limits:      whisk.Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1},
	}
}

// ---- identities ----

func testIdentityRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	id := whisk.Identity{Subject: "alice", Namespace: "alice-ns", UUID: "8f7c1b7e-3f4a-4a4c-9d7e-1c2b3a4d5e6f", Key: "secret"}
	if err := s.PutIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	got, err := s.IdentityByUUID(ctx, id.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameIdentity(got, id) {
		t.Fatalf("got %+v, want %+v", got, id)
	}
	// Put again replaces; Limits given to PutIdentity are not stored
	// (they are the namespace's).
	id.Key, id.Namespace = "other", "alice-2"
	withLimits := id
	withLimits.Limits = whisk.NamespaceLimits{InvocationsPerMinute: 60}
	if err := s.PutIdentity(ctx, withLimits); err != nil {
		t.Fatal(err)
	}
	if got, err = s.IdentityByUUID(ctx, id.UUID); err != nil || !sameIdentity(got, id) {
		t.Fatalf("after replace: got %+v, %v; want %+v", got, err, id)
	}
}

// sameIdentity reports whether got, read from a store, is want as put:
// the same fields, Key not read back and KeyHash the hash of want.Key.
func sameIdentity(got, want whisk.Identity) bool {
	return got.Key == "" && whisk.KeyMatches(got.KeyHash, want.Key) &&
		got.Subject == want.Subject && got.Namespace == want.Namespace &&
		got.UUID == want.UUID && got.Limits == want.Limits
}

// testIdentityKeyHashed: a stored key can't be read back in plain text,
// by any read; the stored hash accepts the right key only; hashes are
// salted; an identity read back and put again keeps its key.
func testIdentityKeyHashed(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, key := whisk.NewAuthKey()
	a := whisk.Identity{Subject: "alice", Namespace: "alice", UUID: "u1", Key: key}
	b := whisk.Identity{Subject: "bob", Namespace: "bob", UUID: "u2", Key: key}
	for _, id := range []whisk.Identity{a, b} {
		if err := s.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.IdentityByUUID(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	listed, err := s.ListIdentities(ctx, "")
	if err != nil || len(listed) != 2 {
		t.Fatalf("ListIdentities = %+v, %v", listed, err)
	}
	for _, id := range append(listed, got) {
		if id.Key != "" || strings.Contains(fmt.Sprintf("%+v", id), key) {
			t.Fatalf("the plain key is readable back: %+v", id)
		}
		if !whisk.KeyMatches(id.KeyHash, key) {
			t.Fatalf("%s: the right key is refused by %q", id.UUID, id.KeyHash)
		}
		wrong := key[:len(key)-1] + string(key[len(key)-1]^1)
		for _, k := range []string{wrong, "", key + "x", key[:32]} {
			if whisk.KeyMatches(id.KeyHash, k) {
				t.Fatalf("%s: a wrong key %q is accepted", id.UUID, k)
			}
		}
	}
	if listed[0].KeyHash == listed[1].KeyHash {
		t.Fatalf("one key stored twice gave one hash %q: not salted", listed[0].KeyHash)
	}
	// Read back (Key empty, KeyHash set) and put again: the key still works.
	got.Namespace = "alice-2"
	if err := s.PutIdentity(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, err := s.IdentityByUUID(ctx, "u1"); err != nil || again.Namespace != "alice-2" || !whisk.KeyMatches(again.KeyHash, key) {
		t.Fatalf("after a put of the read-back identity: %+v, %v", again, err)
	}
	// An identity without a key is refused.
	wantKind(t, s.PutIdentity(ctx, whisk.Identity{Subject: "c", Namespace: "c", UUID: "u3"}), whisk.Invalid, "")
}

func testIdentityListDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if ids, err := s.ListIdentities(ctx, ""); err != nil || ids == nil || len(ids) != 0 {
		t.Fatalf("empty store: ListIdentities = %v, %v; want [] (not nil)", ids, err)
	}
	put := []whisk.Identity{
		{Subject: "bob", Namespace: "shared", UUID: "u3", Key: "k3"},
		{Subject: "alice", Namespace: "shared", UUID: "u2", Key: "k2"},
		{Subject: "alice", Namespace: "alice", UUID: "u1", Key: "k1"},
		{Subject: "alice", Namespace: "alice", UUID: "u0", Key: "k0"},
	}
	for _, id := range put {
		if err := s.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	uuids := func(ids []whisk.Identity) []string {
		var out []string
		for _, id := range ids {
			out = append(out, id.UUID)
		}
		return out
	}
	all, err := s.ListIdentities(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// By subject, namespace, then uuid.
	if got, want := uuids(all), []string{"u0", "u1", "u2", "u3"}; !slices.Equal(got, want) {
		t.Fatalf("ListIdentities(\"\") = %v, want %v", got, want)
	}
	if !sameIdentity(all[2], put[1]) {
		t.Errorf("listed %+v, want %+v", all[2], put[1])
	}
	shared, err := s.ListIdentities(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := uuids(shared), []string{"u2", "u3"}; !slices.Equal(got, want) {
		t.Fatalf("ListIdentities(shared) = %v, want %v", got, want)
	}
	if err := s.DeleteIdentity(ctx, "u2"); err != nil {
		t.Fatal(err)
	}
	_, err = s.IdentityByUUID(ctx, "u2")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	wantKind(t, s.DeleteIdentity(ctx, "u2"), whisk.NotFound, whisk.MsgNotFound)
	if shared, err = s.ListIdentities(ctx, "shared"); err != nil || len(shared) != 1 || shared[0].UUID != "u3" {
		t.Fatalf("after delete: ListIdentities(shared) = %+v, %v", shared, err)
	}
}

func testNamespaceLimits(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, err := s.GetNamespaceLimits(ctx, "ns")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	wantKind(t, s.DeleteNamespaceLimits(ctx, "ns"), whisk.NotFound, whisk.MsgNotFound)
	for _, id := range []whisk.Identity{
		{Subject: "a", Namespace: "ns", UUID: "u1", Key: "k1"},
		{Subject: "b", Namespace: "ns", UUID: "u2", Key: "k2"},
		{Subject: "c", Namespace: "other", UUID: "u3", Key: "k3"},
	} {
		if err := s.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	want := whisk.NamespaceLimits{InvocationsPerMinute: 60, ConcurrentContainers: 7}
	if err := s.PutNamespaceLimits(ctx, "ns", want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetNamespaceLimits(ctx, "ns"); err != nil || got != want {
		t.Fatalf("GetNamespaceLimits = %+v, %v; want %+v", got, err, want)
	}
	// Every key of the namespace carries its limits; other namespaces' do not.
	for uuid, w := range map[string]whisk.NamespaceLimits{"u1": want, "u2": want, "u3": {}} {
		if id, err := s.IdentityByUUID(ctx, uuid); err != nil || id.Limits != w {
			t.Errorf("IdentityByUUID(%s).Limits = %+v, %v; want %+v", uuid, id.Limits, err, w)
		}
	}
	ids, err := s.ListIdentities(ctx, "ns")
	if err != nil || len(ids) != 2 || ids[0].Limits != want || ids[1].Limits != want {
		t.Errorf("ListIdentities(ns) = %+v, %v; want both with %+v", ids, err, want)
	}
	// Put replaces (a zero field is stored as zero: the default).
	want = whisk.NamespaceLimits{ConcurrentContainers: 3}
	if err := s.PutNamespaceLimits(ctx, "ns", want); err != nil {
		t.Fatal(err)
	}
	if id, err := s.IdentityByUUID(ctx, "u1"); err != nil || id.Limits != want {
		t.Errorf("after replace: Limits = %+v, %v; want %+v", id.Limits, err, want)
	}
	// Limits may be set for a namespace with no key yet.
	if err := s.PutNamespaceLimits(ctx, "empty", want); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespaceLimits(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetNamespaceLimits(ctx, "ns")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	if id, err := s.IdentityByUUID(ctx, "u1"); err != nil || id.Limits != (whisk.NamespaceLimits{}) {
		t.Errorf("after delete: Limits = %+v, %v; want zero", id.Limits, err)
	}
	if got, err := s.GetNamespaceLimits(ctx, "empty"); err != nil || got != want {
		t.Errorf("GetNamespaceLimits(empty) = %+v, %v; want %+v", got, err, want)
	}
}

func testIdentityNotFound(t *testing.T, s store.Store) {
	_, err := s.IdentityByUUID(ctxFor(t), "no-such-uuid")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
}

// ---- actions ----

func testActionCreate(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newAction("ns", "hello", "def main(a): return a")
	before := time.Now().UnixMilli()
	got, err := s.PutAction(ctx, a, 0)
	after := time.Now().UnixMilli()
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != 1 {
		t.Errorf("Rev = %d, want 1", got.Rev)
	}
	if got.Updated < before || got.Updated > after {
		t.Errorf("Updated = %d, want within [%d, %d]", got.Updated, before, after)
	}
	want := a
	want.Updated = got.Updated
	if !sameJSON(t, got, want) {
		t.Errorf("PutAction returned %+v, want %+v", got, want)
	}
	stored, err := s.GetAction(ctx, "ns", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Rev != 1 || !sameJSON(t, stored, want) {
		t.Errorf("GetAction = %+v (rev %d), want %+v (rev 1)", stored, stored.Rev, want)
	}
	if stored.Exec.Code != a.Exec.Code {
		t.Errorf("code = %q, want %q", stored.Exec.Code, a.Exec.Code)
	}
}

func testActionCreateConflict(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newAction("ns", "dup", "one")
	if _, err := s.PutAction(ctx, a, 0); err != nil {
		t.Fatal(err)
	}
	b := newAction("ns", "dup", "two")
	_, err := s.PutAction(ctx, b, 0)
	wantKind(t, err, whisk.Conflict, whisk.MsgExists)
	got, err := s.GetAction(ctx, "ns", "dup")
	if err != nil {
		t.Fatal(err)
	}
	if got.Exec.Code != "one" || got.Rev != 1 {
		t.Errorf("after conflicting create: code %q rev %d, want \"one\" rev 1", got.Exec.Code, got.Rev)
	}
	// The same name in another namespace is another action.
	if _, err := s.PutAction(ctx, newAction("other", "dup", "x"), 0); err != nil {
		t.Fatalf("same name, other namespace: %v", err)
	}
}

func testActionCAS(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	v1, err := s.PutAction(ctx, newAction("ns", "cas", "v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.PutAction(ctx, newAction("ns", "cas", "v2"), v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Rev != v1.Rev+1 {
		t.Errorf("Rev after update = %d, want %d", v2.Rev, v1.Rev+1)
	}
	if v2.Updated < v1.Updated {
		t.Errorf("Updated went back: %d < %d", v2.Updated, v1.Updated)
	}
	// A stale revision loses.
	_, err = s.PutAction(ctx, newAction("ns", "cas", "stale"), v1.Rev)
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	// A revision from the future loses too.
	_, err = s.PutAction(ctx, newAction("ns", "cas", "future"), v2.Rev+5)
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	got, err := s.GetAction(ctx, "ns", "cas")
	if err != nil {
		t.Fatal(err)
	}
	if got.Exec.Code != "v2" || got.Rev != v2.Rev {
		t.Errorf("after failed updates: code %q rev %d, want v2 rev %d", got.Exec.Code, got.Rev, v2.Rev)
	}
	// An update of a missing action is a conflict, not a create.
	_, err = s.PutAction(ctx, newAction("ns", "missing", "x"), 3)
	wantKind(t, err, whisk.Conflict, whisk.MsgConcurrentUpdate)
	_, err = s.GetAction(ctx, "ns", "missing")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
}

func testActionReplaceNotMerge(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newAction("ns", "rep", "code")
	a.Parameters = whisk.Params{{Key: "a", Value: raw(`1`)}, {Key: "b", Value: raw(`2`)}}
	a.Publish = true
	v1, err := s.PutAction(ctx, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := newAction("ns", "rep", "new code")
	b.Parameters = whisk.Params{{Key: "c", Value: raw(`{"x":[1,2]}`)}}
	b.Annotations = nil
	b.Limits.Memory = 512
	v2, err := s.PutAction(ctx, b, v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAction(ctx, "ns", "rep")
	if err != nil {
		t.Fatal(err)
	}
	want := b
	want.Updated = v2.Updated
	if !sameJSON(t, got, want) {
		got, _ := json.Marshal(got)
		want, _ := json.Marshal(want)
		t.Errorf("after replace:\n got %s\nwant %s", got, want)
	}
}

func testActionDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	v1, err := s.PutAction(ctx, newAction("ns", "del", "v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.PutAction(ctx, newAction("ns", "del", "v2"), v1.Rev)
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.DeleteAction(ctx, "ns", "del")
	if err != nil {
		t.Fatal(err)
	}
	if old.Rev != v2.Rev || old.Exec.Code != "v2" || !sameJSON(t, old, v2) {
		t.Errorf("DeleteAction returned %+v (rev %d), want %+v (rev %d)", old, old.Rev, v2, v2.Rev)
	}
	_, err = s.GetAction(ctx, "ns", "del")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	_, err = s.DeleteAction(ctx, "ns", "del")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	if n, err := s.CountActions(ctx, "ns"); err != nil || n != 0 {
		t.Errorf("CountActions after delete = %d, %v; want 0", n, err)
	}
	// The name can be created again.
	again, err := s.PutAction(ctx, newAction("ns", "del", "v3"), 0)
	if err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	if again.Rev < 1 {
		t.Errorf("Rev after re-create = %d, want >= 1", again.Rev)
	}
}

func testActionNotFound(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if _, err := s.PutAction(ctx, newAction("ns", "a", "x"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetAction(ctx, "ns", "b")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	_, err = s.GetAction(ctx, "other", "a")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	_, err = s.DeleteAction(ctx, "other", "a")
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	if _, err := s.GetAction(ctx, "ns", "a"); err != nil {
		t.Errorf("delete in another namespace removed the action: %v", err)
	}
}

func actionNames(as []whisk.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

func testActionList(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	empty, err := s.ListActions(ctx, "ns", 0, 0)
	if err != nil || len(empty) != 0 {
		t.Fatalf("ListActions of an empty namespace = %v, %v; want none", empty, err)
	}
	for _, name := range []string{"delta", "alpha", "charlie", "echo", "bravo"} {
		if _, err := s.PutAction(ctx, newAction("ns", name, "code of "+name), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutAction(ctx, newAction("ns2", "aaa", "x"), 0); err != nil {
		t.Fatal(err)
	}
	// Bump one revision so list shows it.
	if _, err := s.PutAction(ctx, newAction("ns", "charlie", "v2"), 1); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListActions(ctx, "ns", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actionNames(all), []string{"alpha", "bravo", "charlie", "delta", "echo"}; !slices.Equal(got, want) {
		t.Fatalf("ListActions = %v, want %v", got, want)
	}
	for _, a := range all {
		if a.Exec.Code != "" {
			t.Errorf("%s: listed with code %q", a.Name, a.Exec.Code)
		}
		if a.Exec.Kind != "python:3" || a.Namespace != "ns" || a.Limits.Memory != 256 || len(a.Parameters) != 1 {
			t.Errorf("%s: listed without its metadata: %+v", a.Name, a)
		}
		wantRev := int64(1)
		if a.Name == "charlie" {
			wantRev = 2
		}
		if a.Rev != wantRev || a.Updated == 0 {
			t.Errorf("%s: rev %d updated %d, want rev %d and updated set", a.Name, a.Rev, a.Updated, wantRev)
		}
	}
	pages := []struct {
		skip, limit int
		want        []string
	}{
		{0, 2, []string{"alpha", "bravo"}},
		{2, 2, []string{"charlie", "delta"}},
		{4, 2, []string{"echo"}},
		{5, 2, nil},
		{3, 0, []string{"delta", "echo"}},
		{0, 100, []string{"alpha", "bravo", "charlie", "delta", "echo"}},
	}
	for _, p := range pages {
		got, err := s.ListActions(ctx, "ns", p.skip, p.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(actionNames(got), p.want) {
			t.Errorf("ListActions(skip %d, limit %d) = %v, want %v", p.skip, p.limit, actionNames(got), p.want)
		}
	}
	// The code is still there for GetAction.
	if a, err := s.GetAction(ctx, "ns", "alpha"); err != nil || a.Exec.Code != "code of alpha" {
		t.Errorf("GetAction after list = %q, %v", a.Exec.Code, err)
	}
	for ns, want := range map[string]int{"ns": 5, "ns2": 1, "none": 0} {
		if n, err := s.CountActions(ctx, ns); err != nil || n != want {
			t.Errorf("CountActions(%s) = %d, %v; want %d", ns, n, err, want)
		}
	}
}

// testActionConcurrentCAS races writers on one action: each retries its
// compare-and-swap until it wins, so every write lands exactly once.
func testActionConcurrentCAS(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if _, err := s.PutAction(ctx, newAction("ns", "race", "0"), 0); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for {
				cur, err := s.GetAction(ctx, "ns", "race")
				if err != nil {
					errs <- err
					return
				}
				_, err = s.PutAction(ctx, newAction("ns", "race", fmt.Sprint(i)), cur.Rev)
				if err == nil {
					return
				}
				if !whisk.IsKind(err, whisk.Conflict) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.GetAction(ctx, "ns", "race")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != writers+1 {
		t.Errorf("Rev = %d, want %d (one bump per writer)", got.Rev, writers+1)
	}
}

// ---- activations ----

func newActivation(ns, name string, id int, start int64) whisk.Activation {
	aid := whisk.ActivationID(fmt.Sprintf("%032x", id))
	return whisk.Activation{
		Namespace: ns, Name: name, Version: "0.0.1", Subject: "alice",
		ActivationID: aid, Start: start, End: start + 5, Duration: 5,
		StatusCode: whisk.StatusSuccess,
		Response:   whisk.NewResponse(whisk.StatusSuccess, raw(`{"id":`+fmt.Sprint(id)+`}`)),
		Logs:       []string{"2024-01-01T00:00:00.000000000Z stdout: hello"},
		Annotations: whisk.Params{
			{Key: "path", Value: raw(`"` + ns + `/` + name + `"`)},
			{Key: "waitTime", Value: raw(`3`)},
		},
	}
}

func activationIDs(as []whisk.Activation) []whisk.ActivationID {
	out := make([]whisk.ActivationID, len(as))
	for i, a := range as {
		out[i] = a.ActivationID
	}
	return out
}

func testActivationRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newActivation("ns", "hello", 1, 1700000000000)
	size := 12
	a.Response.Size = &size
	a.Publish = true
	a.Logs = append(a.Logs, "2024-01-01T00:00:00.000000001Z stderr: oops", "")
	if err := s.PutActivation(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetActivation(ctx, "ns", a.ActivationID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, a) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(a)
		t.Errorf("GetActivation:\n got %s\nwant %s", gj, wj)
	}
	// A failed record keeps its error result.
	f := newActivation("ns", "hello", 2, 1700000000001)
	f.StatusCode = whisk.StatusDeveloperError
	f.Response = whisk.ErrorResponse(whisk.StatusDeveloperError, whisk.MsgInitExited)
	f.Logs = nil
	if err := s.PutActivation(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetActivation(ctx, "ns", f.ActivationID); err != nil || !sameJSON(t, got, f) {
		t.Errorf("GetActivation(failed) = %+v, %v; want %+v", got, err, f)
	}
}

// testActivationFirstWins: storing a record of an id that has one keeps
// the first (one record per activation, the one its caller was told).
func testActivationFirstWins(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newActivation("ns", "hello", 7, 1000)
	if err := s.PutActivation(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := a
	b.End, b.Duration = 2000, 1000
	b.Response = whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgInvokerLost)
	b.StatusCode = whisk.StatusWhiskError
	if err := s.PutActivation(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetActivation(ctx, "ns", a.ActivationID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, a) {
		t.Errorf("after a second put: got %+v, want the first record %+v", got, a)
	}
	if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != 1 {
		t.Errorf("CountActivations after a second put = %d, %v; want 1", n, err)
	}
}

func testActivationNotFound(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newActivation("ns", "hello", 9, 1000)
	if err := s.PutActivation(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetActivation(ctx, "ns", whisk.ActivationID(fmt.Sprintf("%032x", 10)))
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	// Records are per namespace: another namespace does not see it.
	_, err = s.GetActivation(ctx, "other", a.ActivationID)
	wantKind(t, err, whisk.NotFound, whisk.MsgNotFound)
	if got, err := s.ListActivations(ctx, "other", store.ActivationFilter{}); err != nil || len(got) != 0 {
		t.Errorf("ListActivations(other) = %v, %v; want none", activationIDs(got), err)
	}
}

func testActivationOrder(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	// Inserted out of order; ids 3, 4 and 5 share a start.
	starts := map[int]int64{1: 100, 2: 300, 3: 200, 4: 200, 5: 200, 6: 50}
	for _, id := range []int{5, 1, 3, 6, 2, 4} {
		if err := s.PutActivation(ctx, newActivation("ns", "act", id, starts[id])); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListActivations(ctx, "ns", store.ActivationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var want []whisk.ActivationID
	for _, id := range []int{2, 3, 4, 5, 1, 6} {
		want = append(want, whisk.ActivationID(fmt.Sprintf("%032x", id)))
	}
	if !slices.Equal(activationIDs(got), want) {
		t.Fatalf("order = %v, want %v", activationIDs(got), want)
	}
	// List returns full records.
	if len(got[0].Logs) != 1 || len(got[0].Response.Result) == 0 {
		t.Errorf("listed record lacks logs or result: %+v", got[0])
	}
}

func testActivationFilters(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	// ids 1..10: start 1000*id; odd ids are "odd", even ids are "even".
	for id := 1; id <= 10; id++ {
		name := "even"
		if id%2 == 1 {
			name = "odd"
		}
		if err := s.PutActivation(ctx, newActivation("ns", name, id, int64(1000*id))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutActivation(ctx, newActivation("ns2", "odd", 99, 5000)); err != nil {
		t.Fatal(err)
	}
	ids := func(xs ...int) []whisk.ActivationID {
		out := []whisk.ActivationID{}
		for _, x := range xs {
			out = append(out, whisk.ActivationID(fmt.Sprintf("%032x", x)))
		}
		return out
	}
	cases := []struct {
		name  string
		f     store.ActivationFilter
		want  []whisk.ActivationID
		count int
	}{
		{"all", store.ActivationFilter{}, ids(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 10},
		{"name", store.ActivationFilter{Name: "odd"}, ids(9, 7, 5, 3, 1), 5},
		{"no such name", store.ActivationFilter{Name: "none"}, ids(), 0},
		{"since inclusive", store.ActivationFilter{Since: 8000}, ids(10, 9, 8), 3},
		{"upto inclusive", store.ActivationFilter{Upto: 3000}, ids(3, 2, 1), 3},
		{"since and upto", store.ActivationFilter{Since: 4000, Upto: 6000}, ids(6, 5, 4), 3},
		{"between starts", store.ActivationFilter{Since: 4001, Upto: 5999}, ids(5), 1},
		{"empty range", store.ActivationFilter{Since: 6000, Upto: 4000}, ids(), 0},
		{"limit", store.ActivationFilter{Limit: 3}, ids(10, 9, 8), 10},
		{"skip", store.ActivationFilter{Skip: 8}, ids(2, 1), 10},
		{"skip and limit", store.ActivationFilter{Skip: 2, Limit: 3}, ids(8, 7, 6), 10},
		{"skip past end", store.ActivationFilter{Skip: 20}, ids(), 10},
		{"everything", store.ActivationFilter{Name: "even", Since: 3000, Upto: 9000, Skip: 1, Limit: 2}, ids(6, 4), 3},
	}
	for _, c := range cases {
		got, err := s.ListActivations(ctx, "ns", c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(activationIDs(got), c.want) {
			t.Errorf("%s: ListActivations = %v, want %v", c.name, activationIDs(got), c.want)
		}
		n, err := s.CountActivations(ctx, "ns", c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n != c.count {
			t.Errorf("%s: CountActivations = %d, want %d", c.name, n, c.count)
		}
	}
}

// testConcurrentWriters runs 50 goroutines that write actions, activations
// and identities at once; none may fail.
func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const writers, each = 50, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*3)
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("a%02d", w)
			a, err := s.PutAction(ctx, newAction("ns", name, "v0"), 0)
			if err != nil {
				errs <- err
				return
			}
			for i := range each {
				if a, err = s.PutAction(ctx, newAction("ns", name, fmt.Sprint("v", i+1)), a.Rev); err != nil {
					errs <- err
				}
				if err := s.PutActivation(ctx, newActivation("ns", name, w*each+i+1, int64(i+1))); err != nil {
					errs <- err
				}
				if _, err := s.ListActivations(ctx, "ns", store.ActivationFilter{Name: name, Limit: 5}); err != nil {
					errs <- err
				}
			}
			err = s.PutIdentity(ctx, whisk.Identity{Subject: name, Namespace: name, UUID: name, Key: "k"})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := s.CountActions(ctx, "ns"); err != nil || n != writers {
		t.Errorf("CountActions = %d, %v; want %d", n, err, writers)
	}
	if n, err := s.CountActivations(ctx, "ns", store.ActivationFilter{}); err != nil || n != writers*each {
		t.Errorf("CountActivations = %d, %v; want %d", n, err, writers*each)
	}
	a, err := s.GetAction(ctx, "ns", "a07")
	if err != nil || a.Rev != each+1 || a.Exec.Code != fmt.Sprint("v", each) {
		t.Errorf("GetAction(a07) = rev %d code %q, %v; want rev %d code v%d", a.Rev, a.Exec.Code, err, each+1, each)
	}
}
