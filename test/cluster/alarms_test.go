package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/alarms"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestKillAlarmOwner: a per-second alarm (the finest granularity of the
// alarms package's 6-field cron) with a rule runs for about a minute; the
// scheduler that owns the alarm's shard is killed with SIGKILL a third of
// the way in. Every tick from the first fire to the last must be fired
// exactly once (one trigger record and one rule action record per tick),
// the ticks missed during the fail-over fired late within the bound that
// docs/alarms.md states.
func TestKillAlarmOwner(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, "EDDY_LEASE_TTL=3s", "EDDY_INVOCATIONS_PER_MINUTE=100000", "EDDY_FIRES_PER_MINUTE=100000")
	ctl := c.ctl1
	ctl.must(200, "PUT", "/api/v1/namespaces/_/actions/tock", map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	ctl.must(200, "PUT", "/api/v1/namespaces/_/triggers/tick", map[string]any{
		"annotations": []map[string]any{{"key": "feed", "value": "/whisk.system/alarms/alarm"}},
	})
	ctl.must(200, "PUT", "/api/v1/namespaces/_/rules/tick-tock", map[string]any{"trigger": "/_/tick", "action": "/_/tock"})
	created := time.Now()
	out := ctl.must(200, "POST", "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true&result=true", map[string]any{
		"lifecycleEvent": "CREATE", "triggerName": "/_/tick", "authKey": guestAuth,
		"cron": "* * * * * *", "trigger_payload": map[string]any{"name": "alarm"},
	})
	if !strings.Contains(string(out), `"success"`) {
		t.Fatalf("feed CREATE: %s", out)
	}

	// Who owns the alarm's shard (etcd, as the providers see it).
	etcd, err := cluster.DialTLS(context.Background(), strings.Split(c.etcdEPs, ","), c.clientTLS(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	shard := alarms.ShardOf(whisk.FQN{Namespace: "guest", Name: "tick"}, 16)
	owner := func() string {
		o, err := etcd.AlarmShardOwners(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return o[shard]
	}
	read := func(a api) map[string]any {
		out := a.must(200, "POST", "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true&result=true", map[string]any{
			"lifecycleEvent": "READ", "triggerName": "/_/tick", "authKey": guestAuth,
		})
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		return m["status"].(map[string]any)
	}

	time.Sleep(20 * time.Second)
	victim := owner()
	if !strings.HasPrefix(victim, "scheduler") {
		t.Fatalf("no owner of shard %d: %q", shard, victim)
	}
	killAt := time.Now()
	c.kill9(victim)
	t.Logf("kill -9 %s (owner of alarm shard %d) at %s", victim, shard, killAt.Format("15:04:05.000"))
	newOwner := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && (newOwner == "" || newOwner == victim); time.Sleep(100 * time.Millisecond) {
		newOwner = owner()
	}
	t.Logf("shard %d owned by %q %v after the kill", shard, newOwner, time.Since(killAt).Round(time.Millisecond))
	time.Sleep(time.Until(created.Add(60 * time.Second)))

	// Stop the alarm and let the last fire's records land.
	ctl = c.ctl2
	ctl.must(200, "POST", "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true&result=true", map[string]any{
		"lifecycleEvent": "PAUSE", "triggerName": "/_/tick", "authKey": guestAuth,
	})
	st := read(ctl)
	first, _ := st["firstTick"].(float64)
	last, _ := st["lastTick"].(float64)
	fired, _ := st["fired"].(float64)
	ticks := int((last-first)/1000) + 1
	t.Logf("alarm: fired %v, ticks %s .. %s (%d), skipped %v", fired, time.UnixMilli(int64(first)).Format("15:04:05"),
		time.UnixMilli(int64(last)).Format("15:04:05"), ticks, st["skipped"])

	triggerRecs := listRecords(t, ctl, "tick", created, ticks)
	actionRecs := listRecords(t, ctl, "tock", created, ticks)
	t.Logf("records: %d of the trigger, %d of the rule's action", len(triggerRecs), len(actionRecs))
	if int(fired) != ticks || len(triggerRecs) != ticks || len(actionRecs) != ticks {
		t.Errorf("want every tick fired once: %d ticks, fired %v, %d trigger records, %d action records", ticks, fired, len(triggerRecs), len(actionRecs))
	}
	// The i-th fire is of the i-th tick: how late was each?
	sort.Slice(triggerRecs, func(i, j int) bool { return triggerRecs[i].Start < triggerRecs[j].Start })
	var late []string
	worst := time.Duration(0)
	for i, r := range triggerRecs {
		tick := int64(first) + int64(i)*1000
		d := time.Duration(r.Start-tick) * time.Millisecond
		worst = max(worst, d)
		if d > time.Second {
			late = append(late, fmt.Sprintf("%s +%v", time.UnixMilli(tick).Format("15:04:05"), d.Round(time.Millisecond)))
		}
	}
	t.Logf("ticks fired more than 1 s late: %d %v; latest %v", len(late), late, worst.Round(time.Millisecond))
	// docs/alarms.md: a tick is fired at most lease TTL + pending grace
	// (2 s) + poll (0.5 s) + one tick after it was due, plus the fire
	// itself; 2 s for that on a loaded machine.
	if bound := ttl + 2*time.Second + 500*time.Millisecond + time.Second + 2*time.Second; worst > bound {
		t.Errorf("a tick was fired %v late, more than the documented bound %v", worst, bound)
	}
	if newOwner == "" || newOwner == victim {
		t.Errorf("no other scheduler took shard %d over", shard)
	}
}

// listRecords lists the records of name started since, waiting until
// there are at least want of them (or 30 s passed).
func listRecords(t *testing.T, a api, name string, since time.Time, want int) []whisk.Activation {
	t.Helper()
	var recs []whisk.Activation
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		out := a.must(200, "GET", fmt.Sprintf("/api/v1/namespaces/_/activations?name=%s&since=%d&limit=200&docs=true", name, since.UnixMilli()), nil)
		recs = nil
		if err := json.Unmarshal(out, &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) >= want || time.Now().After(deadline) {
			return recs
		}
	}
}
