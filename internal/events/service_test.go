package events

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

var guest = whisk.Identity{Subject: "guest", Namespace: "guest", UUID: whisk.GuestUUID, Key: whisk.GuestKey}

func newService(t *testing.T) (*Service, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "eddy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a := whisk.Action{Namespace: "guest", Name: "a", Version: "0.0.1", Exec: whisk.Exec{Kind: "python:3.11", Code: "x"}}
	if _, err := st.PutAction(context.Background(), a, 0); err != nil {
		t.Fatal(err)
	}
	return NewService(st, CatalogActions{Catalog: catalog.New(st)}), st
}

func ref(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

// TestConcurrentRuleWrites races rule creates, moves between two triggers,
// status changes and deletes on the same triggers: every write that
// succeeded is in the triggers' maps, each rule's entry is in exactly the
// trigger the rule names, and no entry is left for a deleted rule.
func TestConcurrentRuleWrites(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	for _, n := range []string{"t1", "t2"} {
		if _, err := svc.PutTrigger(ctx, "guest", n, TriggerPut{}, false); err != nil {
			t.Fatal(err)
		}
	}
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprint("r", i)
			if _, err := svc.PutRule(ctx, guest, name, RulePut{Trigger: ref("/_/t1"), Action: ref("/_/a")}, false); err != nil {
				errs <- err
				return
			}
			switch i % 3 {
			case 0: // move to t2
				if _, err := svc.PutRule(ctx, guest, name, RulePut{Trigger: ref("/_/t2")}, true); err != nil {
					errs <- err
				}
			case 1: // disable
				if err := svc.SetRuleStatus(ctx, "guest", name, whisk.RuleInactive); err != nil {
					errs <- err
				}
			case 2: // delete
				if _, err := svc.DeleteRule(ctx, "guest", name); err != nil {
					errs <- err
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t1, _ := svc.GetTrigger(ctx, "guest", "t1")
	t2, _ := svc.GetTrigger(ctx, "guest", "t2")
	for i := 0; i < n; i++ {
		key := fmt.Sprint("guest/r", i)
		e1, in1 := t1.Rules[key]
		e2, in2 := t2.Rules[key]
		switch i % 3 {
		case 0:
			if in1 || !in2 || e2.Status != whisk.RuleActive {
				t.Errorf("%s moved: in t1 %v, in t2 %v (%+v)", key, in1, in2, e2)
			}
		case 1:
			if !in1 || in2 || e1.Status != whisk.RuleInactive {
				t.Errorf("%s disabled: in t1 %v (%+v), in t2 %v", key, in1, e1, in2)
			}
		case 2:
			if in1 || in2 {
				t.Errorf("%s deleted but still in a trigger", key)
			}
		}
	}
	rules, err := svc.ListRules(ctx, "guest", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := n - (n+0)/3; len(rules) != want {
		t.Errorf("%d rules listed, want %d", len(rules), want)
	}
}

// TestPutTriggerKeepsRules: an update racing rule creates keeps every
// entry (the update re-reads the trigger when it loses the race).
func TestPutTriggerKeepsRules(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	if _, err := svc.PutTrigger(ctx, "guest", "t", TriggerPut{}, false); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			if _, err := svc.PutRule(ctx, guest, fmt.Sprint("r", i), RulePut{Trigger: ref("/_/t"), Action: ref("/_/a")}, false); err != nil {
				t.Error(err)
			}
		}(i)
		go func(i int) {
			defer wg.Done()
			p := whisk.Params{{Key: "i", Value: json.RawMessage(fmt.Sprint(i))}}
			if _, err := svc.PutTrigger(ctx, "guest", "t", TriggerPut{Parameters: &p}, true); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	tr, err := svc.GetTrigger(ctx, "guest", "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Rules) != n || len(tr.Parameters) != 1 {
		t.Fatalf("trigger after the race: %d rules, parameters %v", len(tr.Rules), tr.Parameters)
	}
}
