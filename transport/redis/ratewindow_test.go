package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/plazahq/plaza/internal/ratewindow/ratewindowtest"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// The cases of internal/ratewindow/ratewindowtest, with the events alternating between
// two hubs: the window is one for both.
func TestRateWindowAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := []*RateWindow{openOn(t, srv, Options{}).RateWindow(), openOn(t, srv, Options{}).RateWindow()}
	t0 := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	// The window of an absolute time before 1970 works like any other.
	tests := append(ratewindowtest.Cases(), ratewindowtest.Case{Name: "before 1970", Limit: 1, Steps: []ratewindowtest.Step{
		{At: -30*time.Second - time.Duration(t0.UnixNano()), OK: true},
		{At: -29*time.Second - time.Duration(t0.UnixNano()), OK: false, Retry: 59 * time.Second},
	}})
	for i, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			key := fmt.Sprint("app", i)
			for j, s := range tt.Steps {
				node := j % 2
				ok, retry, err := nodes[node].Allow(ctxT(t), key, tt.Limit, t0.Add(s.At))
				if err != nil {
					t.Fatalf("step %d: Allow() = %v", j, err)
				}
				if ok != s.OK || (!ok && retry != s.Retry) {
					t.Errorf("step %d at +%v on node %d: Allow() = %v, %v; want %v, %v", j, s.At, node, ok, retry, s.OK, s.Retry)
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
