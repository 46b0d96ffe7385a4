package alarms

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The alarms package's messages (action/alarmWebAction.js), word for word.
const (
	msgNoTriggerName      = "no trigger name parameter was provided"
	msgOnceNoDate         = "alarms once trigger feed is missing the date parameter"
	msgDeleteAfterFire    = "deleteAfterFire parameter must be one of [false, true, rules]."
	msgIntervalNoMinutes  = "interval trigger feed is missing the minutes parameter"
	msgMinutesInteger     = "the minutes parameter must be an integer"
	msgMinutesPositive    = "the minutes parameter must be an integer greater than zero"
	msgAlarmNoCron        = "alarms trigger feed is missing the cron parameter"
	msgCronLimited        = "cron pattern is limited to 5 fields with 1 minute as the finest granularity"
	msgIntervalMaxTrig    = "maxTriggers is not supported for the interval trigger feed"
	msgMaxTriggersStop    = "maxTriggers is not allowed when the stopDate parameter is specified"
	msgFirstAfterStop     = "the first scheduled trigger fire is not until after the stop date"
	msgNothingToUpdate    = "no updatable parameters were specified"
	msgUnsupportedEvent   = "unsupported lifecycleEvent"
	msgTriggerAuthFailed  = "Trigger authentication request failed."
	intervalDefaultStartS = 30 // interval's startDate default: now + 30 s
)

func invalid(format string, args ...any) error { return whisk.Errorf(whisk.Invalid, format, args...) }

// validateDate is the alarms package's validateDate: the date must parse,
// lie in the future, and (given a start) lie after the start.
func validateDate(p Params, k string, now time.Time, start json.RawMessage) (int64, error) {
	ms, ok := dateMs(p[k])
	switch {
	case !ok:
		return 0, invalid("%s parameter '%s' is not a valid Date", k, p.text(k))
	case now.UnixMilli() >= ms:
		return 0, invalid("%s parameter '%s' must be in the future", k, p.text(k))
	}
	if len(start) > 0 {
		if sms, ok := dateMs(start); ok && ms <= sms {
			return 0, invalid("%s parameter '%s' must be greater than the startDate parameter '%s'", k, p.text(k), jsText(start))
		}
	}
	return ms, nil
}

// payload is the trigger payload: a string s becomes {"payload": s}, an
// object stays; anything else (absent, "", null) is {}.
func payload(p Params) json.RawMessage {
	v, ok := p["trigger_payload"]
	if !ok || !p.truthy("trigger_payload") {
		return json.RawMessage(`{}`)
	}
	if p.isString("trigger_payload") {
		b, _ := json.Marshal(map[string]json.RawMessage{"payload": v})
		return b
	}
	return v
}

// minutes validates the minutes parameter (present and truthy).
func minutes(p Params) (int, error) {
	s := p.text("minutes")
	// +params.minutes !== parseInt(params.minutes): the whole value must
	// be an integer.
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		if f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil && f == float64(int(f)) {
			n, err = int(f), nil
		}
	}
	if err != nil {
		return 0, invalid(msgMinutesInteger)
	}
	if n <= 0 {
		return 0, invalid(msgMinutesPositive)
	}
	return n, nil
}

func deleteAfterFire(p Params) (string, error) {
	d := strings.ToLower(strings.TrimSpace(p.text("deleteAfterFire")))
	switch d {
	case "false", "true", "rules":
		return d, nil
	}
	return "", invalid(msgDeleteAfterFire)
}

