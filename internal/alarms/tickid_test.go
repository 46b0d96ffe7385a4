package alarms

import "testing"

// TestTickID: every provider derives the same id for one tick of one
// alarm; another tick, or an alarm of the same name created again, gets
// another.
func TestTickID(t *testing.T) {
	a := &Alarm{Namespace: "guest", Name: "t", Created: 1790000000000}
	same := *a
	if TickID(a, 1790000001000) != TickID(&same, 1790000001000) {
		t.Fatal("one tick got two ids")
	}
	if TickID(a, 1790000001000) == TickID(a, 1790000002000) {
		t.Fatal("two ticks got one id")
	}
	again := *a
	again.Created++
	if TickID(a, 1790000001000) == TickID(&again, 1790000001000) {
		t.Fatal("a re-created alarm reuses the old one's tick ids")
	}
}
