// Package historytest checks that a [history.Store] keeps and pages messages
// the way package history specifies.
//
// Use [Run] from a test of the store's package:
//
//	func TestStore(t *testing.T) {
//		historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
//			s := mystore.Open(t.TempDir(), opts)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Run runs one named subtest per property (paging in both directions,
// HasMore at every boundary, sender and recipient filters, isolation of rooms
// and topics, retention by count and by age, MaxID, concurrent use, Close), so
// a failure names what broke and `go test -run 'TestStore/Before'` reruns just
// that part. The subtests whose names start with Keys check the idempotency
// keys of a [history.KeyStore] (stored with their messages, found newest
// first, bounded by Since and Limit, subject to retention); they skip a store
// that is not one.
//
// # What the suite assumes
//
// Every subtest opens its own store with newStore, which must return an empty
// store that applies opts and must arrange its closing with t.Cleanup. Options
// always carry a fake clock; retention by age must read the time from it. The
// messages the suite appends have large ids (as snowflakes do), nanosecond
// timestamps and, where it matters, recipients and metadata; a store must
// return them exactly, with Topic set and Persisted true.
//
// Subtests call the store from many goroutines only in the "Concurrent"
// subtest; run the suite with -race.
package historytest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/internal/testwait"
	"github.com/plazahq/plaza/pubsub"
)

// Run tests the Store that newStore opens. See the package documentation.
func Run(t *testing.T, newStore func(t *testing.T, opts history.Options) history.Store) {
	tests := []struct {
		name string
		f    func(*testing.T, opener)
	}{
		{"EmptyTopic", testEmptyTopic},
		{"NewestPage", testNewestPage},
		{"Before", testBefore},
		{"After", testAfter},
		{"HasMoreBoundaries", testHasMoreBoundaries},
		{"WalkAllPages", testWalkAllPages},
		{"FromFilter", testFromFilter},
		{"ToVisibility", testToVisibility},
		{"Isolation", testIsolation},
		{"OutOfOrderAppend", testOutOfOrderAppend},
		{"RetentionMaxMessages", testRetentionMaxMessages},
		{"RetentionMaxAge", testRetentionMaxAge},
		{"MaxIDSurvivesRetention", testMaxID},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
		{"Keys", testKeys},
		{"KeysSinceAndLimit", testKeysSinceAndLimit},
		{"KeysRetention", testKeysRetention},
		{"KeysReplace", testKeysReplace},
		{"KeysConcurrent", testKeysConcurrent},
		{"KeysClosed", testKeysClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f(t, opener(newStore))
		})
	}
}

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = testwait.Timeout

// waitGroup waits for wg, failing the test when that takes longer than
// waitTimeout.
var waitGroup = testwait.Group

// opener opens a fresh store for one subtest.
type opener func(t *testing.T, opts history.Options) history.Store

// start is the fake clock's time when a subtest begins: nanoseconds set, so
// that a store that rounds timestamps fails.
var start = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// firstID is the id of a subtest's first message: the size of a snowflake
// from the 2020s, so that a store that narrows ids fails.
const firstID = 1_900_000_000_000_000_000

// env is one subtest's store, clock and message generator.
type env struct {
	t     *testing.T
	s     history.Store
	clock *fakeclock.Clock
	next  *pubsub.ID // the id of the next message msg makes
}

// in returns e reporting to t, a subtest of e's test.
func (e *env) in(t *testing.T) *env {
	e2 := *e
	e2.t = t
	return &e2
}

// open opens a store with opts and a fake clock at start.
func (o opener) open(t *testing.T, opts history.Options) *env {
	t.Helper()
	clock := fakeclock.New(start)
	opts.Clock = clock
	s := o(t, opts)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	next := pubsub.ID(firstID)
	return &env{t: t, s: s, clock: clock, next: &next}
}