// newAlarm validates a CREATE as the alarms package's POST does and
// returns the alarm to store (status active, nothing fired).
func newAlarm(p Params, trigger whisk.FQN, apikey string, now time.Time) (*Alarm, error) {
	a := &Alarm{
		Namespace:   trigger.Namespace,
		Name:        trigger.Name,
		APIKey:      apikey,
		Payload:     payload(p),
		MaxTriggers: -1,
		Created:     now.UnixMilli(),
		Status:      Status{Active: true, DateChanged: now.UnixMilli()},
	}
	if p.truthy("maxTriggers") {
		if n, err := strconv.Atoi(p.text("maxTriggers")); err == nil {
			a.MaxTriggers = n
		}
	}
	if p.truthy("fireOnce") {
		a.Feed = FeedOnce
		if !p.truthy("date") {
			return nil, invalid(msgOnceNoDate)
		}
		ms, err := validateDate(p, "date", now, nil)
		if err != nil {
			return nil, err
		}
		a.Date, a.DateMs = p["date"], ms
		if p.truthy("deleteAfterFire") {
			d, err := deleteAfterFire(p)
			if err != nil {
				return nil, err
			}
			a.DeleteAfterFire = d
		}
		return a, nil
	}

	if p.truthy("isInterval") {
		a.Feed = FeedInterval
		if !p.truthy("minutes") {
			return nil, invalid(msgIntervalNoMinutes)
		}
		n, err := minutes(p)
		if err != nil {
			return nil, err
		}
		a.Minutes = n
	} else {
		a.Feed = FeedAlarm
		if !p.truthy("cron") {
			return nil, invalid(msgAlarmNoCron)
		}
		spec := p.text("cron")
		if !p.isString("cron") {
			return nil, invalid("cron pattern '%s' is not valid", spec)
		}
		tz := ""
		if p.truthy("timezone") {
			tz = p.text("timezone")
		}
		if _, err := parseCron(spec, tz); err != nil {
			return nil, err
		}
		if p.truthy("limitCronFields") && hasSecondsGranularity(spec) {
			return nil, invalid(msgCronLimited)
		}
		a.Cron, a.Timezone, a.Strict = spec, tz, p["strict"]
	}

	var start json.RawMessage
	if p.truthy("startDate") {
		ms, err := validateDate(p, "startDate", now, nil)
		if err != nil {
			return nil, err
		}
		a.StartDate, a.StartMs = p["startDate"], ms
		start = p["startDate"]
	} else if a.Feed == FeedInterval {
		a.StartMs = now.UnixMilli() + intervalDefaultStartS*1000
		a.StartDate = json.RawMessage(strconv.FormatInt(a.StartMs, 10))
		start = a.StartDate
	}

	switch {
	case p.truthy("maxTriggers") && p.truthy("stopDate"):
		if a.Feed == FeedInterval {
			return nil, invalid(msgIntervalMaxTrig)
		}
		return nil, invalid(msgMaxTriggersStop)
	case p.truthy("stopDate"):
		ms, err := validateDate(p, "stopDate", now, start)
		if err != nil {
			return nil, err
		}
		a.StopDate, a.StopMs = p["stopDate"], ms
		if a.Feed == FeedAlarm {
			// The cron's next fire from now must come before the stop date.
			s, _ := parseCron(a.Cron, a.Timezone)
			if s.Next(now).UnixMilli() > ms {
				return nil, invalid(msgFirstAfterStop)
			}
		}
	}
	return a, nil
}

// update validates an UPDATE as the alarms package's PUT does and applies
// it to a. It fails with msgNothingToUpdate when p changes nothing.
func update(a *Alarm, p Params, trigger string, now time.Time) error {
	if a.Status.Reason != nil && a.Status.Reason.Kind == "ADMIN" {
		return invalid("%s cannot be updated because it was disabled by an admin.  Please contact support for further assistance", trigger)
	}
	u := *a
	changed := false
	if p.truthy("trigger_payload") {
		u.Payload, changed = payload(p), true
	}
	if a.Feed == FeedOnce {
		if p.truthy("date") {
			ms, err := validateDate(p, "date", now, nil)
			if err != nil {
				return err
			}
			u.Date, u.DateMs, changed = p["date"], ms, true
		}
		if p.truthy("deleteAfterFire") {
			d, err := deleteAfterFire(p)
			if err != nil {
				return err
			}
			u.DeleteAfterFire, changed = d, true
		}
	} else {
		if a.Feed == FeedInterval {
			if p.truthy("minutes") {
				n, err := minutes(p)
				if err != nil {
					return err
				}
				u.Minutes, changed = n, true
			}
		} else {
			if p.truthy("cron") || p.truthy("timezone") {
				spec, tz := a.Cron, a.Timezone
				if p.truthy("cron") {
					spec = p.text("cron")
				}
				if p.truthy("timezone") {
					tz = p.text("timezone")
				}
				if p.truthy("cron") && !p.isString("cron") {
					return invalid("cron pattern '%s' is not valid", spec)
				}
				if _, err := parseCron(spec, tz); err != nil {
					return err
				}
				if p.truthy("cron") && p.truthy("limitCronFields") && hasSecondsGranularity(spec) {
					return invalid(msgCronLimited)
				}
				u.Cron, u.Timezone, changed = spec, tz, true
			}
			if p.has("strict") {
				u.Strict, changed = p["strict"], true
			}
		}
		if p.truthy("startDate") {
			ms, err := validateDate(p, "startDate", now, nil)
			if err != nil {
				return err
			}
			u.StartDate, u.StartMs, changed = p["startDate"], ms, true
		}
		if p.truthy("stopDate") {
			start := a.StartDate
			if p.truthy("startDate") {
				start = p["startDate"]
			}
			ms, err := validateDate(p, "stopDate", now, start)
			if err != nil {
				return err
			}
			u.StopDate, u.StopMs, changed = p["stopDate"], ms, true
		} else if p.truthy("startDate") && a.StopMs > 0 && u.StartMs >= a.StopMs {
			return invalid("startDate parameter '%s' must be less than the stopDate parameter '%s'", p.text("startDate"), jsText(a.StopDate))
		}
	}
	if !changed {
		return invalid(msgNothingToUpdate)
	}
	// A new schedule starts afresh from now: ticks before the update are
	// not caught up under it (the alarms package restarts the job).
	u.Created = max(now.UnixMilli(), a.Created)
	if u.Feed == FeedOnce && u.DateMs != a.DateMs {
		u.LastTick = 0
	}
	u.Status = Status{Active: true, DateChanged: now.UnixMilli()}
	*a = u
	return nil
}
