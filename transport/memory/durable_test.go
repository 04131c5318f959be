package memory_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/internal/testwait"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// crashLine is what the child prints for every publish confirmed to it.
type crashLine struct {
	ID    pubsub.ID `json:"id"`
	Round int       `json:"r"`
	Pub   int       `json:"p"`
	Seq   int       `json:"s"`
	Topic string    `json:"t"`
}

const crashPublishers = 8

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = testwait.Timeout

// waitGroup waits for wg, failing the test when that takes longer than
// waitTimeout.
var waitGroup = testwait.Group

// TestCrashKeepsConfirmedPublishes runs a hub on a durable store in a child
// process, kills it with SIGKILL at a random point, restarts it on the same
// file, and checks that every publish confirmed to a caller survived: none
// lost, none duplicated, order intact.
func TestCrashKeepsConfirmedPublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	var confirmed []crashLine
	for round := range 3 {
		// The child stops by itself after 30 s; one that hangs is killed.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PLAZA_CRASH_DIR="+dir, "PLAZA_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 100 + rand.IntN(900)
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			var l crashLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				continue // test framework output
			}
			confirmed = append(confirmed, l)
			if n++; n == killAt {
				// A second process cannot open the file while the child has it.
				_, err := history.OpenBolt(filepath.Join(dir, "history.db"), history.BoltOptions{OpenTimeout: 50 * time.Millisecond})
				if err == nil {
					t.Error("OpenBolt succeeded while the child held the file")
				}
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
		cmd.Wait()
		if n < killAt {
			if ctx.Err() != nil {
				t.Fatalf("round %d: the child confirmed only %d publishes and was killed after %v", round, n, 30*time.Second+waitTimeout)
			}
			t.Fatalf("round %d: the child confirmed only %d publishes before exiting", round, n)
		}
		t.Logf("round %d: killed after %d confirmations, %d read in all", round, killAt, n)
	}

	store, err := history.OpenBolt(filepath.Join(dir, "history.db"), history.BoltOptions{Options: history.Options{MaxMessages: -1, MaxAge: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := map[pubsub.ID]crashLine{}
	seen := map[[3]int]bool{}
	for _, topic := range []string{"t0", "t1"} {
		last := map[[2]int]int{}
		after := pubsub.ID(1)
		for pages := 0; ; pages++ {
			if pages > len(confirmed) {
				t.Fatalf("paging through %s: more pages than confirmed publishes", topic)
			}
			p, err := store.Query(context.Background(), "crash", history.Query{Topic: topic, After: after, Limit: pubsub.MaxHistoryLimit})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Messages {
				var l crashLine
				if err := json.Unmarshal(m.Payload, &l); err != nil {
					t.Fatal(err)
				}
				k := [3]int{l.Round, l.Pub, l.Seq}
				if seen[k] {
					t.Errorf("publish %v stored twice", k)
				}
				seen[k] = true
				if prev, ok := last[[2]int{l.Round, l.Pub}]; ok && l.Seq <= prev {
					t.Errorf("publisher %v: seq %d stored after %d", [2]int{l.Round, l.Pub}, l.Seq, prev)
				}
				last[[2]int{l.Round, l.Pub}] = l.Seq
				stored[m.ID] = l
				after = m.ID
			}
			if !p.HasMore {
				break
			}
		}
	}
	lost := 0
	for _, c := range confirmed {
		s, ok := stored[c.ID]
		if !ok || s.Round != c.Round || s.Pub != c.Pub || s.Seq != c.Seq {
			lost++
			if lost < 5 {
				t.Errorf("confirmed publish %+v is not in the store", c)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d confirmed publishes lost", lost, len(confirmed))
	}
	t.Logf("%d confirmed publishes, %d stored, none lost", len(confirmed), len(stored))
}

// TestCrashChild is the child of TestCrashKeepsConfirmedPublishes: it
// publishes until it is killed, printing each confirmation.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("PLAZA_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashKeepsConfirmedPublishes")
	}
	round, _ := strconv.Atoi(os.Getenv("PLAZA_CRASH_ROUND"))
	store, err := history.OpenBolt(filepath.Join(dir, "history.db"), history.BoltOptions{Options: history.Options{MaxMessages: -1, MaxAge: -1}})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := memory.New(memory.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for p := range crashPublishers {
		wg.Go(func() {
			c, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "crash", ClientID: "p" + strconv.Itoa(p)})
			if err != nil {
				t.Error(err)
				return
			}
			topic := "t" + strconv.Itoa(p%2)
			for seq := 0; ctx.Err() == nil; seq++ {
				l := crashLine{Round: round, Pub: p, Seq: seq, Topic: topic}
				payload, _ := json.Marshal(l)
				m, err := c.Publish(ctx, pubsub.PublishRequest{Topic: topic, Payload: payload})
				if err != nil {
					return
				}
				l.ID = m.ID
				line, _ := json.Marshal(l)
				out.Lock()
				os.Stdout.Write(append(line, '\n'))
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestIDsAboveStoredAfterClockStepsBack restarts a hub on the same durable
// store with its clock an hour earlier: new ids still exceed the stored ones.
func TestIDsAboveStoredAfterClockStepsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	run := func(at time.Time) []pubsub.ID {
		clock := fakeclock.New(at)
		store, err := history.OpenBolt(path, history.BoltOptions{Options: history.Options{Clock: clock, MaxAge: -1}})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		hub, err := memory.New(memory.Options{Store: store, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		c, err := hub.Connect(context.Background(), pubsub.ConnectRequest{Room: "r", ClientID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []pubsub.ID
		for range 3 {
			m, err := c.Publish(context.Background(), pubsub.PublishRequest{Topic: "x", Payload: []byte(`1`)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		return ids
	}
	before := run(t0)
	after := run(t0.Add(-time.Hour))
	if after[0] <= before[len(before)-1] {
		t.Errorf("after restarting with the clock an hour back, id %v is not above the stored %v", after[0], before[len(before)-1])
	}
	for i := 1; i < len(after); i++ {
		if after[i] <= after[i-1] {
			t.Errorf("ids went backwards: %v", after)
		}
	}
}

// TestChainedPublishesKeepOrder publishes from many goroutines to one topic
// on a durable store, mixing persisted, non-persisted and retried publishes:
// subscribers see id order, every confirmed persisted message is in history
// once, and a retried key is published once.
func TestChainedPublishesKeepOrder(t *testing.T) {
	store, err := history.OpenBolt(filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	hub, err := memory.New(memory.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	sub, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "r", ClientID: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "x"}); err != nil {
		t.Fatal(err)
	}
	const pubs, each = 32, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	persisted := map[pubsub.ID]bool{}
	for p := range pubs {
		wg.Go(func() {
			c, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "r", ClientID: fmt.Sprint("p", p)})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range each {
				req := pubsub.PublishRequest{Topic: "x", Payload: []byte(`1`), NoPersist: i%5 == 0, IdempotencyKey: fmt.Sprint(i)}
				m, err := c.Publish(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				again, err := c.Publish(ctx, req) // a retry of the same key
				if err != nil || again.ID != m.ID {
					t.Errorf("retry of key %d = %v, %v; want the first message %v", i, again.ID, err, m.ID)
				}
				mu.Lock()
				persisted[m.ID] = !req.NoPersist
				mu.Unlock()
			}
		})
	}
	waitGroup(t, &wg, "the publishers")
	var last pubsub.ID
	for i := range pubs * each {
		var m *pubsub.Message
		select {
		case m = <-sub.Messages():
		case <-time.After(waitTimeout):
			t.Fatalf("the subscriber received %d of %d messages, then nothing for %v", i, pubs*each, waitTimeout)
		}
		if m.ID <= last {
			t.Fatalf("delivered %v after %v", m.ID, last)
		}
		last = m.ID
	}
	if len(persisted) != pubs*each {
		t.Fatalf("%d distinct confirmed ids, want %d", len(persisted), pubs*each)
	}
	n := 0
	after := pubsub.ID(1)
	for pages := 0; ; pages++ {
		if pages > pubs*each {
			t.Fatal("paging through history: more pages than publishes")
		}
		p, err := store.Query(ctx, "r", history.Query{Topic: "x", After: after, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if !persisted[m.ID] {
				t.Errorf("history holds %v, which was not confirmed as persisted", m.ID)
			}
			n++
			after = m.ID
		}
		if !p.HasMore {
			break
		}
	}
	if want := pubs * each * 4 / 5; n != want {
		t.Errorf("history holds %d messages, want %d", n, want)
	}
}

// BenchmarkPersistedPublish measures publishes per second with every
// confirmed publish on disk (fsync before Publish returns, fsyncs shared
// across publishers), beside the memory store in the same run. For the bolt
// store it also reports how many messages shared an fsync (msgs/fsync) and
// what an fsync of the log cost (µs/fsync): the disk bounds msgs/s at
// about msgs/fsync over µs/fsync, so on a shared or busy disk compare
// msgs/fsync, and msgs/s only within one run.
//
//	go test -run '^$' -bench 'PersistedPublish/store=bolt' ./transport/memory
func BenchmarkPersistedPublish(b *testing.B) {
	for _, store := range []string{"memory", "bolt"} {
		for _, pubs := range []int{1, 16, 256} {
			for _, spread := range []bool{false, true} {
				if spread && pubs == 1 {
					continue
				}
				benchPersisted(b, store, pubs, spread)
			}
		}
	}
}

// benchPersisted runs pubs publishers on one topic, or each on its own topic
// when spread is set.
func benchPersisted(b *testing.B, store string, pubs int, spread bool) {
	topics := 1
	if spread {
		topics = pubs
	}
	b.Run(fmt.Sprintf("store=%s/publishers=%d/topics=%d", store, pubs, topics), func(b *testing.B) {
		var s history.Store
		var bs *history.Bolt
		if store == "bolt" {
			var err error
			bs, err = history.OpenBolt(filepath.Join(b.TempDir(), "history.db"), history.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			s = bs
		} else {
			s = history.NewMemory(history.Options{})
		}
		hub, err := memory.New(memory.Options{Store: s})
		if err != nil {
			b.Fatal(err)
		}
		defer hub.Close()
		ctx := context.Background()
		conns := make([]pubsub.Conn, pubs)
		for i := range conns {
			if conns[i], err = hub.Connect(ctx, pubsub.ConnectRequest{Room: "bench", ClientID: fmt.Sprint("p", i)}); err != nil {
				b.Fatal(err)
			}
		}
		payload := []byte(`{"text":"` + strings.Repeat("x", 89) + `"}`)
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for i, c := range conns {
			topic := "chat" + strconv.Itoa(i%topics)
			n := b.N / pubs
			if i < b.N%pubs {
				n++
			}
			wg.Go(func() {
				for k := range n {
					if _, err := c.Publish(ctx, pubsub.PublishRequest{Topic: topic, Payload: payload, IdempotencyKey: strconv.Itoa(k)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		if bs != nil {
			st := bs.Stats()
			if st.LogWrites > 0 {
				b.ReportMetric(float64(st.Appends)/float64(st.LogWrites), "msgs/fsync")
				b.ReportMetric(float64(st.LogTime.Microseconds())/float64(st.LogWrites), "µs/fsync")
			}
		}
	})
}
