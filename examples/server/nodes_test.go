package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// The tests in this file run the server as the real thing: separate
// processes of the built binary, started with -redis on one redis-server,
// and killed with SIGKILL where a test says so.

// binDir holds the server binary the process tests build once; TestMain
// removes it.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

// serverBinary builds the server once per test run and returns its path.
func serverBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binError = os.MkdirTemp("", "plaza-server-test")
		if binError != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		binPath = filepath.Join(binDir, "server")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// nodeProcess is one server process.
type nodeProcess struct {
	url  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{} // closed once cmd has been waited for
	err  error         // cmd.Wait's, after done
}

// startNode runs the server binary as one node on the Redis at redisURL,
// on a free loopback port, until the test ends (SIGTERM, then reaped) or
// until kill.
func startNode(t *testing.T, redisURL string) *nodeProcess {
	t.Helper()
	cmd := exec.Command(serverBinary(t), "-addr", "127.0.0.1:0", "-redis", redisURL,
		"-publish-key", "pk", "-subscribe-key", "sk", "-shutdown-timeout", "5s")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // none of the test's PLAZA_ variables
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeProcess{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	urlc := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "Plaza hub listening on "); ok {
				urlc <- rest
			}
		}
		n.err = cmd.Wait() // after the last read of stdout, as Wait wants
		close(n.done)
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
			if n.err != nil {
				t.Errorf("node %s exited with %v after SIGTERM; its log:\n%s", n.url, n.err, n.logs)
			}
		case <-time.After(waitTimeout):
			cmd.Process.Kill()
			<-n.done
			t.Errorf("node %s did not stop within %v of SIGTERM", n.url, waitTimeout)
		}
	})
	select {
	case n.url = <-urlc:
		return n
	case <-n.done:
		t.Fatalf("the server exited before listening (%v); its log:\n%s", n.err, n.logs)
	case <-time.After(waitTimeout):
		t.Fatalf("the server did not listen within %v; its log:\n%s", waitTimeout, n.logs)
	}
	return nil
}

// kill ends the process with SIGKILL, as a crash would, and reaps it.
func (n *nodeProcess) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL node %s: %v", n.url, err)
	}
	select {
	case <-n.done:
	case <-time.After(waitTimeout):
		t.Fatalf("node %s still running %v after SIGKILL", n.url, waitTimeout)
	}
}

// ws is the node's WebSocket base URL.
func (n *nodeProcess) ws() string { return "ws" + strings.TrimPrefix(n.url, "http") }

// websockets reads the node's open WebSockets from /metrics.
func (n *nodeProcess) websockets(t *testing.T) int {
	t.Helper()
	resp, err := plainClient.Get(n.url + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics = %v", n.url, err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), `plaza_connections{protocol="websocket"} `); ok {
			v, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("%s/metrics: plaza_connections %q: %v", n.url, rest, err)
			}
			return v
		}
	}
	t.Fatalf("%s/metrics has no plaza_connections{protocol=\"websocket\"} (status %d)", n.url, resp.StatusCode)
	return 0
}

// startNodes starts a redis-server with the append-only file and n nodes
// on it.
func startNodes(t *testing.T, n int) (*redistest.Server, []*nodeProcess) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{AOF: true})
	serverBinary(t) // before the nodes' clocks start
	nodes := make([]*nodeProcess, n)
	for i := range nodes {
		nodes[i] = startNode(t, srv.URL())
	}
	return srv, nodes
}

// nodeURLs is the WebSocket URL of every node, for network.NewClientURLs.
func nodeURLs(nodes []*nodeProcess) []string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.ws()
	}
	return urls
}

