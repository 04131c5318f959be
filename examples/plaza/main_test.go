package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
)

// waitTimeout bounds every wait for something that should happen: a
// deadlock guard, generous enough for a loaded machine, not a measurement.
const waitTimeout = 20 * time.Second

// The binaries under test, built once by TestMain: the terminal client and
// the example server it talks to.
var plazaBin, serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plaza-test")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		plazaBin, serverBin = filepath.Join(dir, "plaza"), filepath.Join(dir, "server")
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		for _, b := range []struct{ out, pkg string }{{plazaBin, "."}, {serverBin, "../server"}} {
			if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
				os.Stderr.Write(out)
				os.Stderr.WriteString("go build " + b.pkg + ": " + err.Error() + "\n")
				return 1
			}
		}
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			return 1
		}
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// Test keys.
const (
	pk = "pk-test"
	sk = "sk-test"
)

// server is a running example server.
type server struct {
	url  string // http://127.0.0.1:port
	addr string
}

// startServer runs the example server on addr (127.0.0.1:0 for any port)
// with history in data ("" for memory) until the test ends, or until stop.
func startServer(t *testing.T, addr, data string) (*server, func()) {
	t.Helper()
	args := []string{"-addr", addr, "-publish-key", pk, "-subscribe-key", sk}
	if data == "" {
		args = append(args, "-memory")
	} else {
		args = append(args, "-data", data)
	}
	cmd := exec.Command(serverBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	urlc := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "Plaza hub listening on "); ok {
				urlc <- rest
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-drained:
			case <-time.After(waitTimeout):
				cmd.Process.Kill()
				t.Errorf("the server did not stop within %v of SIGTERM", waitTimeout)
				<-drained
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("the server exited with %v; its log:\n%s", err, logs.String())
			}
		})
	}
	t.Cleanup(stop)
	select {
	case u := <-urlc:
		return &server{url: u, addr: strings.TrimPrefix(u, "http://")}, stop
	case <-drained:
		t.Fatalf("the server exited before listening; its log:\n%s", logs.String())
	case <-time.After(waitTimeout):
		t.Fatalf("the server did not listen within %v", waitTimeout)
	}
	return nil, nil
}

// clientEnv is the environment of a plaza command: the server and token,
// and nothing of the test's own PLAZA_ variables.
func clientEnv(url, token string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	if url != "" {
		env = append(env, "PLAZA_URL="+url)
	}
	if token != "" {
		env = append(env, "PLAZA_TOKEN="+token)
	}
	return env
}

// result is how a plaza command ended.
type result struct {
	code           int
	stdout, stderr string
}

// plaza runs the terminal client without a terminal (as in a script), with
// stdin as its input, and waits for it, at most waitTimeout.
func plaza(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, plazaBin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("plaza %q did not end within %v; stderr: %s", args, waitTimeout, stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("plaza %q: %v", args, err)
	}
	return r
}

// terminal is a plaza command running in a pseudo-terminal, as a person at
// a shell runs it.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	done chan struct{} // closed when the output ends

	mu     sync.Mutex
	screen strings.Builder
	more   chan struct{} // signalled when output arrives
}

// inTerminal starts plaza with args in a pseudo-terminal.
func inTerminal(t *testing.T, env []string, args ...string) *terminal {
	t.Helper()
	cmd := exec.Command(plazaBin, args...)
	cmd.Env = env
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatalf("starting plaza %q in a terminal: %v", args, err)
	}
	term := &terminal{t: t, cmd: cmd, tty: tty, done: make(chan struct{}), more: make(chan struct{}, 1)}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			if n > 0 {
				term.mu.Lock()
				term.screen.WriteString(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n"))
				term.mu.Unlock()
				select {
				case term.more <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return // the command exited: EIO on Linux
			}
		}
	}()
	t.Cleanup(func() {
		if term.cmd.ProcessState == nil {
			term.cmd.Process.Kill()
			term.cmd.Wait()
		}
		tty.Close()
		select {
		case <-term.done:
		case <-time.After(waitTimeout):
			t.Errorf("the terminal reader did not end within %v of closing the tty", waitTimeout)
		}
	})
	return term
}

func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.screen.String()
}

// expect waits until the screen matches re and returns the match.
func (term *terminal) expect(re *regexp.Regexp) []string {
	term.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if m := re.FindStringSubmatch(term.text()); m != nil {
			return m
		}
		select {
		case <-term.more:
		case <-term.done:
			if m := re.FindStringSubmatch(term.text()); m != nil {
				return m
			}
			term.t.Fatalf("plaza exited before printing %s; the screen:\n%s", re, term.text())
		case <-deadline:
			term.t.Fatalf("plaza did not print %s within %v; the screen:\n%s", re, waitTimeout, term.text())
		}
	}
}

