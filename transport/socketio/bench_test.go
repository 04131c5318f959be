package socketio

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

// BenchmarkFanout delivers 100-byte payloads, published with HTTP POSTs, to
// N WebSocket clients on loopback, each subscribed to the channel, and
// reports deliveries per second, the server's CPU time per delivery and the
// end-to-end latency. "socketio" is this package's Server (POST /publish,
// Socket.IO over WebSocket); "native" is transport/network's protocol on the
// same hub (POST /{room}/pubsub/{topic}/publish, one WebSocket per client).
// One op is one published message.
//
// The server runs in a child process (this test binary, re-run), so that
// its CPU time is measured apart from the clients'; the clients speak the
// Engine.IO and Socket.IO framing by hand (there is no maintained Go client
// of Socket.IO v4), reading each frame and answering pings, nothing more.
// The publisher keeps at most 64 messages undelivered, so the figures are
// throughput and latency under full load.
//
//	go test -run '^$' -bench Fanout -benchtime 2000x ./transport/socketio
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			b.Run("socketio", func(b *testing.B) { benchFanout(b, "socketio", n) })
			b.Run("native", func(b *testing.B) { benchFanout(b, "native", n) })
		})
	}
}

// benchServerEnv, set in the environment of the test binary, makes it a
// benchmark server instead (see TestMain).
const benchServerEnv = "PLAZA_SOCKETIO_BENCH_SERVER"

