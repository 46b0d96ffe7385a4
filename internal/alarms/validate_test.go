package alarms

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// now is the injected clock of these tests: 2026-03-01T12:00:00Z.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func params(kv ...string) Params {
	p := Params{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = json.RawMessage(kv[i+1])
	}
	return p
}

var trig = whisk.FQN{Namespace: "guest", Name: "t"}

func TestNewAlarmErrors(t *testing.T) {
	past := ms(now.Add(-5 * time.Second))
	soon := ms(now.Add(30 * time.Second))
	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"alarm without cron", params("trigger_payload", `"x"`), "alarms trigger feed is missing the cron parameter"},
		{"empty cron", params("cron", `""`), "alarms trigger feed is missing the cron parameter"},
		{"numeric cron", params("cron", `1700000000000`), "cron pattern '1700000000000' is not valid"},
		{"bad cron", params("cron", `"* * *"`), "cron pattern '* * *' is not valid"},
		{"seven fields", params("cron", `"* * * * * * *"`), "cron pattern '* * * * * * *' is not valid"},
		{"out of range minute", params("cron", `"61 * * * *"`), "cron pattern '61 * * * *' is not valid"},
		{"descriptor", params("cron", `"@hourly"`), "cron pattern '@hourly' is not valid"},
		{"bad timezone", params("cron", `"* * * * *"`, "timezone", `"America/RTP"`), "Invalid timezone."},
		{"limited fields", params("cron", `"* * * * * *"`, "limitCronFields", `true`), msgCronLimited},
		{"start in the past", params("cron", `"* * * * *"`, "startDate", past), "startDate parameter '" + past + "' must be in the future"},
		{"start not a date", params("cron", `"* * * * *"`, "startDate", `"tomorrow"`), "startDate parameter 'tomorrow' is not a valid Date"},
		{"stop not after start", params("cron", `"* * * * *"`, "startDate", soon, "stopDate", soon),
			"stopDate parameter '" + soon + "' must be greater than the startDate parameter '" + soon + "'"},
		{"stop before first fire", params("cron", `"0 0 1 1 *"`, "stopDate", soon), msgFirstAfterStop},
		{"maxTriggers with stop", params("cron", `"* * * * *"`, "maxTriggers", `5`, "stopDate", soon), msgMaxTriggersStop},
		{"once without date", params("fireOnce", `true`, "trigger_payload", `"x"`), msgOnceNoDate},
		{"once bad date", params("fireOnce", `true`, "date", `"tomorrow"`), "date parameter 'tomorrow' is not a valid Date"},
		{"once past date", params("fireOnce", `true`, "date", past), "date parameter '" + past + "' must be in the future"},
		{"once past ISO date", params("fireOnce", `true`, "date", `"2019-12-25T12:30:00.000Z"`), "date parameter '2019-12-25T12:30:00.000Z' must be in the future"},
		{"once bad deleteAfterFire", params("fireOnce", `true`, "date", soon, "deleteAfterFire", `"later"`), msgDeleteAfterFire},
		{"interval without minutes", params("isInterval", `true`), msgIntervalNoMinutes},
		{"interval words", params("isInterval", `true`, "minutes", `"five"`), msgMinutesInteger},
		{"interval fraction", params("isInterval", `true`, "minutes", `1.5`), msgMinutesInteger},
		{"interval negative", params("isInterval", `true`, "minutes", `-2`), msgMinutesPositive},
		{"interval maxTriggers", params("isInterval", `true`, "minutes", `2`, "maxTriggers", `3`, "stopDate", `"2030-01-01T00:00:00Z"`), msgIntervalMaxTrig},
		{"interval stop before default start", params("isInterval", `true`, "minutes", `2`, "stopDate", ms(now.Add(10*time.Second))),
			"stopDate parameter '" + ms(now.Add(10*time.Second)) + "' must be greater than the startDate parameter '" + ms(now.Add(30*time.Second)) + "'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := newAlarm(tc.p, trig, "u:k", now)
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			if got := whisk.UserMessage(err); got != tc.want {
				t.Fatalf("message %q, want %q", got, tc.want)
			}
			if k := whisk.KindOf(err); k != whisk.Invalid {
				t.Fatalf("kind %v, want invalid", k)
			}
		})
	}
}

