package snowid

import (
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func parts(id snowflake.ID) (ms, node, step int64) {
	return id.Time(), id.Node(), id.Step()
}

func TestNextLayout(t *testing.T) {
	g, err := New(7)
	if err != nil {
		t.Fatal(err)
	}
	id := g.Next(t0)
	ms, node, step := parts(id)
	if ms != t0.UnixMilli() || node != 7 || step != 0 {
		t.Errorf("Next(%v) = %d (ms %d, node %d, step %d), want ms %d, node 7, step 0",
			t0, id, ms, node, step, t0.UnixMilli())
	}
	id2 := g.Next(t0)
	if _, node, step := parts(id2); id2 != id+1 || node != 7 || step != 1 {
		t.Errorf("second Next(%v) = %d (node %d, step %d), want %d", t0, id2, node, step, id+1)
	}
}

func TestNextStrictlyIncreases(t *testing.T) {
	tests := []struct {
		name  string
		times []time.Duration // offsets from t0, in call order
	}{
		{"same instant", []time.Duration{0, 0, 0, 0}},
		{"forward", []time.Duration{0, time.Millisecond, time.Second}},
		{"clock steps back", []time.Duration{time.Hour, 0, -time.Hour, time.Minute}},
		{"back then forward past", []time.Duration{time.Second, 0, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, _ := New(3)
			var last snowflake.ID
			for i, d := range tt.times {
				id := g.Next(t0.Add(d))
				if id <= last {
					t.Fatalf("call %d: Next(t0%+v) = %d, want > %d", i, d, id, last)
				}
				if id.Node() != 3 {
					t.Fatalf("call %d: Next(t0%+v) has node %d, want 3", i, d, id.Node())
				}
				last = id
			}
		})
	}
}

func TestStepOverflowMovesToNextMillisecond(t *testing.T) {
	g, _ := New(1023)
	var last snowflake.ID
	for i := 0; i < maxStep+3; i++ {
		id := g.Next(t0)
		if id <= last || id.Node() != 1023 {
			t.Fatalf("Next #%d = %d (node %d), want > %d on node 1023", i, id, id.Node(), last)
		}
		last = id
	}
	if ms := last.Time(); ms != t0.UnixMilli()+1 {
		t.Errorf("after %d ids in one millisecond, time part = %d, want %d", maxStep+3, ms, t0.UnixMilli()+1)
	}
}

func TestSetFloor(t *testing.T) {
	at := func(d time.Duration, node, step int64) snowflake.ID {
		ms := t0.Add(d).UnixMilli() - snowflake.Epoch
		return snowflake.ID(ms<<22 | node<<12 | step)
	}
	tests := []struct {
		name  string
		floor snowflake.ID
		now   time.Duration
		want  snowflake.ID
	}{
		{"floor in the past", at(-time.Hour, 5, 9), 0, at(0, 5, 0)},
		{"floor ahead, lower node", at(time.Hour, 2, 4000), 0, at(time.Hour, 5, 0)},
		{"floor ahead, same node", at(time.Hour, 5, 9), 0, at(time.Hour, 5, 10)},
		{"floor ahead, same node, last step", at(time.Hour, 5, maxStep), 0, at(time.Hour+time.Millisecond, 5, 0)},
		{"floor ahead, higher node", at(time.Hour, 9, 0), 0, at(time.Hour+time.Millisecond, 5, 0)},
		{"floor is the time id", at(0, 5, 0), 0, at(0, 5, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, _ := New(5)
			g.SetFloor(tt.floor)
			if got := g.Next(t0.Add(tt.now)); got != tt.want {
				t.Errorf("Next after SetFloor(%d) = %d, want %d", tt.floor, got, tt.want)
			}
		})
	}
}

func TestSetFloorBelowLastIsIgnored(t *testing.T) {
	g, _ := New(0)
	a := g.Next(t0)
	g.SetFloor(a - 100)
	if b := g.Next(t0); b != a+1 {
		t.Errorf("Next = %d after a lower floor, want %d", b, a+1)
	}
}

func TestNewRejectsBadNode(t *testing.T) {
	for _, n := range []int64{-1, MaxNode + 1} {
		if _, err := New(n); err == nil {
			t.Errorf("New(%d) = nil error, want one", n)
		}
	}
}

func TestNextConcurrentUnique(t *testing.T) {
	g, _ := New(1)
	const workers, each = 8, 2000
	ids := make([][]snowflake.ID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				ids[w] = append(ids[w], g.Next(t0))
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a deadlock guard, not a measurement
		t.Fatal("the workers still running after 20s")
	}
	seen := make(map[snowflake.ID]bool, workers*each)
	for w := range ids {
		for i, id := range ids[w] {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[w][i-1] {
				t.Fatalf("worker %d: id %d after %d", w, id, ids[w][i-1])
			}
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g, _ := New(1)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		g.Next(now)
	}
}
