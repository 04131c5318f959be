package network

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/transport/memory"
)

// idleConns is how many connections the memory benchmark opens.
const idleConns = 1000

// BenchmarkIdleConnMemory measures what an idle WebSocket connection holding
// one subscription costs the server: heap in use plus goroutine stacks, per
// connection, over 1000 connections. The clients run in a child process
// (this test binary again), so that only the server's side is counted.
// "plaza" serves a memory hub with its default queue bound (which holds no
// backlog for an idle connection); "coder" is a bare coder/websocket connection with its default
// buffers, a reading and a writing goroutine, for comparison.
//
//	go test -run '^$' -bench IdleConnMemory ./transport/network
func BenchmarkIdleConnMemory(b *testing.B) {
	b.Run("plaza", func(b *testing.B) {
		for range b.N {
			hub, err := memory.New(memory.Options{})
			if err != nil {
				b.Fatal(err)
			}
			srv := NewServer(hub, Options{Authenticate: testAuthenticate})
			measureIdle(b, srv, func() int { return srv.Stats().Connections })
			shutdown(b, srv)
			hub.Close()
		}
	})
	b.Run("coder", func(b *testing.B) {
		for range b.N {
			var live atomic.Int64
			done := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				q := make(chan []byte, 16)
				go func() { // the writer
					for {
						select {
						case m := <-q:
							ws.Write(context.Background(), websocket.MessageText, m)
						case <-done:
							return
						}
					}
				}()
				live.Add(1)
				defer live.Add(-1)
				for { // the reader: welcome the client, acknowledge its frames
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
					ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"welcome"}`))
					ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribed"}`))
				}
			})
			measureIdle(b, h, func() int { return int(live.Load()) })
			close(done)
		}
	})
}

// measureIdle serves h, has a child process open idleConns connections that
// each subscribe once, and reports the server's memory per connection.
func measureIdle(b *testing.B, h http.Handler, conns func() int) {
	ts := httptest.NewServer(h)
	defer ts.Close()
	before := settledMemory()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleClients$")
	cmd.Env = append(os.Environ(), "PLAZA_IDLE_URL="+ts.URL, "PLAZA_IDLE_N="+strconv.Itoa(idleConns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("client process said %q, %v", line, err)
	}
	waitFor(b, "the server to hold every connection", func() bool { return conns() == idleConns })
	after := settledMemory()

	heap := float64(after.HeapInuse) - float64(before.HeapInuse)
	stack := float64(after.StackInuse) - float64(before.StackInuse)
	b.ReportMetric((heap+stack)/idleConns, "bytes/conn")
	b.ReportMetric(heap/idleConns, "heap-bytes/conn")
	b.ReportMetric(stack/idleConns, "stack-bytes/conn")
	b.ReportMetric(float64(after.NumGC-before.NumGC), "GCs")
}

// settledMemory collects garbage until stacks have shrunk and reads the
// memory statistics.
func settledMemory() runtime.MemStats {
	var m runtime.MemStats
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m
}

// TestHelperIdleClients is the client process of BenchmarkIdleConnMemory:
// it opens PLAZA_IDLE_N connections to PLAZA_IDLE_URL, subscribes each to one
// topic, prints "ready" and holds them until its standard input closes.
func TestHelperIdleClients(t *testing.T) {
	url, n := os.Getenv("PLAZA_IDLE_URL"), os.Getenv("PLAZA_IDLE_N")
	if url == "" {
		t.Skip("only runs as the client process of BenchmarkIdleConnMemory")
	}
	count, _ := strconv.Atoi(n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/idle/ws"
	var conns []*websocket.Conn
	for i := range count {
		ws, _, err := websocket.Dial(ctx, wsURL, bearer(fmt.Sprint("idle", i)))
		if err != nil {
			t.Fatalf("Dial(#%d) = %v", i, err)
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"1","topic":"idle"}`)); err != nil {
			t.Fatal(err)
		}
		for range 2 { // welcome, subscribed
			if _, _, err := ws.Read(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ws.CloseRead(context.Background()) // answer pings from now on
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		ws.CloseNow()
	}
}
