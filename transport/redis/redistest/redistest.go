// Package redistest starts a real redis-server for tests: those of package
// redis, and those of programs built on it. It runs Debian's
// /usr/bin/redis-server (7.0 or newer) on a free loopback port, with its
// files in a temporary directory, stopped when the test ends.
//
// Use [Start] from a test. It skips the test when redis-server is missing,
// unless the environment has CI=true: CI installs it (.ci/run), so there a
// missing server fails the test instead.
//
// A [Server] can be stopped, killed (SIGKILL, as a crash) and restarted on
// the same port and directory, so that tests can watch clients lose Redis
// and find it again, and, with [Options.AOF], check that what Redis
// confirmed survives. Its methods must be called from the test's goroutine.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is the redis-server Start runs; REDIS_SERVER in the environment
// overrides it.
const Binary = "/usr/bin/redis-server"

// startTimeout bounds the wait for a started server to answer, and for a
// stopped one to exit: generous for a loaded machine, not a measurement.
const startTimeout = 20 * time.Second

// Options configure the server Start runs. The zero value is a server
// without persistence, password or memory limit.
type Options struct {
	// AOF turns the append-only file on with appendfsync always: every
	// write Redis confirms is on disk first, and a restarted server
	// replays it.
	AOF bool
	// Password is the server's requirepass; empty means none.
	Password string
	// MaxMemory is the server's maxmemory ("1mb", "64mb"), with the
	// noeviction policy, so that writes past it fail with OOM. Empty means
	// no limit.
	MaxMemory string

	cluster bool // set by StartCluster
}

// Server is a redis-server process of one test.
type Server struct {
	tb   testing.TB
	opts Options
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	log  string        // path of the server's log file
}

// Start starts a redis-server with opts on a free port of 127.0.0.1 and
// waits until it answers. It stops the server when tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		bin = Binary
	}
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true and %s is missing (.ci/run installs the redis-server package): %v", bin, err)
		}
		tb.Skipf("skipping: %s is missing (apt-get install redis-server): %v", bin, err)
	}
	port := freePort(tb)
	if opts.cluster {
		port = freeClusterPort(tb)
	}
	s := &Server{tb: tb, opts: opts, bin: bin, dir: tb.TempDir(), port: port}
	s.log = filepath.Join(s.dir, "redis.log")
	tb.Cleanup(func() { s.stop(syscall.SIGKILL) })
	s.start()
	return s
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeClusterPort returns a port that was free a moment ago, as was its
// cluster bus port (the port + 10000).
func freeClusterPort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		p := freePort(tb)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	tb.Fatal("redistest: no free port with a free cluster bus port")
	return 0
}

// StartCluster starts a Redis Cluster of n masters (no replicas), each a
// Server as Start makes them with opts, joins them with redis-cli
// --cluster create (the slots spread evenly), and waits until every node
// reports the cluster ok. The servers stop when tb ends. Clients connect
// to any of them.
func StartCluster(tb testing.TB, n int, opts Options) []*Server {
	tb.Helper()
	opts.cluster = true
	servers := make([]*Server, n)
	args := []string{"--cluster", "create"}
	for i := range servers {
		servers[i] = Start(tb, opts)
		args = append(args, servers[i].Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	var auth []string
	if opts.Password != "" {
		auth = []string{"-a", opts.Password, "--no-auth-warning"}
	}
	args = append(args, auth...)
	cli := filepath.Join(filepath.Dir(servers[0].bin), "redis-cli")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: %s %s: %v\n%s", cli, strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range servers {
		for {
			out, err := exec.Command(cli, append(auth, "-p", strconv.Itoa(s.port), "cluster", "info")...).Output()
			if err == nil && bytes.Contains(out, []byte("cluster_state:ok")) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: the cluster node on %s did not report cluster_state:ok within %v: %v\n%s", s.Addr(), startTimeout, err, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return servers
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL, with the password when it has one.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return "redis://:" + s.opts.Password + "@" + s.Addr()
	}
	return "redis://" + s.Addr()
}

// Dir is the server's working directory (its AOF lives there).
func (s *Server) Dir() string { return s.dir }

// Running reports whether the server process is running.
func (s *Server) Running() bool { return s.cmd != nil }

func (s *Server) args() []string {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", s.log,
		"--save", "",
		"--daemonize", "no",
		"--appendonly", "no",
	}
	if s.opts.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	if s.opts.MaxMemory != "" {
		args = append(args, "--maxmemory", s.opts.MaxMemory, "--maxmemory-policy", "noeviction")
	}
	if s.opts.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
	}
	return args
}

func (s *Server) start() {
	s.tb.Helper()
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: starting %s: %v", s.bin, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() {
		cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr())
		if err == nil {
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.tb.Fatalf("redistest: redis-server on %s exited before answering (%v); its log:\n%s", s.Addr(), cmd.ProcessState, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: redis-server on %s did not answer within %v: %v; its log:\n%s", s.Addr(), startTimeout, err, s.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ping sends PING over a new connection to addr and reads the first reply
// line: PONG, or NOAUTH from a server with a password, both mean it is up
// (and, with AOF, done loading it: a loading server answers LOADING).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return errors.New(strings.TrimSpace(line))
}

// Stop stops the server as an operator would (SIGTERM: with AOF, it
// flushes and exits) and waits for it to exit.
func (s *Server) Stop() {
	s.tb.Helper()
	s.stop(syscall.SIGTERM)
}

// Kill kills the server with SIGKILL, as a crash, and waits for it to
// exit.
func (s *Server) Kill() {
	s.tb.Helper()
	s.stop(syscall.SIGKILL)
}

func (s *Server) stop(sig syscall.Signal) {
	s.tb.Helper()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(startTimeout):
		s.cmd.Process.Kill()
		<-s.done
		s.tb.Errorf("redistest: redis-server on %s did not exit within %v of %v", s.Addr(), startTimeout, sig)
	}
	s.cmd = nil
}

// Restart starts the server again, stopped or killed, on the same port and
// directory, with the same options, and waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	s.stop(syscall.SIGTERM)
	s.start()
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(bytes.TrimSpace(b))
}
