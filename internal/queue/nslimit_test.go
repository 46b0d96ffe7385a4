package queue

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The namespace's container limit comes with each activation message (the
// controller puts the namespace's stored limit, else the default, on it)
// and replaces the queue's configured one: the same namespace counts are
// refused under a message's limit of 2 and served under a later one of 3.
func TestMessageNamespaceLimit(t *testing.T) {
	h := newHarness(t) // configured limit: 100
	h.nsOther = 2      // containers of the namespace's other actions
	withLimit := func(off int64, limit int) whisk.ActivationMessage {
		m := activation(fmt.Sprintf("%031d%d", 0, off), 1)
		m.NamespaceLimit = limit
		return m
	}
	h.msgWith(0, withLimit(0, 2))
	h.drain()
	if len(h.creates) != 0 || len(h.records) != 1 {
		t.Fatalf("limit 2 with 2 containers: %d creations, %d records", len(h.creates), len(h.records))
	}
	var res struct{ Error string }
	if err := json.Unmarshal(h.records[0].Response.Result, &res); err != nil || res.Error != whisk.MsgTooManyConcurrent(2, 2) {
		t.Fatalf("record %s", h.records[0].Response.Result)
	}
	h.advance(time.Second)
	h.msgWith(1, withLimit(1, 3))
	h.advance(200 * time.Millisecond)
	h.tick()
	h.drain()
	if len(h.creates) != 1 || len(h.records) != 1 {
		t.Fatalf("limit 3 with 2 containers: %d creations, %d records; want 1 and 1", len(h.creates), len(h.records))
	}
}