// interrupt types Ctrl-C and returns the exit code.
func (term *terminal) interrupt() int {
	term.t.Helper()
	if _, err := term.tty.Write([]byte{3}); err != nil {
		term.t.Fatalf("typing Ctrl-C: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- term.cmd.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			term.t.Fatalf("waiting for plaza: %v", err)
		}
		return 0
	case <-time.After(waitTimeout):
		// Reap it here: the cleanup must not Wait a second time.
		term.cmd.Process.Kill()
		<-exited
		term.t.Fatalf("plaza still runs %v after Ctrl-C; the screen:\n%s", waitTimeout, term.text())
		return -1
	}
}

var subscribed = regexp.MustCompile(`plaza: subscribed to \S+ in \S+`)

// A person runs plaza sub in one terminal and plaza pub in another: the
// message appears as a line of time, sender and payload, and Ctrl-C ends
// the subscriber cleanly.
func TestSubPub(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", "")
	sub := inTerminal(t, clientEnv(srv.url, sk), "sub", "lobby", "alerts")
	sub.expect(subscribed)

	r := plaza(t, clientEnv(srv.url, pk+":alice"), "", "pub", "lobby", "alerts", `{"text": "hello"}`)
	if r.code != 0 || !regexp.MustCompile(`^\d+\n$`).MatchString(r.stdout) {
		t.Fatalf("plaza pub = %d, stdout %q, stderr %q; want 0 and the message id", r.code, r.stdout, r.stderr)
	}
	sub.expect(regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} alice \{"text": "hello"\}$`))

	// Lines of stdin are messages of their own, from a pipe.
	r = plaza(t, clientEnv(srv.url, pk+":bob"), "1\n\n\"two\"\n", "pub", "lobby", "alerts", "-")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("plaza pub - = %d, stdout %q, stderr %q; want two ids", r.code, r.stdout, r.stderr)
	}
	sub.expect(regexp.MustCompile(`(?m) bob 1\n.* bob "two"$`))

	if code := sub.interrupt(); code != 0 {
		t.Errorf("plaza sub exited with %d after Ctrl-C, want 0; the screen:\n%s", code, sub.text())
	}
}

// --history prints what the topic holds first, --json prints each message
// as the server's JSON, and a pattern subscription receives every topic it
// matches.
func TestSubHistoryJSONAndPatterns(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", "")
	env := clientEnv(srv.url, pk+":alice")
	for _, p := range []string{`"first"`, `"second"`, `"third"`} {
		if r := plaza(t, env, "", "pub", "lobby", "news", p); r.code != 0 {
			t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
		}
	}
	sub := inTerminal(t, clientEnv(srv.url, sk), "sub", "--json", "--history", "2", "lobby", "news")
	sub.expect(subscribed)
	if r := plaza(t, env, "", "pub", "lobby", "news", `"live"`); r.code != 0 {
		t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
	}
	sub.expect(regexp.MustCompile(`"payload":"live"`))
	var payloads []string
	for _, line := range strings.Split(sub.text(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m struct {
			ID, From string
			Payload  json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a --json line is not JSON: %v\n%s", err, line)
		}
		if m.ID == "" || m.From != "alice" {
			t.Errorf("message %s: want an id and from alice", line)
		}
		payloads = append(payloads, string(m.Payload))
	}
	if got, want := strings.Join(payloads, " "), `"second" "third" "live"`; got != want {
		t.Errorf("plaza sub --history 2 printed %s, want %s", got, want)
	}
	if code := sub.interrupt(); code != 0 {
		t.Errorf("plaza sub exited with %d after Ctrl-C, want 0", code)
	}

	pat := inTerminal(t, clientEnv(srv.url, sk), "sub", "lobby", "user:*")
	pat.expect(subscribed)
	if r := plaza(t, env, "", "pub", "lobby", "user:123:events", `{"type": "login"}`); r.code != 0 {
		t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
	}
	pat.expect(regexp.MustCompile(` alice \{"type": "login"\}`))
	if code := pat.interrupt(); code != 0 {
		t.Errorf("plaza sub on a pattern exited with %d after Ctrl-C, want 0", code)
	}
}

// plaza history pages through a topic: newest page first, and it says how
// to read the next one.
func TestHistory(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", "")
	env := clientEnv(srv.url, pk+":alice")
	var ids []string
	for _, p := range []string{"1", "2", "3"} {
		r := plaza(t, env, "", "pub", "lobby", "counts", p)
		if r.code != 0 {
			t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
		}
		ids = append(ids, strings.TrimSpace(r.stdout))
	}
	read := clientEnv(srv.url, sk)
	r := plaza(t, read, "", "history", "lobby", "counts", "--limit", "2")
	if r.code != 0 || !regexp.MustCompile(`^\S+ \S+ alice 2\n\S+ \S+ alice 3\n$`).MatchString(r.stdout) {
		t.Errorf("plaza history --limit 2 = %d, %q; want the messages 2 and 3", r.code, r.stdout)
	}
	if want := "more with --before " + ids[1]; !strings.Contains(r.stderr, want) {
		t.Errorf("plaza history --limit 2: stderr %q, want %q", r.stderr, want)
	}
	r = plaza(t, read, "", "history", "lobby", "counts", "--before", ids[1], "--json")
	var m struct{ ID string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil || m.ID != ids[0] {
		t.Errorf("plaza history --before %s --json = %d, %q; want the first message as JSON", ids[1], r.code, r.stdout)
	}
	r = plaza(t, read, "", "-url", srv.url, "history", "lobby", "counts", "--after", ids[0], "--from", "bob")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("plaza history --from bob = %d, %q; want nothing: bob sent nothing", r.code, r.stdout)
	}
}

// Mistakes on the command line exit with 2 and say what is wrong; a server
// that refuses or cannot be reached, with 1.
func TestExitCodes(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", "")
	env := clientEnv(srv.url, pk)
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", env, nil, 2, "no command"},
		{"unknown command", env, []string{"publish", "lobby", "t"}, 2, `unknown command "publish"`},
		{"unknown flag", env, []string{"pub", "--bogus", "lobby", "t", "1"}, 2, "-bogus"},
		{"missing topic", env, []string{"pub", "lobby"}, 2, "pub takes ROOM TOPIC"},
		{"payload not JSON", env, []string{"pub", "lobby", "t", "{bad"}, 2, "not JSON"},
		{"history of a pattern", env, []string{"sub", "--history", "5", "lobby", "user:*"}, 2, "--history needs a topic"},
		{"bad id", env, []string{"history", "lobby", "t", "--before", "yesterday"}, 2, "not a message id"},
		{"limit out of range", env, []string{"history", "lobby", "t", "--limit", "0"}, 2, "INVALID_LIMIT"},
		{"bad topic", env, []string{"pub", "lobby", "no spaces", "1"}, 1, "INVALID_TOPIC_NAME"},
		{"wrong key", clientEnv(srv.url, "pk-wrong"), []string{"pub", "lobby", "t", "1"}, 1, "UNAUTHENTICATED"},
		{"subscribe key publishes", clientEnv(srv.url, sk), []string{"pub", "lobby", "t", "1"}, 1, "PERMISSION_DENIED"},
		{"no server", clientEnv("ws://127.0.0.1:1", pk), []string{"pub", "lobby", "t", "1"}, 1, "NETWORK_ERROR"},
		{"help", env, []string{"-h"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plaza(t, tt.env, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("plaza %q = %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
	if r := plaza(t, env, "", "-h"); !strings.Contains(r.stdout, "Usage:") {
		t.Errorf("plaza -h printed %q, want the usage", r.stdout)
	}
}

// proxy forwards TCP connections to target until cut, which drops them all
// and refuses new ones until restore: a network that fails under a client.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("the proxy's goroutines did not end within %v of closing it", waitTimeout)
		}
	})
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, waitTimeout)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// When the connection drops, plaza sub reconnects by itself and prints what
// was published meanwhile, once, before what comes after.
func TestSubReconnectsAndFillsTheGap(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", t.TempDir())
	px := newProxy(t, srv.addr)
	sub := inTerminal(t, clientEnv("ws://"+px.l.Addr().String(), sk), "sub", "lobby", "alerts")
	sub.expect(subscribed)
	pub := clientEnv(srv.url, pk+":alice")
	if r := plaza(t, pub, "", "pub", "lobby", "alerts", `"before"`); r.code != 0 {
		t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
	}
	sub.expect(regexp.MustCompile(` alice "before"`))

	px.cut()
	if r := plaza(t, pub, "", "pub", "lobby", "alerts", `"while away"`); r.code != 0 {
		t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
	}
	px.restore()
	sub.expect(regexp.MustCompile(` alice "while away"`))
	if r := plaza(t, pub, "", "pub", "lobby", "alerts", `"after"`); r.code != 0 {
		t.Fatalf("plaza pub = %d: %s", r.code, r.stderr)
	}
	sub.expect(regexp.MustCompile(` alice "after"`))
	if code := sub.interrupt(); code != 0 {
		t.Errorf("plaza sub exited with %d after Ctrl-C, want 0", code)
	}
	var got []string
	for _, m := range regexp.MustCompile(` alice ("[a-z ]+")`).FindAllStringSubmatch(sub.text(), -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, ",") != `"before","while away","after"` {
		t.Errorf("plaza sub printed %v, want each message once, in order; the screen:\n%s", got, sub.text())
	}
}

// plaza pub reading lines from a terminal stops at Ctrl-C, as the usage
// says every command does, even while it waits for the next line.
func TestPubFromTerminalInterrupted(t *testing.T) {
	srv, _ := startServer(t, "127.0.0.1:0", "")
	pub := inTerminal(t, clientEnv(srv.url, pk+":alice"), "pub", "lobby", "alerts", "-")
	if _, err := pub.tty.Write([]byte("1\n")); err != nil {
		t.Fatalf("typing a line: %v", err)
	}
	pub.expect(regexp.MustCompile(`(?m)^\d{6,}$`)) // the id of the message typed: plaza waits for the next line
	if code := pub.interrupt(); code != exitInterrupted {
		t.Errorf("plaza pub - exited with %d after Ctrl-C, want %d; the screen:\n%s", code, exitInterrupted, pub.text())
	}
}
