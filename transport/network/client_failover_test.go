package network

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestNewClientURLs(t *testing.T) {
	tests := []struct {
		name    string
		urls    []string
		want    []string // the URLs of room "lobby", one a node
		wantErr string   // a part of the error; "" means none
	}{
		{name: "none", urls: nil, wantErr: "no server URL"},
		{name: "one", urls: []string{"ws://127.0.0.1:1"}, want: []string{"ws://127.0.0.1:1/lobby/ws"}},
		{name: "three", urls: []string{"ws://127.0.0.1:1", "http://127.0.0.1:2/plaza/", "https://[::1]:3"},
			want: []string{"ws://127.0.0.1:1/lobby/ws", "ws://127.0.0.1:2/plaza/lobby/ws", "wss://[::1]:3/lobby/ws"}},
		{name: "bad scheme", urls: []string{"ws://127.0.0.1:1", "ftp://127.0.0.1:2"}, wantErr: `"ftp://127.0.0.1:2"`},
		{name: "no host", urls: []string{"ws:///x", "ws://127.0.0.1:1"}, wantErr: `"ws:///x" has no host`},
		{name: "empty", urls: []string{"ws://127.0.0.1:1", ""}, wantErr: `server URL ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientURLs(tt.urls, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewClientURLs(%q) = %v, want an error with %q", tt.urls, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClientURLs(%q) = %v", tt.urls, err)
			}
			var got []string
			for _, n := range c.nodes {
				got = append(got, n.roomURL("lobby"))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("room URLs = %q, want %q", got, tt.want)
			}
		})
	}
}

// nodes starts n hubs, each behind its own Server, on the system clock.
func nodes(t *testing.T, n int) ([]*fixture, []string) {
	t.Helper()
	fs := make([]*fixture, n)
	urls := make([]string, n)
	for i := range fs {
		fs[i] = newFixture(t, memory.Options{}, Options{Clock: pubsub.SystemClock{}})
		urls[i] = fs[i].ts.URL
	}
	return fs, urls
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fakeNode listens on loopback and hands each TCP connection to serve, on
// its accept goroutine, until the test ends; it returns its ws:// URL.
func fakeNode(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			serve(conn)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		recv(t, done, "the fake node's accept goroutine to end")
	})
	return "ws://" + l.Addr().String()
}

// TestClientSpreadsConnects: successive Connects go to successive nodes.
func TestClientSpreadsConnects(t *testing.T) {
	t.Parallel()
	fs, urls := nodes(t, 3)
	c, err := NewClientURLs(urls, nil)
	if err != nil {
		t.Fatal(err)
	}
	var conns []pubsub.Conn
	for i := range 30 {
		conn, err := c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "u"})
		if err != nil {
			t.Fatalf("Connect #%d = %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		conns = append(conns, conn)
	}
	for i, f := range fs {
		if got := f.srv.Stats().Connections; got != 10 {
			t.Errorf("node %d holds %d of 30 connections, want 10", i, got)
		}
	}
	// The connections outlive the Connect that opened them (and its
	// per-node deadline).
	for i, conn := range conns {
		if _, err := conn.History(ctxT(t), pubsub.HistoryRequest{Topic: "chat"}); err != nil {
			t.Fatalf("History() on connection #%d = %v", i, err)
		}
	}
}

// TestClientNodeTimeout: a node that accepts connections and never answers
// costs a Connect DialOptions.NodeTimeout, then the next node is tried.
func TestClientNodeTimeout(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var held []net.Conn
	silent := fakeNode(t, func(conn net.Conn) { // read nothing, answer nothing
		mu.Lock()
		held = append(held, conn)
		mu.Unlock()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range held {
			conn.Close()
		}
	})
	fs, urls := nodes(t, 1)
	c, err := NewClientURLs([]string{silent, urls[0]}, &DialOptions{NodeTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // one of the two starts at the silent node
		conn, err := c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "u"})
		if err != nil {
			t.Fatalf("Connect #%d = %v, want the silent node given up on after NodeTimeout", i, err)
		}
		t.Cleanup(func() { conn.Close() })
	}
	if got := fs[0].srv.Stats().Connections; got != 2 {
		t.Errorf("the live node holds %d connections, want 2", got)
	}
	if c.nodes[0].failed.Load() == 0 {
		t.Error("the silent node is not marked failed")
	}
}

// TestClientFailover: a Room whose node goes down reconnects to another
// node of the list by itself, and goes on publishing there.
func TestClientFailover(t *testing.T) {
	t.Parallel()
	fs, urls := nodes(t, 3)
	c, err := NewClientURLs(urls, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	r, err := pubsub.Join(ctx, c, "lobby", &pubsub.JoinOptions{
		Token:        testTokenPrefix + "bob",
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := ctxWait()
		defer cancel()
		if err := r.Leave(ctx); err != nil {
			t.Errorf("Leave() = %v", err)
		}
	})
	on := func() int { // the node that holds the Room's connection, or -1
		for i, f := range fs {
			if f.srv.Stats().Connections == 1 {
				return i
			}
		}
		return -1
	}
	waitFor(t, "the Room's connection on a node", func() bool { return on() >= 0 })
	first := on()
	shutdown(t, fs[first].srv)
	fs[first].ts.Close()
	waitFor(t, "the Room's connection on another node", func() bool { return on() >= 0 && on() != first })
	second := on()

	m, err := r.Publish(ctx, "chat", map[string]int{"n": 1})
	if err != nil {
		t.Fatalf("Publish() after failover = %v", err)
	}
	hc, err := fs[second].hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	page, err := hc.History(ctx, pubsub.HistoryRequest{Topic: "chat"})
	if err != nil {
		t.Fatalf("History() on node %d = %v", second, err)
	}
	if len(page.Messages) != 1 || page.Messages[0].ID != m.ID {
		t.Errorf("history of node %d = %v, want the message %v published after failover", second, page.Messages, m.ID)
	}
}

// TestClientSkipsFailedNode: a node that refused a connection is tried
// after the others, so that the Connects that follow do not each pay for it.
func TestClientSkipsFailedNode(t *testing.T) {
	t.Parallel()
	var accepted atomic.Int32
	dead := fakeNode(t, func(conn net.Conn) { // drop at once
		accepted.Add(1)
		conn.Close()
	})
	fs, urls := nodes(t, 2)
	c, err := NewClientURLs([]string{dead, urls[0], urls[1]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		conn, err := c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "u"})
		if err != nil {
			t.Fatalf("Connect #%d = %v, want the dead node skipped", i, err)
		}
		t.Cleanup(func() { conn.Close() })
	}
	if n := accepted.Load(); n > 1 {
		t.Errorf("the dead node was tried %d times in 12 Connects, want at most once", n)
	}
	if a, b := fs[0].srv.Stats().Connections, fs[1].srv.Stats().Connections; a+b != 12 || a < 5 || b < 5 {
		t.Errorf("the live nodes hold %d and %d of 12 connections, want them spread", a, b)
	}
}

// TestClientAllNodesDown: NETWORK_ERROR, naming every node tried.
func TestClientAllNodesDown(t *testing.T) {
	t.Parallel()
	addrs := []string{deadAddr(t), deadAddr(t), deadAddr(t)}
	c, err := NewClientURLs([]string{"ws://" + addrs[0], "ws://" + addrs[1], "ws://" + addrs[2]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby"})
	if !errors.Is(err, pubsub.ErrNetwork) {
		t.Fatalf("Connect() = %v, want NETWORK_ERROR", err)
	}
	var perr *pubsub.Error
	if !errors.As(err, &perr) || !perr.Retriable() {
		t.Errorf("Connect() = %#v, want a retriable *pubsub.Error", err)
	}
	for _, a := range addrs {
		if !strings.Contains(err.Error(), "ws://"+a+"/lobby/ws") {
			t.Errorf("Connect() = %v, want it to name ws://%s/lobby/ws", err, a)
		}
	}
}

// TestClientRefusalNoFailover: a refusal of the credentials is the same on
// every node: Connect returns it without trying the others.
func TestClientRefusalNoFailover(t *testing.T) {
	t.Parallel()
	fs, urls := nodes(t, 3)
	c, err := NewClientURLs(urls, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: "nope"})
	if !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Fatalf("Connect() with a bad token = %v, want UNAUTHENTICATED", err)
	}
	if strings.Contains(err.Error(), "no node reachable") {
		t.Errorf("Connect() = %v, want the refusal itself", err)
	}
	for i, n := range c.nodes {
		if n.failed.Load() != 0 {
			t.Errorf("node %d (%s) is marked failed after a refusal", i, fs[i].ts.URL)
		}
	}
}

// FuzzNewClientURLs: any list either fails at construction or gives nodes
// whose room URLs are WebSocket URLs of a host, under the path given.
func FuzzNewClientURLs(f *testing.F) {
	f.Add("ws://127.0.0.1:8080", "wss://[::1]/plaza/", "lobby")
	f.Add("http://a:1/x%20y?t=1#frag", "https://b", "a b")
	f.Add("ws:///nohost", "ftp://x", "r")
	f.Add("ws://h/%zz", "", "")
	f.Fuzz(func(t *testing.T, a, b, room string) {
		c, err := NewClientURLs([]string{a, b}, nil)
		if err != nil {
			return
		}
		if len(c.nodes) != 2 {
			t.Fatalf("NewClientURLs(%q, %q) has %d nodes, want 2", a, b, len(c.nodes))
		}
		for _, n := range c.nodes {
			raw := n.roomURL(room)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("room URL %q of %q does not parse: %v", raw, n.base, err)
			}
			if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.Fragment != "" {
				t.Errorf("room URL %q: want ws or wss, a host and no fragment", raw)
			}
			if !strings.HasSuffix(u.Path, "/"+room+"/ws") {
				t.Errorf("room URL %q has path %q, want it to end in /%s/ws", raw, u.Path, room)
			}
		}
	})
}
