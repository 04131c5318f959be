package socketio

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeDir holds the Node tooling of the tests: socket.io-client and
// playwright-core, installed by `npm ci` from the committed lockfile.
const nodeDir = "testdata/node"

// needNode returns the path of node, or skips the test when node or the
// npm packages are missing, unless CI is "true": CI installs them
// (.ci/run), so there a missing one fails the test.
func needNode(tb testing.TB, packages ...string) string {
	tb.Helper()
	missing := func(format string, args ...any) {
		tb.Helper()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true and "+format, args...)
		}
		tb.Skipf("skipping: "+format, args...)
	}
	if testing.Short() {
		tb.Skip("runs Node; skipped with -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (apt-get install nodejs npm)")
	}
	for _, p := range append([]string{"socket.io-client"}, packages...) {
		if _, err := os.Stat(nodeDir + "/node_modules/" + p); err != nil {
			missing("%s is not installed: run npm ci in transport/socketio/%s, as .ci/run does", p, nodeDir)
		}
	}
	return node
}

// report is one line driver.mjs wrote.
type report map[string]any

func (r report) str(key string) string { s, _ := r[key].(string); return s }

// nodeClients is a driver.mjs process: Socket.IO clients under Node that
// the test commands.
type nodeClients struct {
	tb    testing.TB
	url   string
	stdin io.WriteCloser
	lines chan report // closed when the process's stdout ends

	mu      sync.Mutex
	backlog []report // read, not yet matched
	all     []report // everything, for failure messages
}

// startNode starts driver.mjs for clients of url; it ends with the test.
func startNode(tb testing.TB, url string) *nodeClients {
	tb.Helper()
	node := needNode(tb)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "driver.mjs")
	cmd.Dir = nodeDir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting node driver.mjs: %v", err)
	}
	n := &nodeClients{tb: tb, url: url, stdin: stdin, lines: make(chan report, 1024)}
	go func() {
		defer close(n.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = report{"type": "garbage", "line": sc.Text()}
			}
			n.lines <- r
		}
	}()
	tb.Cleanup(func() {
		stdin.Close() // driver.mjs closes its sockets and exits
		done := make(chan struct{})
		go func() {
			for range n.lines {
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			tb.Errorf("driver.mjs did not exit")
		}
		cancel()
		_ = cmd.Wait()
	})
	n.wait("driver.mjs to start", func(r report) bool { return r.str("type") == "ready" && r["id"] == nil })
	return n
}

// send writes one command.
func (n *nodeClients) send(cmd map[string]any) {
	n.tb.Helper()
	b, _ := json.Marshal(cmd)
	written := make(chan error, 1)
	go func() { // a driver that stops reading would block the write
		_, err := n.stdin.Write(append(b, '\n'))
		written <- err
	}()
	select {
	case err := <-written:
		if err != nil {
			n.tb.Fatalf("writing to driver.mjs: %v", err)
		}
	case <-time.After(waitTimeout):
		n.tb.Fatalf("driver.mjs did not take the command %s within %v", b, waitTimeout)
	}
}

// wait returns the first report, in the order written, that match accepts
// and no earlier wait took; it fails the test after waitTimeout.
func (n *nodeClients) wait(what string, match func(report) bool) report {
	n.tb.Helper()
	return n.waitFor(waitTimeout, what, match)
}

func (n *nodeClients) waitFor(d time.Duration, what string, match func(report) bool) report {
	n.tb.Helper()
	n.mu.Lock()
	for i, r := range n.backlog {
		if match(r) {
			n.backlog = append(n.backlog[:i], n.backlog[i+1:]...)
			n.mu.Unlock()
			return r
		}
	}
	n.mu.Unlock()
	deadline := time.After(d)
	for {
		select {
		case r, ok := <-n.lines:
			if !ok {
				n.tb.Fatalf("driver.mjs exited while the test waited for %s; it wrote:\n%s", what, n.dump())
			}
			n.mu.Lock()
			n.all = append(n.all, r)
			if r.str("type") == "crash" {
				n.mu.Unlock()
				n.tb.Fatalf("driver.mjs crashed: %s", r.str("message"))
			}
			if match(r) {
				n.mu.Unlock()
				return r
			}
			n.backlog = append(n.backlog, r)
			n.mu.Unlock()
		case <-deadline:
			n.tb.Fatalf("timed out after %v waiting for %s; driver.mjs wrote:\n%s", d, what, n.dump())
		}
	}
}

