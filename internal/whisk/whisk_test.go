package whisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestKindOfAndStatus(t *testing.T) {
	base := E("store.Get", NotFound, MsgNotFound, errors.New("no rows"))
	wrapped := fmt.Errorf("api: %w", base)
	if KindOf(wrapped) != NotFound || KindOf(wrapped).HTTPStatus() != http.StatusNotFound {
		t.Fatalf("KindOf(wrapped) = %v", KindOf(wrapped))
	}
	if UserMessage(wrapped) != MsgNotFound {
		t.Fatalf("UserMessage = %q", UserMessage(wrapped))
	}
	if KindOf(errors.New("plain")) != Internal || UserMessage(errors.New("secret detail")) != MsgInternal {
		t.Fatal("an unclassified error must be internal and must not leak its text")
	}
	// The outermost kind wins; an Other-kinded wrapper defers to its cause.
	outer := E("x", Other, "", E("y", Throttled, "slow down", nil))
	if KindOf(outer) != Throttled || UserMessage(outer) != "slow down" {
		t.Fatalf("KindOf(outer) = %v, %q", KindOf(outer), UserMessage(outer))
	}
	for k, want := range map[Kind]int{Invalid: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
		TooLarge: 413, Throttled: 429, Unavailable: 503, Internal: 500, Other: 500, Timeout: 504} {
		if got := k.HTTPStatus(); got != want {
			t.Errorf("%v.HTTPStatus() = %d, want %d", k, got, want)
		}
	}
}

// entityNameRE is OpenWhisk's entity-name rule: first character a word
// character, then word characters, space, '@', '.' or '-', not ending in a
// space. ValidName checks it by hand (every API call checks a name; the
// regexp was 1% of a call's CPU); this test holds the two to agree.
var entityNameRE = regexp.MustCompile(`\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z`)

// TestValidNameMatchesRule: ValidName agrees with OpenWhisk's rule as a
// regexp (entityNameRE) on every string of up to 3 bytes over an alphabet
// of the rule's classes and their neighbours, and on longer mixes.
func TestValidNameMatchesRule(t *testing.T) {
	alphabet := []byte("aZ09_@ .-/\t:~\x00\x7f\xc3\xa9")
	check := func(s string) {
		t.Helper()
		want := len(s) <= MaxNameLength && entityNameRE.MatchString(s)
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v; the rule says %v", s, got, want)
		}
	}
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		check(string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c), n-1)
		}
	}
	gen(nil, 3)
	for _, s := range []string{"hello world", "a b c", "x@y.z-w", "ab ", "a  b", "é", "aé", "a-", "a@", "a.", "_", "__ __",
		strings.Repeat("a", 256), strings.Repeat("a", 255) + " ", strings.Repeat("a", 257)} {
		check(s)
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"hello": true, "a": true, "_x": true, "with space.and-dash@x": true,
		"": false, " lead": false, "trail ": false, "-dash": false, "a/b": false, strings.Repeat("a", 257): false,
	} {
		if ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v, want %v", name, !ok, ok)
		}
	}
	id := NewActivationID()
	if _, err := ParseActivationID(string(id)); err != nil || len(id) != 32 {
		t.Fatalf("minted id %q does not parse: %v", id, err)
	}
	for _, bad := range []string{"", "xyz", strings.ToUpper(string(id)), string(id) + "0"} {
		if _, err := ParseActivationID(bad); !IsKind(err, Invalid) {
			t.Errorf("ParseActivationID(%q) err = %v", bad, err)
		}
	}
	if TopicSafe("a/b") == TopicSafe("a_b") || TopicSafe("ok.name-1") != "ok.name-1" {
		t.Fatalf("TopicSafe collides or mangles: %q %q", TopicSafe("a/b"), TopicSafe("a_b"))
	}
}

func TestParams(t *testing.T) {
	p := Params{{Key: "a", Value: json.RawMessage(`1`)}, {Key: "b", Value: json.RawMessage(`2`)}}
	m := p.Merge(Params{{Key: "b", Value: json.RawMessage(`3`)}, {Key: "c", Value: json.RawMessage(`true`)}})
	got, _ := json.Marshal(m)
	if string(got) != `[{"key":"a","value":1},{"key":"b","value":3},{"key":"c","value":true}]` {
		t.Fatalf("Merge = %s", got)
	}
	if !m.IsTrue("c") || m.IsTrue("a") || len(m.Without([]string{"a", "c"})) != 1 {
		t.Fatal("IsTrue/Without wrong")
	}
}

func TestLimitsCheck(t *testing.T) {
	s := DefaultSystemLimits()
	if err := s.Check(s.Defaults()); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	cases := map[string]Limits{
		"memory 1024 MB exceeds allowed threshold of 512 MB":                  {Timeout: 60000, Memory: 1024, Logs: 10, Concurrency: 1},
		"memory 64 MB below allowed threshold of 128 MB":                      {Timeout: 60000, Memory: 64, Logs: 10, Concurrency: 1},
		"timeout 50 milliseconds below allowed threshold of 100 milliseconds": {Timeout: 50, Memory: 256, Logs: 10, Concurrency: 1},
		"logs 11 MB exceeds allowed threshold of 10 MB":                       {Timeout: 60000, Memory: 256, Logs: 11, Concurrency: 1},
		"concurrency 2 exceeds allowed threshold of 1":                        {Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 2},
	}
	for want, l := range cases {
		err := s.Check(l)
		if !IsKind(err, Invalid) || UserMessage(err) != want {
			t.Errorf("Check(%v) = %v, want %q", l, err, want)
		}
	}
}

