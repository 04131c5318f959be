// Command server runs a Plaza hub that other processes and browsers reach
// over HTTP, Server-Sent Events and WebSocket: a memory hub with durable
// history in a local folder, behind a network.Server, and a small browser
// page at / (with its icon at /favicon.ico).
//
//	go run ./examples/server
//	go run ./examples/server -addr 127.0.0.1:9000 -publish-key pk-prod -subscribe-key sk-prod -data /var/lib/plaza
//	go run ./examples/server -memory      # history in memory only, gone when the server stops
//	go run ./examples/server -redis redis://127.0.0.1:6379 -addr 127.0.0.1:8081   # one node of several
//
// It prints how to publish with curl, subscribe with SSE, use the plaza
// terminal client (examples/plaza) and connect from Go.
// Every room has the same two keys (network.Options.Keys): the publish key
// may publish, subscribe, read history and create temporary client sockets;
// the subscribe key may do all but publish. A credential is the key, or
// "<key>:<name>" to choose the client id. The default keys, pk-dev and
// sk-dev, are for trying the server on this machine: choose your own before
// listening on any other address.
//
// History lives in the folder of -data (./plaza-data by default), in
// history.db, beside key-secret, the secret that keeps the client ids of bare
// keys the same across restarts (so a retried publish is still recognized).
// Only one server can use a folder at a time; a second one fails
// at once with an error that says so. To start afresh, stop the server and
// delete the folder.
//
// With -redis URL the server is one node of several sharing that Redis
// (transport/redis): history, deduplication, the HTTP publish cap, the
// temporary client sockets and the key secret live there, each node leases
// its own snowflake node id, and every node's clients see one hub. -data is
// then not used.
//
// # Settings
//
// Every setting is a flag, an environment variable named PLAZA_ and the
// flag in capitals (-publish-key is PLAZA_PUBLISH_KEY), and a key of an
// optional TOML file named by -config or PLAZA_CONFIG (publish-key =
// "pk-prod"). A flag beats the environment, which beats the file, which
// beats the default; -h lists them all. A value that does not parse, an
// unknown key in the file, or a combination that cannot serve stops the
// server at start with a message that names the setting.
//
// With -tls-cert and -tls-key it serves HTTPS and WSS on -addr.
//
// # Operating it
//
// GET /metrics answers the Prometheus text format (see serverMetrics for
// every metric), on -addr or, with -metrics-addr, only there. GET /healthz
// answers 200 while the process serves; GET /readyz answers 200 while the
// history store is writable and 503 with what is wrong otherwise (and from
// the start of a shutdown on), both in JSON. Logs go to stderr through log/slog, as text or JSON (-log-format),
// with the room, client id, remote address and close code of every
// connection; they never hold a payload, a key or a token. The keys are
// printed at start only while they are the development defaults.
//
// SIGINT or SIGTERM shuts the server down cleanly: event streams end and
// WebSockets close with the going-away code once their current request is
// answered; then the hub and the history close, in that order.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

// page is the browser page served at /.
//
//go:embed page.html
var page []byte

// favicon is the page's icon, served at /favicon.ico, where browsers look
// for one.
//
//go:embed favicon.svg
var favicon []byte

// chatPage is the chat demo at /chat, built on plaza.js.
//
//go:embed chat.html
var chatPage []byte

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// listening is where a started server listens.
type listening struct {
	addr    string // the main listener
	metrics string // the -metrics-addr listener; "" without one
}

// newLogger is the logger of cfg, writing to w.
func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", cfg.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", cfg.logFormat)
}

// check refuses a config that cannot serve, naming the setting.
func (cfg config) check() error {
	if cfg.addr == "" {
		// net.Listen would take every interface and a random port.
		return errors.New(`-addr is empty: name the address to listen on, such as 127.0.0.1:8080 (":8080" for every interface)`)
	}
	if cfg.publishKey == "" || cfg.subscribeKey == "" || cfg.publishKey == cfg.subscribeKey {
		return errors.New("-publish-key and -subscribe-key must be set and differ")
	}
	if strings.Contains(cfg.publishKey, ":") || strings.Contains(cfg.subscribeKey, ":") {
		return errors.New(`-publish-key and -subscribe-key cannot contain ":", which separates a key from a client name`)
	}
	if cfg.memory && cfg.redis != "" {
		return errors.New("-memory and -redis: history is either in this process's memory or in Redis; pass one")
	}
	if !cfg.memory && cfg.redis == "" && cfg.data == "" {
		return errors.New("-data is empty: name a folder for history, or pass -memory")
	}
	if cfg.publishPerMinute < 0 {
		return fmt.Errorf("-publish-per-minute %d: want 0 (no cap) or more", cfg.publishPerMinute)
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together: set both, or neither")
	}
	if cfg.shutdownTimeout <= 0 {
		return fmt.Errorf("-shutdown-timeout %v: want a positive duration", cfg.shutdownTimeout)
	}
	return nil
}