// msg returns the next message: ids go up by 10 (so that ids between
// messages exist), timestamps by a little over a millisecond.
func (e *env) msg(topic, from string, to ...string) pubsub.Message {
	id := *e.next
	*e.next += 10
	now := e.clock.Now()
	e.clock.Advance(time.Millisecond + 7)
	m := pubsub.Message{
		ID:        id,
		Topic:     topic,
		From:      from,
		To:        to,
		Payload:   json.RawMessage(fmt.Sprintf(`{"n":%d,"text":"hello"}`, (id-firstID)/10)),
		Timestamp: now,
	}
	if id%30 == 0 {
		m.Metadata = map[string]string{"k": fmt.Sprint(id)}
	}
	return m
}

// fill appends n messages from alice to room and topic and returns them.
func (e *env) fill(room, topic string, n int) []pubsub.Message {
	e.t.Helper()
	msgs := make([]pubsub.Message, n)
	for i := range msgs {
		msgs[i] = e.msg(topic, "alice")
		e.append(room, msgs[i])
	}
	return msgs
}

func (e *env) append(room string, m pubsub.Message) {
	e.t.Helper()
	if err := e.s.Append(context.Background(), room, m); err != nil {
		e.t.Fatalf("Append(%q, id %d) = %v", room, m.ID, err)
	}
}

func (e *env) query(room string, q history.Query) pubsub.HistoryPage {
	e.t.Helper()
	page, err := e.s.Query(context.Background(), room, q)
	if err != nil {
		e.t.Fatalf("Query(%q, %s) = %v", room, fmtQuery(q), err)
	}
	if page.Messages == nil {
		e.t.Errorf("Query(%q, %s).Messages is nil, want a non-nil slice", room, fmtQuery(q))
	}
	return page
}

// check queries room with q and compares the page with want and hasMore.
func (e *env) check(room string, q history.Query, want []pubsub.Message, hasMore bool) {
	e.t.Helper()
	page := e.query(room, q)
	if diff := cmp.Diff(stored(want), page.Messages, cmpopts.EquateEmpty()); diff != "" {
		e.t.Errorf("Query(%q, %s) ids = %v, want %v; messages (-want +got):\n%s",
			room, fmtQuery(q), ids(page.Messages), ids(want), diff)
	}
	if page.HasMore != hasMore {
		e.t.Errorf("Query(%q, %s) ids = %v, HasMore = %t, want %t",
			room, fmtQuery(q), ids(page.Messages), page.HasMore, hasMore)
	}
}

// stored returns msgs as history returns them.
func stored(msgs []pubsub.Message) []pubsub.Message {
	out := make([]pubsub.Message, len(msgs))
	for i, m := range msgs {
		m.Persisted = true
		out[i] = m
	}
	return out
}

// pick returns msgs[i] for each i.
func pick(msgs []pubsub.Message, is ...int) []pubsub.Message {
	out := make([]pubsub.Message, len(is))
	for j, i := range is {
		out[j] = msgs[i]
	}
	return out
}

// ids returns the ids of msgs as offsets from firstID in steps of 10, the
// index the subtest gave them, for readable failures.
func ids(msgs []pubsub.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = int64(m.ID-firstID) / 10
	}
	return out
}

func fmtQuery(q history.Query) string {
	s := fmt.Sprintf("{Topic: %q, Limit: %d", q.Topic, q.Limit)
	if q.Before != 0 {
		s += fmt.Sprintf(", Before: %d", q.Before)
	}
	if q.After != 0 {
		s += fmt.Sprintf(", After: %d", q.After)
	}
	if q.From != nil {
		s += fmt.Sprintf(", From: %q", q.From)
	}
	if q.Viewer != "" {
		s += fmt.Sprintf(", Viewer: %q", q.Viewer)
	}
	return s + "}"
}

func testEmptyTopic(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	queries := []history.Query{
		{Topic: "chat", Limit: 10},
		{Topic: "chat", Limit: 10, Before: firstID + 1000},
		{Topic: "chat", Limit: 10, After: 1},
		{Topic: "chat", Limit: 10, From: []string{"alice"}},
	}
	for _, q := range queries {
		e.check("room", q, nil, false)
	}
	e.fill("room", "other", 3)
	e.fill("elsewhere", "chat", 3)
	for _, q := range queries {
		e.check("room", q, nil, false)
	}
}

