package transporttest

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
)

// fill publishes 1..n on topic, odd numbers from alice and even ones from
// bob, and returns the confirmed messages.
func fill(t *testing.T, alice, bob *pubsub.Room, topic string, n int) []pubsub.Message {
	t.Helper()
	out := make([]pubsub.Message, 0, n)
	for i := 1; i <= n; i++ {
		r := alice
		if i%2 == 0 {
			r = bob
		}
		out = append(out, publish(t, r, topic, i))
	}
	return out
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func testHistoryPaging(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	ms := fill(t, alice, bob, "log", 60)

	p := history(t, alice, "log")
	if diff := cmp.Diff(seq(36, 60), pageNums(t, p)); diff != "" || !p.HasMore {
		t.Fatalf("newest page HasMore=%v (-want +got):\n%s", p.HasMore, diff)
	}
	if diff := cmp.Diff(ms[59], p.Messages[24]); diff != "" {
		t.Errorf("history message differs from the confirmed one (-confirmed +history):\n%s", diff)
	}
	p = history(t, alice, "log", pubsub.Before(p.Messages[0].ID))
	if diff := cmp.Diff(seq(11, 35), pageNums(t, p)); diff != "" || !p.HasMore {
		t.Errorf("Before page HasMore=%v (-want +got):\n%s", p.HasMore, diff)
	}
	p = history(t, alice, "log", pubsub.Before(p.Messages[0].ID))
	if diff := cmp.Diff(seq(1, 10), pageNums(t, p)); diff != "" || p.HasMore {
		t.Errorf("oldest page HasMore=%v (-want +got):\n%s", p.HasMore, diff)
	}

	tests := []struct {
		name string
		opts []pubsub.HistoryOption
		want []int
		more bool
	}{
		{"after, full", []pubsub.HistoryOption{pubsub.After(ms[9].ID), pubsub.Limit(50)}, seq(11, 60), false},
		{"after, partial", []pubsub.HistoryOption{pubsub.After(ms[9].ID)}, seq(11, 35), true},
		{"after, exactly limit left", []pubsub.HistoryOption{pubsub.After(ms[49].ID), pubsub.Limit(10)}, seq(51, 60), false},
		{"before, exactly limit left", []pubsub.HistoryOption{pubsub.Before(ms[10].ID), pubsub.Limit(10)}, seq(1, 10), false},
		{"before the first", []pubsub.HistoryOption{pubsub.Before(ms[0].ID)}, nil, false},
		{"after the last", []pubsub.HistoryOption{pubsub.After(ms[59].ID)}, nil, false},
		{"limit 1", []pubsub.HistoryOption{pubsub.Limit(1)}, []int{60}, true},
		{"limit 50", []pubsub.HistoryOption{pubsub.Limit(50)}, seq(11, 60), true},
	}
	for _, tt := range tests {
		p := history(t, bob, "log", tt.opts...)
		if diff := cmp.Diff(tt.want, pageNums(t, p), cmp.Comparer(func(a, b []int) bool { return slices.Equal(a, b) })); diff != "" || p.HasMore != tt.more {
			t.Errorf("%s: HasMore=%v want %v (-want +got):\n%s", tt.name, p.HasMore, tt.more, diff)
		}
	}
}

func testHistoryWalk(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	fill(t, alice, bob, "log", 53)

	// Backwards from the newest page, 7 at a time.
	var back []int
	p := history(t, alice, "log", pubsub.Limit(7))
	for pages := 1; ; pages++ {
		if pages > 53 {
			t.Fatal("walking backwards: more pages than messages")
		}
		back = append(pageNums(t, p), back...)
		if !p.HasMore {
			break
		}
		p = history(t, alice, "log", pubsub.Limit(7), pubsub.Before(p.Messages[0].ID))
	}
	if diff := cmp.Diff(seq(1, 53), back); diff != "" {
		t.Errorf("walking backwards (-want +got):\n%s", diff)
	}

	// Forwards from before the oldest.
	var fwd []int
	p = history(t, alice, "log", pubsub.Limit(7), pubsub.After(1))
	for pages := 1; ; pages++ {
		if pages > 53 {
			t.Fatal("walking forwards: more pages than messages")
		}
		fwd = append(fwd, pageNums(t, p)...)
		if !p.HasMore {
			break
		}
		p = history(t, alice, "log", pubsub.Limit(7), pubsub.After(p.Messages[len(p.Messages)-1].ID))
	}
	if diff := cmp.Diff(seq(1, 53), fwd); diff != "" {
		t.Errorf("walking forwards (-want +got):\n%s", diff)
	}
}

func testHistoryFrom(t *testing.T, e *env) {
	alice, bob, carol := e.join("alice"), e.join("bob"), e.join("carol")
	fill(t, alice, bob, "log", 40)
	publish(t, carol, "log", 41)

	var got []int
	p := history(t, carol, "log", pubsub.From("alice"), pubsub.Limit(8))
	for pages := 1; ; pages++ {
		if pages > 41 {
			t.Fatal("walking From(alice): more pages than messages")
		}
		got = append(pageNums(t, p), got...)
		if !p.HasMore {
			break
		}
		p = history(t, carol, "log", pubsub.From("alice"), pubsub.Limit(8), pubsub.Before(p.Messages[0].ID))
	}
	var odd []int
	for i := 1; i <= 40; i += 2 {
		odd = append(odd, i)
	}
	if diff := cmp.Diff(odd, got); diff != "" {
		t.Errorf("From(alice), paged (-want +got):\n%s", diff)
	}
	// Exactly 20 alice messages: a page of 20 has nothing more.
	if p := history(t, carol, "log", pubsub.From("alice"), pubsub.Limit(20)); p.HasMore || len(p.Messages) != 20 {
		t.Errorf("From(alice) Limit(20): %d messages, HasMore %v; want 20, false", len(p.Messages), p.HasMore)
	}
	p = history(t, alice, "log", pubsub.From("bob", "carol"), pubsub.Limit(3))
	if diff := cmp.Diff([]int{38, 40, 41}, pageNums(t, p)); diff != "" || !p.HasMore {
		t.Errorf("From(bob, carol) HasMore=%v (-want +got):\n%s", p.HasMore, diff)
	}
}

func testHistoryErrors(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice := e.join("alice")
	tests := []struct {
		name string
		opts []pubsub.HistoryOption
		want *pubsub.Error
	}{
		{"before and after", []pubsub.HistoryOption{pubsub.Before(10), pubsub.After(5)}, pubsub.ErrInvalidHistoryOpts},
		{"limit 0", []pubsub.HistoryOption{pubsub.Limit(0)}, pubsub.ErrInvalidLimit},
		{"limit -1", []pubsub.HistoryOption{pubsub.Limit(-1)}, pubsub.ErrInvalidLimit},
		{"limit 51", []pubsub.HistoryOption{pubsub.Limit(51)}, pubsub.ErrInvalidLimit},
		// Given means given: zero is no message id, not "none".
		{"before 0", []pubsub.HistoryOption{pubsub.Before(0)}, pubsub.ErrInvalidHistoryOpts},
		{"after 0", []pubsub.HistoryOption{pubsub.After(0)}, pubsub.ErrInvalidHistoryOpts},
		{"negative before", []pubsub.HistoryOption{pubsub.Before(-1)}, pubsub.ErrInvalidHistoryOpts},
	}
	for _, tt := range tests {
		_, err := alice.GetHistory(ctx, "log", tt.opts...)
		wantCode(t, "GetHistory("+tt.name+")", err, tt.want)
	}
}