// run serves until ctx ends, then shuts down. It prints how to connect to
// out, logs to logs and, once listening, calls ready (if set) with the
// addresses.
func run(ctx context.Context, cfg config, out, logs io.Writer, ready func(listening)) error {
	if err := cfg.check(); err != nil {
		return err
	}
	logger, err := newLogger(cfg, logs)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert %s and -tls-key %s: %w", cfg.tlsCert, cfg.tlsKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	m := newServerMetrics()

	var store history.Store
	var secret []byte // nil with -memory: a new one each run
	var node *redisNode
	if cfg.redis != "" {
		if node, err = openRedis(ctx, cfg.redis); err != nil {
			return err
		}
		defer node.close() // last: after the hub
		secret = node.secret
		m.redis = node.client
	} else if !cfg.memory {
		if err := os.MkdirAll(cfg.data, 0o700); err != nil {
			return fmt.Errorf("-data %s: %w", cfg.data, err)
		}
		path := filepath.Join(cfg.data, "history.db")
		b, err := history.OpenBolt(path, history.BoltOptions{})
		if errors.Is(err, history.ErrInUse) {
			return fmt.Errorf("the data folder %s is in use by another Plaza server: stop that one, or pass another -data folder (%w)", cfg.data, err)
		}
		if err != nil {
			return err
		}
		defer b.Close() // last: after the hub
		store = timedStore{Bolt: b, m: m}
		m.storePath = path
		if secret, err = keySecret(filepath.Join(cfg.data, "key-secret")); err != nil {
			return err
		}
	}
	// Each connection may fall memory.DefaultQueueBytes (1 MiB) behind;
	// its queue grows only while it does.
	hopts := memory.Options{Store: store}
	if node != nil {
		hopts = memory.Options{Broker: node.broker}
	}
	hub, err := memory.New(hopts)
	if err != nil {
		return err
	}
	defer hub.Close() // after the server, before the store

	keys := network.RoomKeys{
		Publish:   []string{cfg.publishKey},
		Subscribe: []string{cfg.subscribeKey},
	}
	nopts := network.Options{
		Keys:             func(string) (network.RoomKeys, bool) { return keys, true },
		KeySecret:        secret,
		PublishPerMinute: cfg.publishPerMinute,
		OriginPatterns:   cfg.origins,
		Logger:           logger,
		OnConnEvent:      m.connEvent,
	}
	if node != nil { // client sockets and HTTP publish caps for every node together
		nopts.Sockets = node.client.Sockets().Server()
		nopts.PublishWindow = node.client.RateWindow()
	}
	srv := network.NewServer(observedTransport{Transport: hub, m: m}, nopts)
	m.hub, m.srv = hub, srv
	hp := &historyProbe{store: store, data: cfg.data, metrics: m}
	checks := []readyCheck{{name: "history", probe: hp.probe}}
	if node != nil { // history is in Redis
		checks = []readyCheck{{name: "redis", probe: func(ctx context.Context) string {
			if err := hub.Ready(ctx); err != nil {
				return err.Error()
			}
			return ""
		}}}
	}
	hl := &health{checks: checks}
	ops := http.NewServeMux()
	ops.Handle("GET /metrics", m)
	ops.HandleFunc("GET /healthz", hl.serveHealthz)
	ops.HandleFunc("GET /readyz", hl.serveReadyz)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	// The chat demo: plaza.js (served by srv at /plaza.js) in a page.
	mux.HandleFunc("GET /chat", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(chatPage)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Write(favicon)
	})
	mux.HandleFunc("GET /healthz", hl.serveHealthz)
	mux.HandleFunc("GET /readyz", hl.serveReadyz)
	if cfg.metricsAddr == "" {
		mux.Handle("GET /metrics", m)
	}
	mux.Handle("/", m.countPublishes(srv))

	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %w", cfg.addr, err)
	}
	var ml net.Listener
	if cfg.metricsAddr != "" {
		if ml, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			l.Close()
			return fmt.Errorf("-metrics-addr %s: %w", cfg.metricsAddr, err)
		}
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	// ReadTimeout bounds a slow request body; event streams lift it for
	// themselves, and WebSockets leave net/http's deadlines behind.
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		ErrorLog:          errorLog,
		TLSConfig:         tlsConfig,
	}
	served := make(chan error, 2)
	go func() {
		if tlsConfig != nil {
			served <- hs.ServeTLS(l, "", "")
		} else {
			served <- hs.Serve(l)
		}
	}()
	var ms *http.Server
	at := listening{addr: l.Addr().String()}
	if ml != nil {
		ms = &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: errorLog}
		go func() { served <- ms.Serve(ml) }()
		at.metrics = ml.Addr().String()
	}

	printHelp(out, at, cfg)
	logger.Info("plaza: serving", "addr", at.addr, "tls", tlsConfig != nil, "metrics_addr", at.metrics, "memory", cfg.memory, "data", dataFolder(cfg))
	if ready != nil {
		ready(at)
	}

	select {
	case err := <-served:
		hs.Close()
		if ms != nil {
			ms.Close()
		}
		return err
	case <-ctx.Done():
	}
	hl.stop() // before anything closes: /readyz turns 503 while the listeners still answer
	fmt.Fprintln(out, "shutting down")
	logger.Info("plaza: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(sctx), hs.Shutdown(sctx)}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	if ms != nil {
		errs = append(errs, ms.Shutdown(sctx))
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func printHelp(out io.Writer, at listening, cfg config) {
	where := "in memory only (-memory): it is lost when the server stops"
	switch {
	case cfg.redis != "":
		where = "in the Redis at " + redactURL(cfg.redis) + ", shared with every node started with the same -redis"
	case !cfg.memory:
		abs, err := filepath.Abs(filepath.Join(cfg.data, "history.db"))
		if err != nil {
			abs = filepath.Join(cfg.data, "history.db")
		}
		where = "in " + abs + " (stop the server and delete the folder to start afresh)"
	}
	base, wsBase := "http://"+at.addr, "ws://"+at.addr
	if cfg.tlsCert != "" {
		base, wsBase = "https://"+at.addr, "wss://"+at.addr
	}
	metricsAt := base + "/metrics"
	if at.metrics != "" {
		metricsAt = "http://" + at.metrics + "/metrics"
	}
	// The keys are printed only while they are the development ones: a
	// key of your own stays out of whatever collects this output.
	pk, sk := cfg.publishKey, cfg.subscribeKey
	if pk != defaultPublishKey {
		pk = "$PUBLISH_KEY"
	}
	if sk != defaultSubscribeKey {
		sk = "$SUBSCRIBE_KEY"
	}
	fmt.Fprintf(out, `Plaza hub listening on %[1]s
History is kept %[4]s.
Metrics at %[6]s; health at %[1]s/healthz and %[1]s/readyz.

  publish key:    %[2]s   (publish, subscribe, history, client sockets)
  subscribe key:  %[3]s   (subscribe, history, client sockets)

Open %[1]s/ in a browser, or the chat demo at %[1]s/chat
(plaza.js, the JavaScript client, is at %[1]s/plaza.js), or try it from a shell:

  # subscribe with Server-Sent Events (leave it running)
  curl -N "%[1]s/lobby/pubsub/alerts/subscribe?token=%[3]s"

  # publish, from another shell
  curl -X POST "%[1]s/lobby/pubsub/alerts/publish" \
       -H "Authorization: Bearer %[2]s" -H "Content-Type: application/json" \
       -d '{"message": "Server restarted"}'

  # the newest messages
  curl "%[1]s/lobby/pubsub/alerts/history?limit=10" -H "Authorization: Bearer %[3]s"

  # a temporary socket path for a browser that must not see a key
  curl "%[1]s/lobby/pubsub/alerts/client?max_uses=1&ttl=300000" -H "Authorization: Bearer %[3]s"

  # the terminal client (go install ./examples/plaza, or go run ./examples/plaza)
  plaza -url %[5]s -token %[3]s sub lobby alerts
  plaza -url %[5]s -token %[2]s pub lobby alerts '{"text": "hello"}'

From Go (a Room over WebSocket, %[5]s/{room}/ws; README.md's "A Go client" is the whole program):

	t, _ := network.NewClient("%[5]s", nil)
	room, _ := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: "%[2]s:alice", GapFill: true})
	room.Subscribe(ctx, "alerts", func(m pubsub.Message) { fmt.Printf("%%s: %%s\n", m.From, m.Payload) })
	room.Publish(ctx, "alerts", map[string]string{"text": "hello"})

Stop with Ctrl-C.
`, base, pk, sk, where, wsBase, metricsAt)
}

// dataFolder is the folder history is kept in, or "" with -memory.
func dataFolder(cfg config) string {
	if cfg.memory {
		return ""
	}
	return cfg.data
}

// keySecret reads the server's key secret from path, creating it with 32
// random bytes on the first run. It keeps the client ids of bare keys the
// same across restarts, so the hub still recognizes a retried publish.
func keySecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing the key secret: %w", err)
	}
	return b, nil
}