// join joins room through t as the holder of token, and leaves it when the
// test ends.
func join(tb testing.TB, t pubsub.Transport, room, token string, opts *pubsub.JoinOptions) *pubsub.Room {
	tb.Helper()
	o := pubsub.JoinOptions{Token: token}
	if opts != nil {
		o = *opts
		o.Token = token
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := pubsub.Join(ctx, t, room, &o)
	if err != nil {
		tb.Fatalf("Join(%q) with %q = %v", room, token, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		r.Leave(ctx)
	})
	return r
}

// received collects what a Room's handlers were given, in order.
type received struct {
	mu   sync.Mutex
	msgs []pubsub.Message
	more chan struct{} // signalled after each message
}

func newReceived() *received { return &received{more: make(chan struct{}, 1)} }

func (r *received) add(m pubsub.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *received) list() []pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until done(messages so far) holds, or fails after
// deadline, saying what it waited for.
func (r *received) waitFor(t *testing.T, deadline <-chan time.Time, what string, done func([]pubsub.Message) bool) {
	t.Helper()
	for {
		got := r.list()
		if done(got) {
			return
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %d messages received", what, len(got))
		}
	}
}

// readHistory reads every message of topic in room that the Room's client may
// see, oldest first, page by page.
func readHistory(t *testing.T, r *pubsub.Room, topic string) []pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var all []pubsub.Message
	opts := []pubsub.HistoryOption{pubsub.Limit(pubsub.MaxHistoryLimit)}
	for {
		page, err := r.GetHistory(ctx, topic, opts...)
		if err != nil {
			t.Fatalf("GetHistory(%q) in %s = %v", topic, r.Name(), err)
		}
		all = append(slices.Clone(page.Messages), all...)
		if !page.HasMore || len(page.Messages) == 0 {
			return all
		}
		opts = []pubsub.HistoryOption{pubsub.Limit(pubsub.MaxHistoryLimit), pubsub.Before(page.Messages[0].ID)}
	}
}

// checkOrder reports a message whose id is not above the one received
// before it on its topic (out of order, or a second copy), and one whose
// id a message of another topic of the room already had: across nodes ids
// strictly increase per topic and are unique, whichever node made them.
func checkOrder(t *testing.T, room string, got []pubsub.Message) {
	t.Helper()
	last := map[string]pubsub.ID{}
	topicOf := map[pubsub.ID]string{}
	for _, m := range got {
		if m.ID <= last[m.Topic] {
			t.Errorf("%s: on %s, message %v (%s) came after %v: out of order or a second copy", room, m.Topic, m.ID, m.Payload, last[m.Topic])
		}
		last[m.Topic] = m.ID
		if other, ok := topicOf[m.ID]; ok && other != m.Topic {
			t.Errorf("%s: message %v (%s) on %s has the id of a message on %s", room, m.ID, m.Payload, m.Topic, other)
		}
		topicOf[m.ID] = m.Topic
	}
}

// summary is the ids, topics, senders and payloads of ms, for comparing histories.
func summary(ms []pubsub.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%v %s %s %s", m.ID, m.Topic, m.From, m.Payload)
	}
	return out
}

