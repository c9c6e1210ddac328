package etcdlock

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseValue: any bytes in the key's value decode or fail, never panic,
// and a decoded stop budget is never negative.
func FuzzParseValue(f *testing.F) {
	f.Add([]byte(`{"pid":1,"createdAt":"x","configPath":"","flock":false,"backend":"etcd","lease":"a","ttlSeconds":3,"stopBudgetMs":1000,"released":true}`))
	f.Add([]byte(`{"stopBudgetMs":-5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseValue(b)
		if err == nil && v.StopBudgetMs < 0 {
			t.Fatalf("stopBudgetMs = %d", v.StopBudgetMs)
		}
	})
}

// TestValue: the value is the owner's object with the lock's fields after
// it, and reads back as the holder it describes.
func TestValue(t *testing.T) {
	type owner struct {
		PID      int64  `json:"pid"`
		Hostname string `json:"hostname"`
		ChildPID int    `json:"childPid,omitempty"`
	}
	l := New(Options{Key: "/k", TTL: 3 * time.Second, StopBudget: 1500 * time.Millisecond,
		Owner: func(pid int) any { return owner{PID: 7, Hostname: "h", ChildPID: pid} }})
	got := string(l.value(&Lease{ID: 255, TTL: 3 * time.Second}, 42, true))
	want := `{"pid":7,"hostname":"h","childPid":42,"backend":"etcd","lease":"ff","ttlSeconds":3,"stopBudgetMs":1500,"released":true}`
	if got != want {
		t.Fatalf("value = %s, want %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatalf("value %s is not JSON", got)
	}
	v, err := ParseValue([]byte(got))
	if err != nil || *v != (Holder{Hostname: "h", PID: 7, GatewayPID: 42, StopBudgetMs: 1500, Released: true}) {
		t.Fatalf("ParseValue(%s) = %+v, %v", got, v, err)
	}
	l.opts.Owner = func(int) any { return struct{}{} }
	if got := string(l.value(&Lease{ID: 1, TTL: time.Second}, 0, false)); got != `{"backend":"etcd","lease":"1","ttlSeconds":1,"stopBudgetMs":1500}` {
		t.Fatalf("value with an empty owner = %s", got)
	}
}

// TestTakeoverDelay: none after released:true; otherwise the option, or
// under TakeoverAuto the vanished holder's own stop budget (ours if it
// recorded none).
func TestTakeoverDelay(t *testing.T) {
	const ours = 2500 * time.Millisecond
	vanished := &Holder{StopBudgetMs: 4200}
	for _, tc := range []struct {
		option time.Duration
		prev   *Holder
		want   time.Duration
	}{
		{TakeoverAuto, vanished, 4200 * time.Millisecond},
		{TakeoverAuto, &Holder{}, ours},
		{TakeoverAuto, &Holder{StopBudgetMs: 4200, Released: true}, 0},
		{0, vanished, 0},
		{7 * time.Second, vanished, 7 * time.Second},
		{7 * time.Second, nil, 0},
	} {
		l := New(Options{StopBudget: ours, TakeoverDelay: tc.option})
		if got := l.takeoverDelay(tc.prev); got != tc.want {
			t.Errorf("takeoverDelay(option %s, holder %+v) = %s, want %s", tc.option, tc.prev, got, tc.want)
		}
	}
}