func testNewestPage(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	msgs := e.fill("room", "chat", 10)
	tests := []struct {
		limit   int
		want    []pubsub.Message
		hasMore bool
	}{
		{1, msgs[9:], true},
		{3, msgs[7:], true},
		{9, msgs[1:], true},
		{10, msgs, false},
		{pubsub.MaxHistoryLimit, msgs, false},
	}
	for _, tt := range tests {
		e.check("room", history.Query{Topic: "chat", Limit: tt.limit}, tt.want, tt.hasMore)
	}
}

func testBefore(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	msgs := e.fill("room", "chat", 20)
	tests := []struct {
		name    string
		before  pubsub.ID
		limit   int
		want    []pubsub.Message
		hasMore bool
	}{
		{"middle", msgs[10].ID, 5, msgs[5:10], true},
		{"reaching the oldest", msgs[5].ID, 5, msgs[0:5], false},
		{"fewer than limit left", msgs[3].ID, 5, msgs[0:3], false},
		{"anchor between ids", msgs[10].ID + 3, 2, msgs[9:11], true},
		{"anchor above newest", msgs[19].ID + 1000, 5, msgs[15:], true},
		{"anchor just above newest", msgs[19].ID + 1, 20, msgs, false},
		{"anchor is the oldest", msgs[0].ID, 5, nil, false},
		{"anchor below oldest", 1, 5, nil, false},
		{"largest anchor", math.MaxInt64, 3, msgs[17:], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			e.check("room", history.Query{Topic: "chat", Before: tt.before, Limit: tt.limit}, tt.want, tt.hasMore)
		})
	}
}

func testAfter(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	msgs := e.fill("room", "chat", 20)
	tests := []struct {
		name    string
		after   pubsub.ID
		limit   int
		want    []pubsub.Message
		hasMore bool
	}{
		{"middle", msgs[9].ID, 5, msgs[10:15], true},
		{"reaching the newest", msgs[14].ID, 5, msgs[15:], false},
		{"fewer than limit left", msgs[16].ID, 5, msgs[17:], false},
		{"anchor between ids", msgs[4].ID + 3, 2, msgs[5:7], true},
		{"anchor below oldest", 1, 5, msgs[:5], true},
		{"anchor just below oldest", msgs[0].ID - 1, 20, msgs, false},
		{"anchor is the newest", msgs[19].ID, 5, nil, false},
		{"anchor above newest", msgs[19].ID + 1000, 5, nil, false},
		{"largest anchor", math.MaxInt64, 3, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			e.check("room", history.Query{Topic: "chat", After: tt.after, Limit: tt.limit}, tt.want, tt.hasMore)
		})
	}
}

func testHasMoreBoundaries(t *testing.T, o opener) {
	const limit = 4
	e := o.open(t, history.Options{})
	for _, n := range []int{1, limit - 1, limit, limit + 1, 2 * limit, 2*limit + 1} {
		t.Run(fmt.Sprintf("messages=%d", n), func(t *testing.T) {
			e := e.in(t)
			topic := fmt.Sprintf("chat%d", n)
			msgs := e.fill("room", topic, n)
			first, last := msgs[0].ID, msgs[n-1].ID
			newest := msgs[max(0, n-limit):]
			oldest := msgs[:min(n, limit)]
			more := n > limit
			e.check("room", history.Query{Topic: topic, Limit: limit}, newest, more)
			e.check("room", history.Query{Topic: topic, Limit: limit, Before: last + 1}, newest, more)
			e.check("room", history.Query{Topic: topic, Limit: limit, After: first - 1}, oldest, more)
			// The page next to the first one in each direction.
			if n > limit {
				e.check("room", history.Query{Topic: topic, Limit: limit, Before: newest[0].ID},
					msgs[max(0, n-2*limit):n-limit], n > 2*limit)
				e.check("room", history.Query{Topic: topic, Limit: limit, After: oldest[limit-1].ID},
					msgs[limit:min(n, 2*limit)], n > 2*limit)
			}
		})
	}
}