// none fails the test if a report that match accepts has arrived, among
// those read so far and those waiting to be read.
func (n *nodeClients) none(what string, match func(report) bool) {
	n.tb.Helper()
	n.drain()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.backlog {
		if match(r) {
			n.tb.Errorf("%s: got %v", what, r)
		}
	}
}

// drain moves the reports waiting to be read to the backlog.
func (n *nodeClients) drain() {
	for {
		select {
		case r, ok := <-n.lines:
			if !ok {
				return
			}
			n.mu.Lock()
			n.all = append(n.all, r)
			n.backlog = append(n.backlog, r)
			n.mu.Unlock()
		default:
			return
		}
	}
}

func (n *nodeClients) dump() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, r := range n.all {
		j, _ := json.Marshal(r)
		fmt.Fprintf(&b, "  %s\n", j)
	}
	return b.String()
}

// connect opens Socket.IO client id with the seed's options: the given
// transports and auth {appId, subscribeKey}.
func (n *nodeClients) connect(id string, transports []string, appID, key string, extra ...map[string]any) {
	n.tb.Helper()
	opts := map[string]any{"transports": transports, "auth": map[string]any{"appId": appID, "subscribeKey": key}}
	for _, e := range extra {
		for k, v := range e {
			opts[k] = v
		}
	}
	n.send(map[string]any{"op": "connect", "id": id, "url": n.url, "opts": opts})
}

// connected waits for client id to connect and returns the report.
func (n *nodeClients) connected(id string) report {
	n.tb.Helper()
	return n.wait(id+" to connect", func(r report) bool {
		if r["id"] == id && r.str("type") == "connect_error" {
			n.tb.Fatalf("%s: connect_error %v", id, r)
		}
		return r["id"] == id && r.str("type") == "connect"
	})
}

// refused waits for client id's connect_error and returns its message and
// data.code.
func (n *nodeClients) refused(id string) (message, code string) {
	n.tb.Helper()
	r := n.wait(id+"'s connect_error", func(r report) bool {
		if r["id"] == id && r.str("type") == "connect" {
			n.tb.Fatalf("%s connected, want connect_error", id)
		}
		return r["id"] == id && r.str("type") == "connect_error"
	})
	data, _ := r["data"].(map[string]any)
	code, _ = data["code"].(string)
	return r.str("message"), code
}

// subscribe emits "subscribe" for channel and waits for "subscribed".
func (n *nodeClients) subscribe(id, channel string) {
	n.tb.Helper()
	n.send(map[string]any{"op": "emit", "id": id, "event": "subscribe", "args": []any{channel}})
	r := n.event(id, "subscribed")
	if p := firstArg(r); p["channel"] != channel {
		n.tb.Fatalf("%s: subscribed %v, want {channel: %q}", id, r["args"], channel)
	}
}

// event waits for client id to receive event and returns the report.
func (n *nodeClients) event(id, event string) report {
	n.tb.Helper()
	return n.wait(fmt.Sprintf("%s to receive %q", id, event), func(r report) bool {
		return r["id"] == id && r.str("type") == "event" && r.str("event") == event
	})
}

// firstArg returns the first argument of an event report as an object.
func firstArg(r report) map[string]any {
	args, _ := r["args"].([]any)
	if len(args) == 0 {
		return nil
	}
	m, _ := args[0].(map[string]any)
	return m
}
