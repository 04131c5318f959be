package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/plazahq/plaza/transport/redis/redistest"
)

// The cases of internal/ratewindow, with the events alternating between
// two hubs: the window is one for both.
func TestRateWindowAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := []*RateWindow{openOn(t, srv, Options{}).RateWindow(), openOn(t, srv, Options{}).RateWindow()}
	t0 := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	type step struct {
		at    time.Duration // after t0
		ok    bool
		retry time.Duration // when refused
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"limit one", 1, []step{
			{0, true, 0}, {time.Second, false, 59 * time.Second}, {59*time.Second + 999*time.Millisecond, false, time.Millisecond},
			{60 * time.Second, true, 0},
		}},
		{"spread out", 3, []step{
			{0, true, 0}, {10 * time.Second, true, 0}, {20 * time.Second, true, 0},
			{30 * time.Second, false, 30 * time.Second}, {60 * time.Second, true, 0},
			{65 * time.Second, false, 5 * time.Second}, {70 * time.Second, true, 0},
		}},
		{"no double burst at a minute boundary", 2, []step{
			{59 * time.Second, true, 0}, {59 * time.Second, true, 0},
			{61 * time.Second, false, 58 * time.Second}, {119 * time.Second, true, 0},
		}},
		{"a long pause empties the window", 2, []step{
			{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, false, time.Minute},
		}},
		{"zero limit allows nothing", 0, []step{
			{0, false, time.Minute},
		}},
		{"before 1970", 1, []step{
			{-30*time.Second - time.Duration(t0.UnixNano()), true, 0},
			{-29*time.Second - time.Duration(t0.UnixNano()), false, 59 * time.Second},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprint("app", i)
			for j, s := range tt.steps {
				node := j % 2
				ok, retry, err := nodes[node].Allow(ctxT(t), key, tt.limit, t0.Add(s.at))
				if err != nil {
					t.Fatalf("step %d: Allow() = %v", j, err)
				}
				if ok != s.ok || (!ok && retry != s.retry) {
					t.Errorf("step %d at +%v on node %d: Allow() = %v, %v; want %v, %v", j, s.at, node, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
	// Keys are independent.
	if ok, _, _ := nodes[0].Allow(ctxT(t), "a", 1, t0); !ok {
		t.Fatal("Allow(a) = false")
	}
	if ok, _, _ := nodes[1].Allow(ctxT(t), "b", 1, t0); !ok {
		t.Error("Allow(b) = false after a used its limit")
	}
}