func testWalkAllPages(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	senders := []string{"alice", "bob", "alice", "carol", "alice"}
	var all []pubsub.Message
	for i := range 53 {
		var to []string
		if i%7 == 3 {
			to = []string{"dave"} // visible only to dave and the sender
		}
		m := e.msg("chat", senders[i%len(senders)], to...)
		e.append("room", m)
		all = append(all, m)
	}
	visible := func(q history.Query) []pubsub.Message {
		var out []pubsub.Message
		for _, m := range all {
			if m.VisibleTo(q.Viewer) && (len(q.From) == 0 || q.From[0] == m.From) {
				out = append(out, m)
			}
		}
		return out
	}
	filters := []struct {
		name   string
		from   []string
		viewer string
	}{
		{"everything", nil, "dave"},
		{"visible to erin", nil, "erin"},
		{"from alice to erin", []string{"alice"}, "erin"},
		{"from bob to dave", []string{"bob"}, "dave"},
	}
	for _, f := range filters {
		for _, limit := range []int{1, 5, 13, pubsub.MaxHistoryLimit} {
			t.Run(fmt.Sprintf("%s/limit=%d", f.name, limit), func(t *testing.T) {
				e := e.in(t)
				q := history.Query{Topic: "chat", Limit: limit, From: f.from, Viewer: f.viewer}
				want := visible(q)
				// Backwards from the newest page.
				var got []pubsub.Message
				for pages := 0; ; pages++ {
					if pages > len(all) {
						t.Fatalf("walking backwards with %s: more pages than messages", fmtQuery(q))
					}
					page := e.query("room", q)
					if page.HasMore && len(page.Messages) == 0 {
						t.Fatalf("Query(%s) returned no messages and HasMore", fmtQuery(q))
					}
					got = append(append([]pubsub.Message(nil), page.Messages...), got...)
					if !page.HasMore {
						break
					}
					q.Before = page.Messages[0].ID
				}
				if diff := cmp.Diff(stored(want), got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("walking backwards: ids %v, want %v", ids(got), ids(want))
				}
				// Forwards from just below the oldest.
				q.Before, q.After = 0, all[0].ID-1
				got = nil
				for pages := 0; ; pages++ {
					if pages > len(all) {
						t.Fatalf("walking forwards with %s: more pages than messages", fmtQuery(q))
					}
					page := e.query("room", q)
					if page.HasMore && len(page.Messages) == 0 {
						t.Fatalf("Query(%s) returned no messages and HasMore", fmtQuery(q))
					}
					got = append(got, page.Messages...)
					if !page.HasMore {
						break
					}
					q.After = page.Messages[len(page.Messages)-1].ID
				}
				if diff := cmp.Diff(stored(want), got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("walking forwards: ids %v, want %v", ids(got), ids(want))
				}
			})
		}
	}
}

func testFromFilter(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	// bob alice carol bob alice carol ...: alice sent 1, 4, 7 and 10, and
	// both the oldest and the newest message are someone else's.
	senders := []string{"bob", "alice", "carol"}
	var msgs []pubsub.Message
	for i := range 12 {
		m := e.msg("chat", senders[i%3])
		e.append("room", m)
		msgs = append(msgs, m)
	}
	alice := []string{"alice"}
	tests := []struct {
		name    string
		q       history.Query
		want    []pubsub.Message
		hasMore bool
	}{
		{"newest", history.Query{From: alice, Limit: 2}, pick(msgs, 7, 10), true},
		{"newest, all of them", history.Query{From: alice, Limit: 4}, pick(msgs, 1, 4, 7, 10), false},
		{"before", history.Query{From: alice, Limit: 2, Before: msgs[7].ID}, pick(msgs, 1, 4), false},
		{"before, older messages from others", history.Query{From: alice, Limit: 2, Before: msgs[1].ID}, nil, false},
		{"after", history.Query{From: alice, Limit: 3, After: msgs[0].ID}, pick(msgs, 1, 4, 7), true},
		{"after, newer messages from others", history.Query{From: alice, Limit: 1, After: msgs[7].ID}, pick(msgs, 10), false},
		{"two senders", history.Query{From: []string{"carol", "alice"}, Limit: 3}, pick(msgs, 8, 10, 11), true},
		{"nobody", history.Query{From: []string{"dave"}, Limit: 5}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			tt.q.Topic = "chat"
			e.check("room", tt.q, tt.want, tt.hasMore)
		})
	}
}

