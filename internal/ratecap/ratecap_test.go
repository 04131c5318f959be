package ratecap

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBurstKeepsNewest(t *testing.T) {
	c := New[int](3, t0)
	var now []int
	for i := 1; i <= 10; i++ {
		if c.Offer(t0, i) {
			now = append(now, i)
		}
	}
	if diff := cmp.Diff([]int{1, 2, 3}, now); diff != "" {
		t.Errorf("delivered at once (-want +got):\n%s", diff)
	}
	if c.Held() != 3 || c.Dropped() != 4 {
		t.Errorf("Held() = %d, Dropped() = %d, want 3, 4", c.Held(), c.Dropped())
	}
	if got := c.Release(t0, nil); len(got) != 0 {
		t.Errorf("Release at the same instant = %v, want nothing", got)
	}
	d, ok := c.Next(t0)
	if !ok || d <= 0 || d > time.Second/3+time.Millisecond {
		t.Fatalf("Next(t0) = %v, %v; want about 333ms, true", d, ok)
	}
	var later []int
	at := t0
	for c.Held() > 0 {
		d, _ := c.Next(at)
		at = at.Add(d)
		later = c.Release(at, later)
	}
	if diff := cmp.Diff([]int{8, 9, 10}, later); diff != "" {
		t.Errorf("released later (-want +got):\n%s", diff)
	}
	if at.Sub(t0) > time.Second+time.Millisecond {
		t.Errorf("held messages took %v to drain, want about 1s", at.Sub(t0))
	}
}

func TestOrderPreservedWhileHolding(t *testing.T) {
	c := New[int](2, t0)
	for i := 1; i <= 2; i++ {
		if !c.Offer(t0, i) {
			t.Fatalf("message %d of a burst of 2 held by a 2/s cap", i)
		}
	}
	if c.Offer(t0, 3) {
		t.Fatal("third message in the same instant delivered")
	}
	// Tokens are available again, but 3 still waits, so 4 must wait behind it.
	if c.Offer(t0.Add(time.Second), 4) {
		t.Fatal("message delivered ahead of a held one")
	}
	got := c.Release(t0.Add(time.Second), nil)
	if diff := cmp.Diff([]int{3, 4}, got); diff != "" {
		t.Errorf("released (-want +got):\n%s", diff)
	}
}

func TestSteadyRateUnderCapPassesEverything(t *testing.T) {
	c := New[int](10, t0)
	for i := 0; i < 100; i++ {
		if !c.Offer(t0.Add(time.Duration(i)*100*time.Millisecond), i) {
			t.Fatalf("message %d at 10/s held by a 10/s cap", i)
		}
	}
}

func TestSetRateKeepsNewestHeld(t *testing.T) {
	c := New[int](4, t0)
	for i := 1; i <= 8; i++ {
		c.Offer(t0, i)
	}
	c.SetRate(2, t0)
	if c.Held() != 2 {
		t.Fatalf("Held() = %d after shrinking to 2/s, want 2", c.Held())
	}
	got := c.Release(t0.Add(10*time.Second), nil)
	if diff := cmp.Diff([]int{7, 8}, got); diff != "" {
		t.Errorf("released (-want +got):\n%s", diff)
	}
}

func TestDrainTakesEverythingHeld(t *testing.T) {
	c := New[int](2, t0)
	for i := 1; i <= 5; i++ {
		c.Offer(t0, i)
	}
	if got := c.Drain(nil); !cmp.Equal(got, []int{4, 5}) {
		t.Errorf("Drain() = %v, want [4 5]", got)
	}
	if c.Held() != 0 {
		t.Errorf("Held() = %d after Drain, want 0", c.Held())
	}
	if _, ok := c.Next(t0); ok {
		t.Error("Next reports held messages after Drain")
	}
}