func TestAnnotateAndBinary(t *testing.T) {
	var a Activation
	meta := ActionMeta{Namespace: "guest", Name: "hello", Kind: "python:3.11", Limits: DefaultSystemLimits().Defaults()}
	a.Annotate(meta, Timings{Queued: 5, Create: 100, Init: 40, Run: 3, Start: StartCold}, false)
	if v, ok := a.Annotations.Get(AnnInitTime); !ok || string(v) != "40" {
		t.Fatalf("cold record initTime = %s, %v", v, ok)
	}
	var w Activation
	w.Annotate(meta, Timings{Queued: 1, Run: 3, Start: StartWarm}, false)
	if _, ok := w.Annotations.Get(AnnInitTime); ok {
		t.Fatal("warm record has initTime")
	}
	if v, ok := a.Annotations.Get(AnnStart); !ok || string(v) != `"cold"` {
		t.Errorf("cold record start = %s, %v", v, ok)
	}
	if v, ok := w.Annotations.Get(AnnStart); !ok || string(v) != `"warm"` {
		t.Errorf("warm record start = %s, %v", v, ok)
	}
	var p Activation
	p.Annotate(meta, Timings{Queued: 2, Init: 30, Run: 3, Start: StartPrewarm}, false)
	if v, ok := p.Annotations.Get(AnnStart); !ok || string(v) != `"prewarm"` {
		t.Errorf("prewarm record start = %s, %v", v, ok)
	}
	if v, ok := p.Annotations.Get(AnnInitTime); !ok || string(v) != "30" {
		t.Errorf("prewarm record initTime = %s, %v", v, ok)
	}
	if (InvokerInfo{FreeMemory: 100, StemCellMemory: 256}).Available() != 356 {
		t.Error("Available does not count idle stem cells")
	}
	if !LooksBinary("UEsDBAoAAAAAAA==") || LooksBinary("def main(args): pass") || LooksBinary("") {
		t.Fatal("LooksBinary wrong")
	}
	if r := ErrorResponse(StatusDeveloperError, "boom"); r.Success || r.Status != "action developer error" || string(r.Result) != `{"error":"boom"}` {
		t.Fatalf("ErrorResponse = %+v", r)
	}
}

func TestThrottle(t *testing.T) {
	th := &Throttle{Limit: LimitConcurrentContainers, RetryAfter: 1500 * time.Millisecond, Count: 5, Allowed: 4}
	err := fmt.Errorf("wrapped: %w", ThrottledError("op", th))
	if KindOf(err) != Throttled || Throttled.HTTPStatus() != 429 || UserMessage(err) != MsgTooManyConcurrent(5, 4) ||
		ThrottleOf(err) != th || th.RetryAfterSeconds() != 2 {
		t.Fatalf("throttle error %v", err)
	}
	if ThrottleOf(Errorf(Throttled, "x")) != nil || (&Throttle{}).RetryAfterSeconds() != 1 {
		t.Fatal("ThrottleOf or RetryAfterSeconds")
	}
	if (&Throttle{Limit: LimitInvocationsPerMinute, Count: 2, Allowed: 1}).Message() != MsgTooManyPerMinute(2, 1) {
		t.Fatal("per-minute message")
	}
	var a Activation
	if ThrottleOfRecord(a) != nil {
		t.Fatal("a record without the marker is throttled")
	}
	a.Response = ErrorResponse(StatusWhiskError, MsgTooManyConcurrent(7, 7))
	if ThrottleOfRecord(a) != nil {
		t.Fatal("the message text alone marks a record throttled")
	}
	want := &Throttle{Limit: LimitConcurrentContainers, Count: 7, Allowed: 5, RetryAfter: 1500 * time.Millisecond}
	a.MarkThrottled(want)
	if got := ThrottleOfRecord(a); got == nil || *got != *want || got.RetryAfterSeconds() != 2 {
		t.Fatalf("ThrottleOfRecord = %+v, want %+v", got, want)
	}
	b, _ := json.Marshal(a)
	var back Activation
	if err := json.Unmarshal(b, &back); err != nil || ThrottleOfRecord(back) == nil {
		t.Fatalf("the marker does not survive JSON: %s", b)
	}
	back.Annotations = Params{{Key: AnnThrottled, Value: json.RawMessage(`{"limit":"other"}`)}}
	if ThrottleOfRecord(back) != nil {
		t.Fatal("an unknown limit is a throttle")
	}
}

func TestAuthKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u, k := NewAuthKey()
		pu, pk, err := ParseAuthKey(u + ":" + k)
		if err != nil || pu != u || pk != k {
			t.Fatalf("ParseAuthKey(NewAuthKey() %s:%s) = %s, %s, %v", u, k, pu, pk, err)
		}
		if seen[u] || seen[k] {
			t.Fatalf("repeated uuid or key %s:%s", u, k)
		}
		seen[u], seen[k] = true, true
	}
	if _, _, err := ParseAuthKey(GuestUUID + ":" + GuestKey); err != nil {
		t.Errorf("guest key: %v", err)
	}
	for _, bad := range []string{"", "nocolon", "not-a-uuid:" + GuestKey, GuestUUID + ":short", GuestUUID + ":" + GuestKey[:60] + "!!!!"} {
		if _, _, err := ParseAuthKey(bad); !IsKind(err, Invalid) {
			t.Errorf("ParseAuthKey(%q) = %v, want Invalid", bad, err)
		}
	}
}

func TestNamespaceLimitsEffective(t *testing.T) {
	sys := DefaultSystemLimits()
	for _, tc := range []struct{ in, want NamespaceLimits }{
		{NamespaceLimits{}, NamespaceLimits{sys.InvocationsPerMinute, sys.ConcurrentContainers, sys.FiresPerMinute}},
		{NamespaceLimits{InvocationsPerMinute: 5}, NamespaceLimits{5, sys.ConcurrentContainers, sys.FiresPerMinute}},
		{NamespaceLimits{ConcurrentContainers: 2}, NamespaceLimits{sys.InvocationsPerMinute, 2, sys.FiresPerMinute}},
		{NamespaceLimits{FiresPerMinute: 4}, NamespaceLimits{sys.InvocationsPerMinute, sys.ConcurrentContainers, 4}},
		{NamespaceLimits{7, 3, 9}, NamespaceLimits{7, 3, 9}},
	} {
		if got := tc.in.Effective(sys); got != tc.want {
			t.Errorf("%+v.Effective = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestAnnotateEncodesAsMarshal: the hand-encoded annotations are byte for
// byte what json.Marshal gives for the same values, in the same order,
// merged over existing annotations as before.
func TestAnnotateEncodesAsMarshal(t *testing.T) {
	// The encoders know every field: a new one must be added to them.
	if n := reflect.TypeOf(Limits{}).NumField(); n != 5 {
		t.Fatalf("Limits has %d fields: update Limits.appendJSON", n)
	}
	if n := reflect.TypeOf(Timings{}).NumField(); n != 5 {
		t.Fatalf("Timings has %d fields: update Timings.appendJSON", n)
	}
	marshal := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	metas := []ActionMeta{
		{Namespace: "guest", Name: "hello", Kind: "python:3.11", Limits: DefaultSystemLimits().Defaults()},
		{Namespace: "ns", Name: "pkg/a<b>&\"c\\d\u00e9\u2028", Kind: "nodejs:18", Limits: Limits{Timeout: 1, Memory: 2, Logs: 3, Concurrency: 4, Instances: 5}},
		{Namespace: "x\ny", Name: "", Kind: "", Limits: Limits{Timeout: -1}},
		{Namespace: "a", Name: "b<", Kind: "c&", Limits: Limits{Memory: 256}},
	}
	timings := []Timings{
		{Queued: 5, Create: 100, Init: 40, Run: 3, Start: StartCold},
		{Queued: 1, Run: 3, Start: StartWarm},
		{Queued: 2, Init: 30, Run: 3, Start: StartPrewarm},
		{Queued: -7, Run: 0},
		{Start: "we\"ird"},
		{Start: "x>"},
	}
	for _, meta := range metas {
		for _, tm := range timings {
			for _, timedOut := range []bool{false, true} {
				before := Params{{Key: "custom", Value: json.RawMessage(`1`)}, {Key: AnnKind, Value: json.RawMessage(`"old"`)}}
				var want Params
				for _, kv := range before {
					want = append(want, kv)
				}
				add := func(k string, v any) { want = want.Merge(Params{{Key: k, Value: marshal(v)}}) }
				add(AnnPath, meta.Namespace+"/"+meta.Name)
				add(AnnKind, meta.Kind)
				add(AnnLimits, meta.Limits)
				add(AnnTimeout, timedOut)
				add(AnnWaitTime, tm.Queued)
				if tm.Start != StartWarm && tm.Init > 0 {
					add(AnnInitTime, tm.Init)
				}
				if tm.Start != "" {
					add(AnnStart, tm.Start)
				}
				add(AnnTimings, tm)

				a := Activation{Annotations: before}
				a.Annotate(meta, tm, timedOut)
				// Compared raw: marshalling a RawMessage would re-escape it.
				show := func(p Params) string {
					var b strings.Builder
					for _, kv := range p {
						fmt.Fprintf(&b, "%s=%s;", kv.Key, kv.Value)
					}
					return b.String()
				}
				if got, want := show(a.Annotations), show(want); got != want {
					t.Errorf("Annotate(%+v, %+v, %v):\n got %s\nwant %s", meta, tm, timedOut, got, want)
				}
			}
		}
	}
}