func testToVisibility(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	msgs := []pubsub.Message{
		e.msg("chat", "alice"),
		e.msg("chat", "alice", "bob"),
		e.msg("chat", "bob", "carol"),
		e.msg("chat", "carol"),
		e.msg("chat", "carol", "alice", "bob"),
		e.msg("chat", "dave", "bob"),
	}
	for _, m := range msgs {
		e.append("room", m)
	}
	tests := []struct {
		name    string
		q       history.Query
		want    []pubsub.Message
		hasMore bool
	}{
		{"sender and recipient", history.Query{Viewer: "alice"}, pick(msgs, 0, 1, 3, 4), false},
		{"recipient of three", history.Query{Viewer: "bob"}, msgs, false},
		{"recipient", history.Query{Viewer: "carol"}, pick(msgs, 0, 2, 3, 4), false},
		{"sender only", history.Query{Viewer: "dave"}, pick(msgs, 0, 3, 5), false},
		{"stranger", history.Query{Viewer: "erin"}, pick(msgs, 0, 3), false},
		{"no viewer", history.Query{}, pick(msgs, 0, 3), false},
		{"stranger, newest page", history.Query{Viewer: "erin", Limit: 1}, pick(msgs, 3), true},
		{"stranger, before", history.Query{Viewer: "erin", Limit: 1, Before: msgs[3].ID}, pick(msgs, 0), false},
		{"stranger, after", history.Query{Viewer: "erin", Limit: 1, After: msgs[0].ID}, pick(msgs, 3), false},
		{"recipient, after", history.Query{Viewer: "carol", Limit: 2, After: msgs[0].ID}, pick(msgs, 2, 3), true},
		{"with From", history.Query{Viewer: "bob", From: []string{"carol"}}, pick(msgs, 3, 4), false},
		{"with From, recipient", history.Query{Viewer: "carol", From: []string{"bob"}}, pick(msgs, 2), false},
		{"with From, hidden", history.Query{Viewer: "erin", From: []string{"bob", "dave"}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			tt.q.Topic = "chat"
			if tt.q.Limit == 0 {
				tt.q.Limit = pubsub.MaxHistoryLimit
			}
			e.check("room", tt.q, tt.want, tt.hasMore)
		})
	}
}

func testIsolation(t *testing.T, o opener) {
	e := o.open(t, history.Options{MaxMessages: 3})
	// Pairs whose naive concatenations collide.
	places := []struct{ room, topic string }{
		{"a", "x"},
		{"a", "y"},
		{"b", "x"},
		{"a:b", "c"},
		{"a", "b:c"},
		{"a:", "b:c"},
		{"ab", "c"},
		{"a", "bc"},
		{"a\x00b", "c"},
	}
	want := make([][]pubsub.Message, len(places))
	// Interleave the appends, and overflow MaxMessages in some places only.
	for round := range 4 {
		for i, p := range places {
			if round == 3 && i%2 == 0 {
				continue
			}
			m := e.msg(p.topic, "alice")
			e.append(p.room, m)
			want[i] = append(want[i], m)
		}
	}
	for i, p := range places {
		w := want[i]
		if len(w) > 3 {
			w = w[len(w)-3:]
		}
		e.check(p.room, history.Query{Topic: p.topic, Limit: 10}, w, false)
		e.check(p.room, history.Query{Topic: p.topic, Limit: 10, After: 1}, w, false)
	}
}

