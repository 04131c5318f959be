package socketio

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestBrowser runs the seed's flow with the example program: it builds
// examples/socketio, creates an app with its apps command, starts it on a
// free loopback port, and has headless Chromium (driven by playwright-core,
// in testdata/node/browser.mjs) subscribe from the page at / with the
// socket.io-client bundle the server serves, over WebSocket and polling,
// and receive what the seed's fetch snippet publishes.
//
// It skips when Chromium, node or playwright-core is missing, unless CI is
// "true": CI installs them (.ci/run), so there a missing one fails the test.
func TestBrowser(t *testing.T) {
	node := needNode(t, "playwright-core")
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and Chromium is not installed at %s (apt-get install chromium, as .ci/run does)", chromiumPath)
		}
		t.Skipf("skipping: Chromium is not installed at %s", chromiumPath)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build examples/socketio")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "socketio")
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../../examples/socketio").CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/socketio: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	out, err := exec.CommandContext(ctx, bin, "apps", "create", "-data", data, "-name", "browser test").CombinedOutput()
	if err != nil {
		t.Fatalf("socketio apps create: %v\n%s", err, out)
	}
	creds := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(App ID|Publish key|Subscribe key): +(\S+)`).FindAllStringSubmatch(string(out), -1) {
		creds[m[1]] = m[2]
	}
	if len(creds) != 3 {
		t.Fatalf("socketio apps create printed:\n%s", out)
	}

	srv := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-data", data)
	srv.Stderr = os.Stderr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	addrc := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "Plaza Socket.IO service listening on "); ok {
				addrc <- rest
			}
		}
	}()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-drained:
		case <-time.After(waitTimeout):
			t.Errorf("the server still running %v after SIGTERM; killing it", waitTimeout)
			_ = srv.Process.Kill()
			<-drained // the pipe closes with the killed process
		}
		if err := srv.Wait(); err != nil && ctx.Err() == nil && !t.Failed() {
			t.Errorf("the server did not shut down cleanly: %v", err)
		}
	}()
	var base string
	select {
	case base = <-addrc:
	case <-drained:
		t.Fatal("the server exited before listening")
	case <-ctx.Done():
		t.Fatal("the server did not start")
	}

	check := exec.CommandContext(ctx, node, "browser.mjs", base, creds["App ID"], creds["Publish key"], creds["Subscribe key"], filepath.Join(dir, "profile"))
	check.Dir = nodeDir
	check.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	res, err := check.CombinedOutput()
	t.Logf("browser.mjs against %s:\n%s", base, res)
	if err != nil {
		t.Fatalf("the browser checks failed: %v", err)
	}
}