// Three server processes on one Redis act as one hub for 300 Rooms
// spread over them and 10 publishers on different nodes: every Room's
// subscriber gets every message meant for it exactly once, per topic in
// id order, never its own, never one addressed to someone else; and every
// node answers the same history.
func TestThreeProcessesOneHub(t *testing.T) {
	_, nodes := startNodes(t, 3)
	const rooms, publishers = 300, 10
	name := func(i int) string { return fmt.Sprintf("room-%03d", i) }
	topics := []string{"chat", "news"}

	// One client with the three URLs: its Connects rotate over them.
	spread, err := network.NewClientURLs(nodeURLs(nodes), nil)
	if err != nil {
		t.Fatal(err)
	}
	subs := make([]*pubsub.Room, rooms)
	got := make([]*received, rooms)
	for i := range subs {
		subs[i] = join(t, spread, name(i), "pk:sub", nil)
		got[i] = newReceived()
		for _, topic := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			_, err := subs[i].Subscribe(ctx, topic, got[i].add)
			cancel()
			if err != nil {
				t.Fatalf("Subscribe(%q) in %s = %v", topic, name(i), err)
			}
		}
	}
	for i, n := range nodes {
		if ws := n.websockets(t); ws != rooms/len(nodes) {
			t.Errorf("node %d holds %d of the %d subscribers' WebSockets, want %d: the Rooms are not spread", i, ws, rooms, rooms/len(nodes))
		}
	}

	// Publisher p is on node p%3, so every Room has publishers on its
	// subscriber's node and on both others. In every Room each publishes
	// one message to everyone on chat, one to the subscriber alone on
	// news, and one to carol on chat; the subscriber publishes one of its
	// own. Publisher 0 keeps its Rooms for the markers.
	want := make([][]string, rooms)
	var wantMu sync.Mutex
	markers := make([]*pubsub.Room, rooms)
	var wg sync.WaitGroup
	for p := range publishers {
		client, err := network.NewClient(nodes[p%3].ws(), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 300 Joins and 900 publishes through Redis: seconds on an
			// idle machine, a minute under the whole suite and two CPU hogs.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			for i := range rooms {
				r, err := pubsub.Join(ctx, client, name(i), &pubsub.JoinOptions{Token: fmt.Sprintf("pk:pub%d", p)})
				if err != nil {
					t.Errorf("publisher %d: Join(%s) = %v", p, name(i), err)
					return
				}
				sends := []struct {
					topic, text string
					to          []string
					forSub      bool
				}{
					{"chat", fmt.Sprintf("all %d", p), nil, true},
					{"news", fmt.Sprintf("to sub %d", p), []string{"sub"}, true},
					{"chat", fmt.Sprintf("to carol %d", p), []string{"carol"}, false},
				}
				for _, s := range sends {
					if _, err := r.Publish(ctx, s.topic, s.text, pubsub.To(s.to...)); err != nil {
						t.Errorf("publisher %d: Publish(%q, %q) in %s = %v", p, s.topic, s.text, name(i), err)
					}
					if s.forSub {
						wantMu.Lock()
						want[i] = append(want[i], s.topic+" "+strconv.Quote(s.text))
						wantMu.Unlock()
					}
				}
				if p == 0 {
					markers[i] = r
					continue
				}
				if err := r.Leave(ctx); err != nil {
					t.Errorf("publisher %d: Leave(%s) = %v", p, name(i), err)
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, r := range markers {
			if r != nil {
				r.Leave(context.Background())
			}
		}
	})
	for i, r := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		if _, err := r.Publish(ctx, "chat", "own"); err != nil {
			t.Errorf("Publish(own) in %s = %v", name(i), err)
		}
		cancel()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	text := func(ms []pubsub.Message) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Topic + " " + string(m.Payload)
		}
		slices.Sort(out)
		return out
	}
	deadline := time.After(waitTimeout)
	for i := range subs {
		got[i].waitFor(t, deadline, fmt.Sprintf("the %d messages meant for the subscriber of %s", len(want[i]), name(i)),
			func(ms []pubsub.Message) bool { return len(ms) >= len(want[i]) })
	}
	// A marker on each topic, after everything else: anything more (a
	// copy, the subscriber's own message, carol's) would have come first.
	for i, r := range markers {
		for _, topic := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			if _, err := r.Publish(ctx, topic, "marker"); err != nil {
				t.Fatalf("Publish(%s, marker) in %s = %v", topic, name(i), err)
			}
			cancel()
		}
	}
	for i := range subs {
		got[i].waitFor(t, deadline, "the markers in "+name(i), func(ms []pubsub.Message) bool { return len(ms) >= len(want[i])+len(topics) })
		ms := got[i].list()
		checkOrder(t, name(i), ms)
		wantAll := append(slices.Clone(want[i]), `chat "marker"`, `news "marker"`)
		slices.Sort(wantAll)
		if diff := cmp.Diff(wantAll, text(ms)); diff != "" {
			t.Errorf("%s: the subscriber received (-want +got):\n%s", name(i), diff)
		}
	}

	// History is one: each node answers the same pages as the subscriber
	// may see them (its own message, not carol's), in the order delivered.
	for i := 0; i < rooms; i += 37 {
		for _, topic := range topics {
			var first []string
			for k, n := range nodes {
				client, err := network.NewClient(n.ws(), nil)
				if err != nil {
					t.Fatal(err)
				}
				r := join(t, client, name(i), "sk:sub", nil)
				h := summary(readHistory(t, r, topic))
				if k == 0 {
					first = h
					var delivered []string
					for _, m := range got[i].list() {
						if m.Topic == topic {
							delivered = append(delivered, summary([]pubsub.Message{m})...)
						}
					}
					wantN := len(delivered)
					if topic == "chat" {
						wantN++ // the subscriber's own
					}
					if len(h) != wantN {
						t.Errorf("%s: %s history for sub holds %d messages, want %d:\n%s", name(i), topic, len(h), wantN, strings.Join(h, "\n"))
					}
					own := slices.DeleteFunc(slices.Clone(h), func(s string) bool { return strings.Fields(s)[2] == "sub" })
					if diff := cmp.Diff(own, delivered); diff != "" {
						t.Errorf("%s: %s history (without sub's own) differs from the delivery order (-history +delivered):\n%s", name(i), topic, diff)
					}
					continue
				}
				if diff := cmp.Diff(first, h); diff != "" {
					t.Errorf("%s: %s history from node %d differs from node 0's (-0 +%d):\n%s", name(i), topic, k, k, diff)
				}
			}
		}
	}
}