func testOutOfOrderAppend(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	msgs := make([]pubsub.Message, 6)
	for i := range msgs {
		msgs[i] = e.msg("chat", "alice")
	}
	for _, i := range []int{0, 3, 1, 5, 2, 4} {
		e.append("room", msgs[i])
	}
	e.check("room", history.Query{Topic: "chat", Limit: 10}, msgs, false)
	e.check("room", history.Query{Topic: "chat", Limit: 2, Before: msgs[3].ID}, msgs[1:3], true)
	e.check("room", history.Query{Topic: "chat", Limit: 2, After: msgs[2].ID}, msgs[3:5], true)
}

func testRetentionMaxMessages(t *testing.T, o opener) {
	e := o.open(t, history.Options{MaxMessages: 5})
	msgs := e.fill("room", "chat", 12)
	few := e.fill("room", "quiet", 3)
	kept := msgs[7:]
	e.check("room", history.Query{Topic: "chat", Limit: 10}, kept, false)
	e.check("room", history.Query{Topic: "chat", Limit: 4}, kept[1:], true)
	e.check("room", history.Query{Topic: "chat", Limit: 10, Before: kept[0].ID}, nil, false)
	e.check("room", history.Query{Topic: "chat", Limit: 10, After: 1}, kept, false)
	e.check("room", history.Query{Topic: "chat", Limit: 2, After: 1}, kept[:2], true)
	e.check("room", history.Query{Topic: "quiet", Limit: 10}, few, false)

	more := e.fill("room", "chat", 2)
	kept = append(kept[2:], more...)
	e.check("room", history.Query{Topic: "chat", Limit: 10}, kept, false)
}

func testRetentionMaxAge(t *testing.T, o opener) {
	e := o.open(t, history.Options{MaxAge: time.Hour})
	// Five messages, ten minutes apart: at start, +10m, ..., +40m.
	var msgs []pubsub.Message
	for i := range 5 {
		if i > 0 {
			e.clock.Advance(10 * time.Minute)
		}
		m := e.msg("chat", "alice")
		e.append("room", m)
		msgs = append(msgs, m)
	}
	all := history.Query{Topic: "chat", Limit: 10}
	e.check("room", all, msgs, false)

	// Now start+1h5m: the first message is 65 minutes old, the second 55.
	e.clock.Advance(25 * time.Minute)
	e.check("room", all, msgs[1:], false)
	e.check("room", history.Query{Topic: "chat", Limit: 3}, msgs[2:], true)
	e.check("room", history.Query{Topic: "chat", Limit: 3, Before: msgs[2].ID}, msgs[1:2], false)
	e.check("room", history.Query{Topic: "chat", Limit: 2, After: 1}, msgs[1:3], true)

	// Now start+1h35m: only the last one (55 minutes old) is left. Appending
	// does not bring any back.
	e.clock.Advance(30 * time.Minute)
	fresh := e.msg("chat", "bob")
	e.append("room", fresh)
	e.check("room", all, []pubsub.Message{msgs[4], fresh}, false)
	e.check("room", history.Query{Topic: "chat", Limit: 10, Before: fresh.ID}, msgs[4:], false)

	// Two hours later everything has expired.
	e.clock.Advance(2 * time.Hour)
	e.check("room", all, nil, false)
	e.check("room", history.Query{Topic: "chat", Limit: 10, After: 1}, nil, false)
	e.check("room", history.Query{Topic: "chat", Limit: 10, Before: math.MaxInt64}, nil, false)
}