// benchServer serves one benchmark dialect until stdin closes. It prints
// "ready <addr> <app> <publish key> <subscribe key>", then answers every
// "cpu" line with its user+system CPU time in nanoseconds.
func benchServer(dialect string) int {
	if path := os.Getenv(benchServerEnv + "_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	hub, err := memory.New(memory.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer hub.Close()
	dir, err := os.MkdirTemp("", "plaza-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	reg, err := OpenRegistry(filepath.Join(dir, "apps.db"), RegistryOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer reg.Close()
	_, creds, err := reg.Create(context.Background(), AppOptions{PublishPerMinute: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var h http.Handler
	switch dialect {
	case "socketio":
		srv, err := New(hub, reg, Options{SendQueue: 4096, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer srv.Close()
		h = srv
	case "native":
		srv := network.NewServer(hub, network.Options{MaxFrameRate: -1})
		defer srv.Shutdown(context.Background())
		h = srv
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(l)
	defer hs.Close()
	fmt.Printf("ready %s %s %s %s\n", l.Addr(), creds.AppID, creds.PublishKey, creds.SubscribeKey)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "cpu" {
			var ru syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Println(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return 0
}

// benchChild is a benchmark server in a child process.
type benchChild struct {
	cmd                       *exec.Cmd
	in                        io.WriteCloser
	out                       *bufio.Scanner
	addr, app, pubKey, subKey string
}

func startBenchChild(b *testing.B, dialect string) *benchChild {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+dialect)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &benchChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !c.out.Scan() {
		b.Fatal("the benchmark server did not start")
	}
	f := strings.Fields(c.out.Text())
	if len(f) != 5 || f[0] != "ready" {
		b.Fatalf("the benchmark server said %q", c.out.Text())
	}
	c.addr, c.app, c.pubKey, c.subKey = f[1], f[2], f[3], f[4]
	return c
}

// cpu returns the child's CPU time so far.
func (c *benchChild) cpu(b *testing.B) time.Duration {
	fmt.Fprintln(c.in, "cpu")
	if !c.out.Scan() {
		b.Fatal("the benchmark server is gone")
	}
	ns, err := strconv.ParseInt(c.out.Text(), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

func (c *benchChild) stop() {
	c.in.Close()
	_ = c.cmd.Wait()
}

// benchClients are N raw WebSocket clients that count deliveries and record
// each message's latency from the send time in its payload.
type benchClients struct {
	delivered atomic.Int64
	poke      chan struct{}
	lat       [][]int32 // per client, microseconds
	wg        sync.WaitGroup
	conns     []*websocket.Conn
}

// read counts the deliveries of ws as client i until it closes; pong, when
// set, answers an Engine.IO ping.
func (r *benchClients) read(i int, ws *websocket.Conn, engineIO bool) {
	ws.SetReadLimit(1 << 24)
	r.conns = append(r.conns, ws)
	r.wg.Go(func() {
		mark := []byte(`"t":`)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			if engineIO && len(data) == 1 && data[0] == '2' {
				_ = ws.Write(context.Background(), websocket.MessageText, []byte("3"))
				continue
			}
			now := time.Now().UnixNano()
			k := 0
			for {
				j := bytes.Index(data, mark)
				if j < 0 {
					break
				}
				data = data[j+len(mark):]
				end := bytes.IndexAny(data, ",}")
				sent, _ := strconv.ParseInt(string(data[:end]), 10, 64)
				r.lat[i] = append(r.lat[i], int32((now-sent)/1e3))
				k++
			}
			if k > 0 {
				r.delivered.Add(int64(k))
				select {
				case r.poke <- struct{}{}:
				default:
				}
			}
		}
	})
}

func (r *benchClients) waitDelivered(b *testing.B, n int64) {
	deadline := time.After(time.Minute)
	for r.delivered.Load() < n {
		select {
		case <-r.poke:
		case <-deadline:
			b.Fatalf("delivered %d of %d", r.delivered.Load(), n)
		}
	}
}

func (r *benchClients) close() {
	for _, c := range r.conns {
		c.CloseNow()
	}
	r.wg.Wait()
}

// dialSocketIO connects a raw Socket.IO client and subscribes it to channel.
func dialSocketIO(ctx context.Context, addr, app, key, channel string) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+Path+"?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	expect := func(prefix string) error {
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return err
			}
			if string(data) == "2" {
				_ = ws.Write(ctx, websocket.MessageText, []byte("3"))
				continue
			}
			if !strings.HasPrefix(string(data), prefix) {
				return fmt.Errorf("got %q, want %s…", data, prefix)
			}
			return nil
		}
	}
	steps := []struct{ send, want string }{
		{"", "0{"}, // open
		{`40{"appId":"` + app + `","subscribeKey":"` + key + `"}`, "40{"},
		{`42["subscribe","` + channel + `"]`, `42["subscribed"`},
	}
	for _, s := range steps {
		if s.send != "" {
			if err := ws.Write(ctx, websocket.MessageText, []byte(s.send)); err != nil {
				return nil, err
			}
		}
		if err := expect(s.want); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("after sending %q: %w", s.send, err)
		}
	}
	return ws, nil
}

// dialNative connects a native WebSocket client and subscribes it.
func dialNative(ctx context.Context, addr, app, channel string) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/"+app+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer anyone"}}})
	if err != nil {
		return nil, err
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"1","topic":"`+channel+`"}`)); err != nil {
		return nil, err
	}
	for _, want := range []string{"welcome", "subscribed"} {
		if _, data, err := ws.Read(ctx); err != nil || !bytes.Contains(data, []byte(`"type":"`+want+`"`)) {
			ws.CloseNow()
			return nil, fmt.Errorf("got %s, %v; want %s", data, err, want)
		}
	}
	return ws, nil
}

func benchFanout(b *testing.B, dialect string, n int) {
	child := startBenchChild(b, dialect)
	defer child.stop()
	ctx := context.Background()
	r := &benchClients{poke: make(chan struct{}, 1), lat: make([][]int32, n)}
	for i := range n {
		var ws *websocket.Conn
		var err error
		if dialect == "socketio" {
			ws, err = dialSocketIO(ctx, child.addr, child.app, child.subKey, "fan")
		} else {
			ws, err = dialNative(ctx, child.addr, child.app, "fan")
		}
		if err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
		r.read(i, ws, dialect == "socketio")
	}
	defer r.close()

	url := "http://" + child.addr + PublishPath
	if dialect == "native" {
		url = "http://" + child.addr + "/" + child.app + "/pubsub/fan/publish"
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	publish := func(sent time.Time) {
		payload := fmt.Sprintf(`{"t":%d,"pad":"`, sent.UnixNano())
		payload += strings.Repeat("x", 100-len(payload)-2) + `"}`
		body := `{"message":` + payload + `}`
		if dialect == "socketio" {
			body = `{"channel":"fan","event":"tick","data":` + payload + `}`
		}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-App-Id", child.app)
		req.Header.Set("Authorization", "Bearer "+child.pubKey)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("publish: %d", resp.StatusCode)
		}
	}
	// Warm up, then measure.
	publish(time.Now())
	r.waitDelivered(b, int64(n))
	r.delivered.Store(0)
	for i := range r.lat {
		r.lat[i] = r.lat[i][:0]
	}
	const window = 64
	cpu0 := child.cpu(b)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i >= window {
			r.waitDelivered(b, int64(i-window+1)*int64(n))
		}
		publish(time.Now())
	}
	r.waitDelivered(b, int64(b.N)*int64(n))
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := child.cpu(b) - cpu0

	var all []int32
	for _, l := range r.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) }
	deliveries := float64(b.N) * float64(n)
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "server-cpu-ns/delivery")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