// states records a Room's OnState changes.
type states struct {
	mu  sync.Mutex
	got []pubsub.StateChange
}

func (s *states) add(c pubsub.StateChange) {
	s.mu.Lock()
	s.got = append(s.got, c)
	s.mu.Unlock()
}

func (s *states) list() []pubsub.StateChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// A node process SIGKILLed under load: the Rooms it served reconnect to
// the other nodes by themselves, subscribe again and fill the gap
// (OnState: disconnected, then reconnected with Recovered), and end with
// every persisted message once and in order; publishes in flight on it are
// retried by their Room on another node with the same idempotency key, so
// that each confirmed publish is in history once, and one that failed is
// there at most once.
func TestNodeKilled(t *testing.T) {
	_, nodes := startNodes(t, 3)
	const rooms, publishers, perPublisher = 30, 3, 30
	name := func(i int) string { return fmt.Sprintf("room-%02d", i) }
	opts := &pubsub.JoinOptions{GapFill: true, ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second,
		Retries: 6, RetryDelay: 100 * time.Millisecond}

	// One client with the three URLs, its Connects rotating over them: in
	// each Room the subscriber and the three publishers, so that each node
	// serves subscribers and publishers of many Rooms, rooms/3 subscribers
	// each.
	client, err := network.NewClientURLs(nodeURLs(nodes), nil)
	if err != nil {
		t.Fatal(err)
	}
	subs := make([]*pubsub.Room, rooms)
	got := make([]*received, rooms)
	changes := make([]*states, rooms)
	pubs := make([][]*pubsub.Room, rooms)
	for i := range subs {
		got[i], changes[i] = newReceived(), &states{}
		o := *opts
		o.OnState = changes[i].add
		subs[i] = join(t, client, name(i), "sk:sub", &o)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, err := subs[i].Subscribe(ctx, "chat", got[i].add)
		cancel()
		if err != nil {
			t.Fatalf("Subscribe(chat) in %s = %v", name(i), err)
		}
		for p := range publishers {
			pubs[i] = append(pubs[i], join(t, client, name(i), fmt.Sprintf("pk:pub%d", p), opts))
		}
	}
	victim := nodes[0]
	served := victim.websockets(t)
	if want := rooms / 3 * (1 + publishers); served != want {
		t.Fatalf("node 0 serves %d WebSockets, want %d: the Rooms are not spread", served, want)
	}

	// Every publisher publishes perPublisher messages in each Room, one
	// after another; node 0 is killed once a third of them are confirmed.
	type outcome struct {
		text string
		id   pubsub.ID // zero: the publish failed
	}
	outcomes := make([][]outcome, rooms)
	var mu sync.Mutex
	var confirmed atomic.Int64
	third := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range rooms {
		for p, r := range pubs[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range perPublisher {
					text := fmt.Sprintf("pub%d #%d", p, n)
					ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
					m, err := r.Publish(ctx, "chat", text)
					cancel()
					o := outcome{text: strconv.Quote(text), id: m.ID}
					if err != nil {
						o.id = 0
						// The Room gave up retrying while no node took it:
						// the contract then is NETWORK_ERROR, retriable.
						if !errors.Is(err, pubsub.ErrNetwork) {
							t.Errorf("%s: Publish(%q) = %v, want success or NETWORK_ERROR", name(i), text, err)
						}
					}
					mu.Lock()
					outcomes[i] = append(outcomes[i], o)
					mu.Unlock()
					if err == nil && confirmed.Add(1) >= rooms*publishers*perPublisher/3 {
						once.Do(func() { close(third) })
					}
				}
			}()
		}
	}
	select {
	case <-third:
	case <-time.After(2 * waitTimeout):
		t.Fatalf("timed out waiting for a third of the publishes to be confirmed: %d", confirmed.Load())
	}
	atKill := confirmed.Load()
	victim.kill(t)
	wg.Wait()
	if atKill >= rooms*publishers*perPublisher {
		t.Fatalf("every publish was confirmed before node 0 was killed: no load to kill it under")
	}
	var reconnects, retries, gapFilled uint64
	for i := range rooms {
		for _, r := range pubs[i] {
			st := r.Stats()
			reconnects, retries = reconnects+st.Reconnects, retries+st.Retries
		}
		gapFilled += subs[i].Stats().GapFilled
	}
	// Node 0 served a third of the publisher Rooms: each reconnected once.
	if want := uint64(rooms * publishers / len(nodes)); reconnects != want {
		t.Errorf("publisher Rooms reconnected %d times after node 0 was killed, want %d: once for each it served", reconnects, want)
	}
	t.Logf("node 0 killed after %d of %d publishes were confirmed; publishers reconnected %d times and retried %d publishes; subscribers filled %d messages from history",
		atKill, rooms*publishers*perPublisher, reconnects, retries, gapFilled)

	// Every surviving node answers the same history; each message in it
	// once; every confirmed publish in it with the id Publish returned.
	var hist [][]pubsub.Message
	failed := 0
	for i := range rooms {
		var first []pubsub.Message
		for k, n := range nodes[1:] {
			c, err := network.NewClient(n.ws(), nil)
			if err != nil {
				t.Fatal(err)
			}
			h := readHistory(t, join(t, c, name(i), "sk:sub", nil), "chat")
			if k == 0 {
				first = h
				continue
			}
			if diff := cmp.Diff(summary(first), summary(h)); diff != "" {
				t.Errorf("%s: history from node 2 differs from node 1's (-1 +2):\n%s", name(i), diff)
			}
		}
		hist = append(hist, first)
		copies := map[string]int{}
		ids := map[string]pubsub.ID{}
		for _, m := range first {
			copies[string(m.Payload)]++
			ids[string(m.Payload)] = m.ID
		}
		for text, n := range copies {
			if n > 1 {
				t.Errorf("%s: history holds %d copies of %s", name(i), n, text)
			}
		}
		for _, o := range outcomes[i] {
			switch {
			case o.id == 0:
				failed++
			case ids[o.text] != o.id:
				t.Errorf("%s: confirmed publish %s (id %v) is not in history (found id %v)", name(i), o.text, o.id, ids[o.text])
			}
		}
	}
	t.Logf("%d of %d publishes failed with NETWORK_ERROR after their retries", failed, rooms*publishers*perPublisher)

	// Every subscriber ends with exactly history: every persisted message
	// once, in id order, the ones it missed filled in from history.
	deadline := time.After(waitTimeout)
	for i := range subs {
		got[i].waitFor(t, deadline, fmt.Sprintf("the %d messages of %s's history", len(hist[i]), name(i)),
			func(ms []pubsub.Message) bool { return len(ms) >= len(hist[i]) })
		ms := got[i].list()
		checkOrder(t, name(i), ms)
		if diff := cmp.Diff(summary(hist[i]), summary(ms)); diff != "" {
			t.Errorf("%s: the subscriber received (-history +received):\n%s", name(i), diff)
		}
	}

	// The subscribers of node 0 were told of the loss and of a recovery
	// that missed nothing; the others saw no change.
	moved := 0
	for i := range subs {
		var kinds []pubsub.ConnState
		recovered := true
		for _, c := range changes[i].list() {
			kinds = append(kinds, c.State)
			if c.State == pubsub.StateReconnected {
				recovered = recovered && c.Recovered
			}
		}
		switch {
		case slices.Equal(kinds, []pubsub.ConnState{pubsub.StateConnected}):
		case slices.Equal(kinds, []pubsub.ConnState{pubsub.StateConnected, pubsub.StateDisconnected, pubsub.StateReconnected}):
			moved++
			if !recovered {
				t.Errorf("%s: OnState reported the reconnect with Recovered false after node 0 was killed", name(i))
			}
		default:
			t.Errorf("%s: OnState reported %v, want connected, then disconnected and reconnected only if on node 0", name(i), kinds)
		}
	}
	if moved != rooms/3 {
		t.Errorf("%d subscribers reconnected, want the %d node 0 served", moved, rooms/3)
	}
}