func testMaxID(t *testing.T, o opener) {
	ctx := context.Background()
	e := o.open(t, history.Options{MaxMessages: 2, MaxAge: time.Hour})
	checkMaxID := func(want pubsub.ID) {
		t.Helper()
		got, err := e.s.MaxID(ctx)
		if err != nil || got != want {
			t.Errorf("MaxID() = %d, %v, want %d, nil", got, err, want)
		}
	}
	checkMaxID(0)
	msgs := e.fill("room", "chat", 3)
	other := e.fill("room", "other", 1)
	checkMaxID(other[0].ID)
	// An older id, dropped at once by MaxMessages, does not lower it.
	e.append("room", e.msg("chat", "alice"))
	late := msgs[0]
	late.ID--
	e.append("room", late)
	checkMaxID(other[0].ID + 10)

	e.clock.Advance(2 * time.Hour)
	e.check("room", history.Query{Topic: "chat", Limit: 10}, nil, false)
	e.check("room", history.Query{Topic: "other", Limit: 10}, nil, false)
	checkMaxID(other[0].ID + 10)
}

func testConcurrent(t *testing.T, o opener) {
	const (
		writers  = 8
		perTopic = 40
	)
	e := o.open(t, history.Options{})
	ctx := context.Background()
	var nextID atomic.Int64
	nextID.Store(firstID)
	base := e.clock.Now()
	place := func(w int) (room, topic string) {
		return fmt.Sprintf("room%d", w%2), fmt.Sprintf("topic%d", w)
	}
	appended := make([][]pubsub.Message, writers)
	var wg sync.WaitGroup
	var writing sync.WaitGroup
	errs := make(chan error, writers+4)
	for w := range writers {
		wg.Add(1)
		writing.Add(1)
		go func() {
			defer wg.Done()
			defer writing.Done()
			room, topic := place(w)
			for range perTopic {
				id := pubsub.ID(nextID.Add(10))
				m := pubsub.Message{
					ID:        id,
					Topic:     topic,
					From:      fmt.Sprintf("writer%d", w),
					Payload:   json.RawMessage(fmt.Sprintf(`{"id":"%d"}`, id)),
					Timestamp: base.Add(time.Duration(id - firstID)),
				}
				if err := e.s.Append(ctx, room, m); err != nil {
					errs <- fmt.Errorf("Append(%q, id %d) = %v", room, id, err)
					return
				}
				appended[w] = append(appended[w], m)
			}
		}()
	}
	done := make(chan struct{})
	stop := sync.OnceFunc(func() { close(done) })
	defer stop() // the readers stop even if the writers time out
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				room, topic := place((r + i) % writers)
				page, err := e.s.Query(ctx, room, history.Query{Topic: topic, Limit: 10, Before: pubsub.ID(nextID.Load())})
				if err != nil {
					errs <- fmt.Errorf("Query(%q, %q) = %v", room, topic, err)
					return
				}
				for j := 1; j < len(page.Messages); j++ {
					if page.Messages[j-1].ID >= page.Messages[j].ID {
						errs <- fmt.Errorf("Query(%q, %q) returned ids out of order: %v", room, topic, ids(page.Messages))
						return
					}
				}
				if _, err := e.s.MaxID(ctx); err != nil {
					errs <- fmt.Errorf("MaxID() = %v", err)
					return
				}
			}
		}()
	}
	waitGroup(t, &writing, "the writers")
	stop()
	waitGroup(t, &wg, "the readers")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for w := range writers {
		room, topic := place(w)
		e.check(room, history.Query{Topic: topic, Limit: pubsub.MaxHistoryLimit}, appended[w], false)
	}
	if got, err := e.s.MaxID(ctx); err != nil || int64(got) != nextID.Load() {
		t.Errorf("MaxID() = %d, %v, want %d, nil", got, err, nextID.Load())
	}
}

func testClosed(t *testing.T, o opener) {
	ctx := context.Background()
	e := o.open(t, history.Options{})
	e.fill("room", "chat", 2)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := e.s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if err := e.s.Append(ctx, "room", e.msg("chat", "alice")); err == nil {
		t.Error("Append after Close = nil, want an error")
	}
	if _, err := e.s.Query(ctx, "room", history.Query{Topic: "chat", Limit: 10}); err == nil {
		t.Error("Query after Close = nil error, want an error")
	}
	if _, err := e.s.MaxID(ctx); err == nil {
		t.Error("MaxID after Close = nil error, want an error")
	}
}