func TestNewAlarmAccepted(t *testing.T) {
	a, err := newAlarm(params("cron", `"*/2 * * * * *"`, "timezone", `"Europe/Berlin"`, "trigger_payload", `"hello"`, "strict", `"true"`), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Feed != FeedAlarm || a.Cron != "*/2 * * * * *" || a.Timezone != "Europe/Berlin" || string(a.Payload) != `{"payload":"hello"}` || a.MaxTriggers != -1 {
		t.Fatalf("alarm %+v", a)
	}
	o, err := newAlarm(params("fireOnce", `true`, "date", `"2026-03-01T12:00:10Z"`, "deleteAfterFire", `" Rules "`, "trigger_payload", `{"k":1}`), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	if o.Feed != FeedOnce || o.DeleteAfterFire != "rules" || o.DateMs != now.Add(10*time.Second).UnixMilli() || string(o.Payload) != `{"k":1}` {
		t.Fatalf("once %+v", o)
	}
	i, err := newAlarm(params("isInterval", `true`, "minutes", `"3"`), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	if i.Feed != FeedInterval || i.Minutes != 3 || i.StartMs != now.Add(30*time.Second).UnixMilli() || string(i.Payload) != `{}` {
		t.Fatalf("interval %+v", i)
	}
}

func TestNext(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	created := now.UnixMilli()
	tests := []struct {
		name string
		a    Alarm
		last int64
		want []int64 // the next ticks in turn; none more after them
		more bool    // whether the schedule goes on after want
	}{
		{"every second", Alarm{Feed: FeedAlarm, Cron: "* * * * * *", Created: created}, 0,
			[]int64{at("2026-03-01T12:00:01Z"), at("2026-03-01T12:00:02Z"), at("2026-03-01T12:00:03Z")}, true},
		{"five fields is minutes", Alarm{Feed: FeedAlarm, Cron: "*/15 * * * *", Created: created}, 0,
			[]int64{at("2026-03-01T12:15:00Z"), at("2026-03-01T12:30:00Z")}, true},
		{"timezone", Alarm{Feed: FeedAlarm, Cron: "0 9 * * *", Timezone: "Asia/Tokyo", Created: created}, 0,
			[]int64{at("2026-03-02T00:00:00Z")}, true},
		{"start date", Alarm{Feed: FeedAlarm, Cron: "0 * * * *", Created: created, StartMs: at("2026-03-01T14:30:00Z")}, 0,
			[]int64{at("2026-03-01T15:00:00Z")}, true},
		{"stop date", Alarm{Feed: FeedAlarm, Cron: "0 * * * *", Created: created, StopMs: at("2026-03-01T14:00:00Z")}, 0,
			[]int64{at("2026-03-01T13:00:00Z"), at("2026-03-01T14:00:00Z")}, false},
		{"after last tick", Alarm{Feed: FeedAlarm, Cron: "* * * * * *", Created: created}, at("2026-03-01T12:05:00Z"),
			[]int64{at("2026-03-01T12:05:01Z")}, true},
		{"once", Alarm{Feed: FeedOnce, DateMs: at("2026-03-01T12:00:10Z"), Created: created}, 0,
			[]int64{at("2026-03-01T12:00:10Z")}, false},
		{"interval", Alarm{Feed: FeedInterval, Minutes: 2, StartMs: at("2026-03-01T12:00:30Z"), StopMs: at("2026-03-01T12:05:00Z"), Created: created}, 0,
			[]int64{at("2026-03-01T12:00:30Z"), at("2026-03-01T12:02:30Z"), at("2026-03-01T12:04:30Z")}, false},
		{"interval off-grid last", Alarm{Feed: FeedInterval, Minutes: 1, StartMs: at("2026-03-01T12:00:00Z"), Created: created}, at("2026-03-01T12:03:17Z"),
			[]int64{at("2026-03-01T12:04:00Z")}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			last := tc.last
			for i, w := range tc.want {
				got, ok := tc.a.Next(last)
				if !ok || got != w {
					t.Fatalf("tick %d: %v %v, want %v", i, time.UnixMilli(got).UTC(), ok, time.UnixMilli(w).UTC())
				}
				last = got
			}
			if _, ok := tc.a.Next(last); ok != tc.more {
				t.Fatalf("after the last expected tick: more=%v, want %v", ok, tc.more)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	soon := now.Add(time.Minute)
	i, err := newAlarm(params("isInterval", `true`, "minutes", `1`, "startDate", ms(now.Add(20*time.Second)), "stopDate", ms(now.Add(30*time.Second))), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	later := ms(now.Add(2000 * time.Second))
	err = update(i, params("startDate", later), "t", now)
	if got, want := whisk.UserMessage(err), "startDate parameter '"+later+"' must be less than the stopDate parameter '"+ms(now.Add(30*time.Second))+"'"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	o, err := newAlarm(params("fireOnce", `true`, "date", ms(soon)), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	// Parameters of another feed change nothing.
	if err := update(o, params("startDate", ms(soon), "cron", `"* * * * *"`), "t", now); whisk.UserMessage(err) != msgNothingToUpdate {
		t.Fatalf("got %v", err)
	}
	c, err := newAlarm(params("cron", `"* * * * *"`), trig, "u:k", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := update(c, params("cron", `"bad"`), "t", now); whisk.UserMessage(err) != "cron pattern 'bad' is not valid" {
		t.Fatalf("got %v", err)
	}
	c.Status = Status{Active: false, Reason: &Reason{Kind: "AUTO", Message: "x"}}
	if err := update(c, params("cron", `"*/5 * * * * *"`, "trigger_payload", `"p"`), "t", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c.Cron != "*/5 * * * * *" || string(c.Payload) != `{"payload":"p"}` || !c.Status.Active || c.Created != now.Add(time.Hour).UnixMilli() {
		t.Fatalf("updated %+v", c)
	}
}

func TestDateForms(t *testing.T) {
	want := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC).UnixMilli()
	for _, s := range []string{`"2026-03-01T12:30:00.000Z"`, `"2026-03-01T12:30:00Z"`, `"2026-03-01T13:30:00+01:00"`, `"2026-03-01T12:30"`, `"Sun, 01 Mar 2026 12:30:00 GMT"`, strconv.FormatInt(want, 10)} {
		got, ok := dateMs(json.RawMessage(s))
		if !ok || got != want {
			t.Errorf("%s: %d %v, want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{`"tomorrow"`, `true`, `{}`, `""`} {
		if _, ok := dateMs(json.RawMessage(s)); ok {
			t.Errorf("%s parsed", s)
		}
	}
}
