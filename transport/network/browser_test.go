package network

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestBrowser builds examples/server, starts it on a free loopback port
// and has headless Chromium (driven by playwright-core, in
// testdata/browser/check.mjs) check that a page the server serves can
// receive with EventSource and WebSocket what an HTTP POST publishes, and
// use a temporary client socket path without a key. It then clicks through
// the server's page at /: every failure shows in its log (a wrong key on
// SSE, a WebSocket or a client socket, with the status and code or the
// close code and its reason; a pattern without the pattern box ticked; a
// client socket closed at its max_dur, then refused), subscribing twice
// shows each message once, the page raises no uncaught error, and
// /favicon.ico is served. SCREENSHOT=<file.png> in the environment makes
// check.mjs save a picture of the page.
//
// It skips when Chromium, node or playwright-core is missing, unless CI is
// "true": CI installs them (.ci/run), so there a missing one fails the test.
func TestBrowser(t *testing.T) {
	node := browserTools(t)
	base := startExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	check := exec.CommandContext(ctx, node, "check.mjs", base, "pk-dev", "sk-dev", filepath.Join(dir, "profile"))
	check.Dir = "testdata/browser"
	check.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	out, err := check.CombinedOutput()
	t.Logf("check.mjs against %s:\n%s", base, out)
	if err != nil {
		t.Fatalf("the browser checks failed: %v", err)
	}
}

// browserTools returns the path of node once Chromium, node and
// playwright-core are all there. It skips the test when one is missing, or
// with -short, and fails it instead when CI is "true": CI installs them
// (.ci/run), so there a missing one is a broken machine.
func browserTools(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and "+format, args...)
		}
		t.Skipf("skipping the browser test: "+format, args...)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing("Chromium is not installed at %s (apt-get install chromium, as .ci/run does)", chromiumPath)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (apt-get install nodejs npm)")
	}
	if _, err := os.Stat("testdata/browser/node_modules/playwright-core"); err != nil {
		missing("playwright-core is not installed: run npm ci in transport/network/testdata/browser, as .ci/run does")
	}
	return node
}

// startExample builds examples/server, starts it on a free loopback port
// with history in memory, and returns its base URL. When the test ends it
// stops the server with SIGTERM, kills it if it is still running after
// waitTimeout, and fails the test unless it shut down cleanly.
func startExample(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command on PATH to build examples/server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../../examples/server").CombinedOutput(); err != nil {
		cancel()
		t.Fatalf("go build ./examples/server: %v\n%s", err, out)
	}
	srv := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-memory")
	srv.Stderr = os.Stderr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		cancel()
		t.Fatalf("starting the server: %v", err)
	}
	addrc := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "Plaza hub listening on "); ok {
				addrc <- rest
			}
		}
	}()
	t.Cleanup(func() {
		defer cancel()
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
	})
	select {
	case base := <-addrc:
		return base
	case <-drained:
		t.Fatal("the server exited before listening")
	case <-time.After(waitTimeout):
		t.Fatalf("the server did not listen within %v", waitTimeout)
	}
	return ""
}