// readiness polls the node's /readyz until its status is want, and
// returns what its redis check said; it fails the test after waitTimeout.
// (Readiness is a state to be read, not an event: it is polled, as a load
// balancer does.)
func (n *nodeProcess) readiness(t *testing.T, want int) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		status, body := getJSON(t, n.url+"/readyz")
		checks, _ := body["checks"].(map[string]any)
		redis, _ := checks["redis"].(string)
		if status == want {
			return redis
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s/readyz to answer %d: %d %v", waitTimeout, n.url, want, status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis SIGKILLed and restarted (with appendfsync always) while two
// server processes serve a publisher on one and a receiver with gap fill
// on the other: while Redis is down publishes fail with a retriable
// NETWORK_ERROR and /readyz answers 503 naming redis; the nodes reconnect
// by themselves and turn ready again; no confirmed message is lost, none
// is received twice, and history holds each once.
func TestRedisRestartUnderLoadProcesses(t *testing.T) {
	srv, nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	opts := pubsub.JoinOptions{GapFill: true, RetryDelay: 10 * time.Millisecond,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	ca, err := network.NewClient(a.ws(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := network.NewClient(b.ws(), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice := join(t, ca, "lobby", "pk:alice", &opts)
	bob := join(t, cb, "lobby", "sk:bob", &opts)
	got := newReceived()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := bob.Subscribe(ctx, "chat", got.add); err != nil {
		t.Fatalf("Subscribe(chat) on B = %v", err)
	}

	var (
		mu        sync.Mutex
		confirmed []pubsub.ID
		failed    int
		progress  = make(chan struct{}, 1)
	)
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(confirmed), failed
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			m, err := alice.Publish(ctx, "chat", i)
			cancel()
			mu.Lock()
			if err == nil {
				confirmed = append(confirmed, m.ID)
			} else {
				var perr *pubsub.Error
				if !errors.As(err, &perr) || perr.Code != pubsub.CodeNetworkError || !perr.Retriable() {
					t.Errorf("Publish(%d) on A = %v, want success or a retriable NETWORK_ERROR", i, err)
				}
				failed++
			}
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			if err != nil {
				time.Sleep(10 * time.Millisecond) // a client's pause before trying again
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		waitClosed(t, done, "the publish loop on A to stop")
	}()
	waitCount := func(what string, ok func(confirmed, failed int) bool) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			if ok(count()) {
				return
			}
			select {
			case <-progress:
			case <-deadline:
				n, f := count()
				t.Fatalf("timed out after %v waiting for %s: %d confirmed, %d failed", waitTimeout, what, n, f)
			}
		}
	}

	waitCount("20 confirmed publishes", func(n, _ int) bool { return n >= 20 })
	srv.Kill()
	waitCount("a publish to fail while Redis is down", func(_, f int) bool { return f > 0 })
	for _, n := range nodes {
		if problem := n.readiness(t, http.StatusServiceUnavailable); problem == "" || problem == "ok" {
			t.Errorf("%s/readyz answered 503 while Redis was down, but its redis check says %q", n.url, problem)
		}
	}
	atOutage, _ := count()
	srv.Restart()
	waitCount("20 more confirmed publishes after the restart", func(n, _ int) bool { return n >= atOutage+20 })
	close(stop)
	waitClosed(t, done, "the publish loop on A to stop")
	for _, n := range nodes {
		if problem := n.readiness(t, http.StatusOK); problem != "ok" {
			t.Errorf("%s/readyz answered 200 after the restart, but its redis check says %q", n.url, problem)
		}
	}

	// History, from either node, holds every confirmed message once, and a
	// failed publish at most once (its reply may have been cut off after
	// Redis stored it); bob received exactly history.
	h := readHistory(t, bob, "chat")
	if diff := cmp.Diff(summary(h), summary(readHistory(t, alice, "chat"))); diff != "" {
		t.Errorf("history from B and from A differ (-B +A):\n%s", diff)
	}
	mu.Lock()
	want, fails := slices.Clone(confirmed), failed
	mu.Unlock()
	inHistory := map[pubsub.ID]bool{}
	for _, m := range h {
		inHistory[m.ID] = true
	}
	for _, id := range want {
		if !inHistory[id] {
			t.Errorf("confirmed message %v is not in history", id)
		}
	}
	if extra := len(h) - len(want); extra < 0 || extra > fails {
		t.Errorf("history holds %d messages: %d confirmed and %d failed publishes", len(h), len(want), fails)
	}
	got.waitFor(t, time.After(waitTimeout), fmt.Sprintf("bob to receive the %d messages of history", len(h)),
		func(ms []pubsub.Message) bool { return len(ms) >= len(h) })
	ms := got.list()
	checkOrder(t, "lobby", ms)
	if diff := cmp.Diff(summary(h), summary(ms)); diff != "" {
		t.Errorf("bob received (-history +received):\n%s", diff)
	}
	t.Logf("%d confirmed, %d failed while Redis was down; bob: %+v", len(want), fails, bob.Stats())
}

// waitClosed waits for done to be closed; it fails the test, naming what it
// waited for, when that takes longer than waitTimeout.
func waitClosed(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}
