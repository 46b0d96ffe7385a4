package alarms

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The three feeds of /whisk.system/alarms.
const (
	FeedAlarm    = "alarm"    // cron
	FeedOnce     = "once"     // a date
	FeedInterval = "interval" // every N minutes
)

// Alarm is the stored document of one alarm trigger (the Doc of its
// whisk.EntityAlarm entity). The field names follow the alarms package's
// trigger documents where it has them; date parameters keep the JSON value
// the caller gave (READ answers with it) beside its parsed epoch ms.
type Alarm struct {
	Feed      string          `json:"feed"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	APIKey    string          `json:"apikey"` // the trigger owner's uuid:key; fires run as that identity
	Payload   json.RawMessage `json:"payload"`

	Cron     string          `json:"cron,omitempty"`
	Timezone string          `json:"timezone,omitempty"`
	Strict   json.RawMessage `json:"strict,omitempty"`

	Date            json.RawMessage `json:"date,omitempty"`
	DateMs          int64           `json:"dateMs,omitempty"`
	DeleteAfterFire string          `json:"deleteAfterFire,omitempty"`

	Minutes int `json:"minutes,omitempty"`

	StartDate   json.RawMessage `json:"startDate,omitempty"`
	StartMs     int64           `json:"startMs,omitempty"`
	StopDate    json.RawMessage `json:"stopDate,omitempty"`
	StopMs      int64           `json:"stopMs,omitempty"`
	MaxTriggers int             `json:"maxTriggers"` // -1: no limit (deprecated upstream; kept)

	Status Status `json:"status"`

	// Created (epoch ms) anchors the schedule: the first cron tick is the
	// first match after it (or after StartMs); an UPDATE moves it to now.
	Created int64 `json:"created"`
	// FirstTick and LastTick are the first and the last tick fired
	// (epoch ms; 0: none yet).
	FirstTick int64 `json:"firstTick,omitempty"`
	LastTick  int64 `json:"lastTick"`
	// Pending is a tick claimed for firing and not yet known to be fired
	// (0: none); PendingBy names the provider that claimed it.
	Pending   int64  `json:"pending,omitempty"`
	PendingBy string `json:"pendingBy,omitempty"`
	PendingAt int64  `json:"pendingAt,omitempty"` // when it was claimed (epoch ms)
	// Fired counts the ticks fired; Skipped the ticks older than the
	// catch-up window when a provider found them, never fired.
	Fired   int64 `json:"fired"`
	Skipped int64 `json:"skipped,omitempty"`
}

// Status is the alarm's status as READ shows it.
type Status struct {
	Active      bool    `json:"active"`
	DateChanged int64   `json:"dateChanged"`
	Reason      *Reason `json:"reason,omitempty"`
}

// Reason says why an alarm is not active.
type Reason struct {
	Kind       string `json:"kind"` // AUTO (by the provider) or USER (PAUSE)
	StatusCode int    `json:"statusCode,omitempty"`
	Message    string `json:"message"`
}

// Trigger names the alarm's trigger.
func (a *Alarm) Trigger() whisk.FQN { return whisk.FQN{Namespace: a.Namespace, Name: a.Name} }

// cronParser accepts 5 fields, or 6 with seconds first, as the node "cron"
// module of the alarms package does.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// errBadTimezone is node-cron's message for an unknown zone, which the
// alarms package passes on as it is.
const msgBadTimezone = "Invalid timezone."

// parseCron parses spec in timezone tz ("" = UTC). The error is the
// alarms package's user message.
func parseCron(spec, tz string) (cron.Schedule, error) {
	loc := time.UTC
	if tz != "" {
		l, err := loadZone(tz)
		if err != nil {
			return nil, whisk.Errorf(whisk.Invalid, msgBadTimezone)
		}
		loc = l
	}
	if strings.Contains(spec, "@") || strings.Contains(spec, "TZ=") {
		return nil, whisk.Errorf(whisk.Invalid, "cron pattern '%s' is not valid", spec)
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, whisk.Errorf(whisk.Invalid, "cron pattern '%s' is not valid", spec)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return s, nil
}

// loadZone loads an IANA zone; "Local" (the server's zone) is refused, as
// moment-timezone knows no such zone.
func loadZone(tz string) (*time.Location, error) {
	if tz == "Local" {
		return nil, fmt.Errorf("unknown time zone %s", tz)
	}
	return time.LoadLocation(tz)
}

// hasSecondsGranularity is the alarms package's test for limitCronFields:
// six fields whose seconds field is not "0".
func hasSecondsGranularity(spec string) bool {
	f := strings.Fields(spec)
	return len(f) > 5 && f[len(f)-6] != "0"
}

// Next returns the alarm's first tick strictly after the tick last (0: the
// first tick of all), and false when there is none (a once alarm that
// fired, a schedule past its stop date, an unparsable cron).
func (a *Alarm) Next(last int64) (int64, bool) {
	var t int64
	switch a.Feed {
	case FeedOnce:
		if last >= a.DateMs {
			return 0, false
		}
		t = a.DateMs
	case FeedInterval:
		if a.Minutes <= 0 {
			return 0, false
		}
		step := int64(a.Minutes) * 60_000
		start := a.StartMs
		if start == 0 {
			start = a.Created
		}
		if last < start {
			t = start
		} else {
			t = start + ((last-start)/step+1)*step
		}
	default:
		s, err := parseCron(a.Cron, a.Timezone)
		if err != nil {
			return 0, false
		}
		from := max(last, a.Created)
		if a.StartMs > 0 && last < a.StartMs {
			from = max(from, a.StartMs)
		}
		n := s.Next(time.UnixMilli(from))
		if n.IsZero() {
			return 0, false
		}
		t = n.UnixMilli()
	}
	if a.StopMs > 0 && t > a.StopMs {
		return 0, false
	}
	return t, true
}
