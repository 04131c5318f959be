// Command server runs a Plaza hub that other processes and browsers reach
// over HTTP, Server-Sent Events and WebSocket: a memory hub with durable
// history in a local folder, behind a network.Server, and a small browser
// page at / (with its icon at /favicon.ico).
//
//	go run ./examples/server
//	go run ./examples/server -addr 127.0.0.1:9000 -publish-key pk-prod -subscribe-key sk-prod -data /var/lib/plaza
//	go run ./examples/server -memory      # history in memory only, gone when the server stops
//
// It prints how to publish with curl, subscribe with SSE and connect from Go.
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
// SIGINT or SIGTERM shuts the server down cleanly: event streams end and
// WebSockets close with the going-away code once their current request is
// answered; then the hub and the history close, in that order.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
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

// Default keys, for trying the server on this machine.
const (
	defaultPublishKey   = "pk-dev"
	defaultSubscribeKey = "sk-dev"
)

// config is what the flags set.
type config struct {
	addr             string
	publishKey       string
	subscribeKey     string
	data             string   // folder for durable history
	memory           bool     // keep history in memory instead
	publishPerMinute int      // HTTP publishes per room per rolling minute; 0: no cap
	origins          []string // browser origins allowed besides the server's own
}

func main() {
	var cfg config
	var origins string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&cfg.publishKey, "publish-key", defaultPublishKey, "key that may publish, subscribe, read history and create client sockets")
	flag.StringVar(&cfg.subscribeKey, "subscribe-key", defaultSubscribeKey, "key that may subscribe, read history and create client sockets, but not publish")
	flag.StringVar(&cfg.data, "data", "plaza-data", "folder for durable history (history.db inside it)")
	flag.BoolVar(&cfg.memory, "memory", false, "keep history in memory only: it is lost when the server stops")
	flag.IntVar(&cfg.publishPerMinute, "publish-per-minute", 0, "cap on HTTP publishes per room over a rolling minute (0: no cap)")
	flag.StringVar(&origins, "origins", "", `comma-separated browser origins allowed besides the server's own, as host patterns ("localhost:*")`)
	flag.Parse()
	if origins != "" {
		cfg.origins = strings.Split(origins, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, nil); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends, then shuts down. It prints how to connect to out
// and, once listening, calls ready (if set) with the address.
func run(ctx context.Context, cfg config, out io.Writer, ready func(addr string)) error {
	if cfg.publishKey == "" || cfg.subscribeKey == "" || cfg.publishKey == cfg.subscribeKey {
		return errors.New("the publish and subscribe keys must be set and differ")
	}
	if strings.Contains(cfg.publishKey, ":") || strings.Contains(cfg.subscribeKey, ":") {
		return errors.New(`keys cannot contain ":", which separates a key from a client name`)
	}
	if !cfg.memory && cfg.data == "" {
		return errors.New("-data is empty: name a folder for history, or pass -memory")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var store history.Store
	var secret []byte // nil with -memory: a new one each run
	if !cfg.memory {
		if err := os.MkdirAll(cfg.data, 0o700); err != nil {
			return err
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
		store = b
		if secret, err = keySecret(filepath.Join(cfg.data, "key-secret")); err != nil {
			return err
		}
	}
	// Each connection may fall memory.DefaultQueueBytes (1 MiB) behind;
	// its queue grows only while it does.
	hub, err := memory.New(memory.Options{Store: store})
	if err != nil {
		return err
	}
	defer hub.Close() // after the server, before the store

	keys := network.RoomKeys{
		Publish:   []string{cfg.publishKey},
		Subscribe: []string{cfg.subscribeKey},
	}
	srv := network.NewServer(hub, network.Options{
		Keys:             func(string) (network.RoomKeys, bool) { return keys, true },
		KeySecret:        secret,
		PublishPerMinute: cfg.publishPerMinute,
		OriginPatterns:   cfg.origins,
		Logger:           logger,
	})
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
	mux.Handle("/", srv)

	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	// ReadTimeout bounds a slow request body; event streams lift it for
	// themselves, and WebSockets leave net/http's deadlines behind.
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	addr := l.Addr().String()
	printHelp(out, addr, cfg)
	if ready != nil {
		ready(addr)
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(out, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := []error{srv.Shutdown(sctx), hs.Shutdown(sctx)}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func printHelp(out io.Writer, addr string, cfg config) {
	where := "in memory only (-memory): it is lost when the server stops"
	if !cfg.memory {
		abs, err := filepath.Abs(filepath.Join(cfg.data, "history.db"))
		if err != nil {
			abs = filepath.Join(cfg.data, "history.db")
		}
		where = "in " + abs + " (stop the server and delete the folder to start afresh)"
	}
	fmt.Fprintf(out, `Plaza hub listening on http://%[1]s
History is kept %[4]s.

  publish key:    %[2]s   (publish, subscribe, history, client sockets)
  subscribe key:  %[3]s   (subscribe, history, client sockets)

Open http://%[1]s/ in a browser, or the chat demo at http://%[1]s/chat
(plaza.js, the JavaScript client, is at http://%[1]s/plaza.js), or try it from a shell:

  # subscribe with Server-Sent Events (leave it running)
  curl -N "http://%[1]s/lobby/pubsub/alerts/subscribe?token=%[3]s"

  # publish, from another shell
  curl -X POST "http://%[1]s/lobby/pubsub/alerts/publish" \
       -H "Authorization: Bearer %[2]s" -H "Content-Type: application/json" \
       -d '{"message": "Server restarted"}'

  # the newest messages
  curl "http://%[1]s/lobby/pubsub/alerts/history?limit=10" -H "Authorization: Bearer %[3]s"

  # a temporary socket path for a browser that must not see a key
  curl "http://%[1]s/lobby/pubsub/alerts/client?max_uses=1&ttl=300000" -H "Authorization: Bearer %[3]s"

From Go (a Room over WebSocket, ws://%[1]s/{room}/ws; README.md's "A Go client" is the whole program):

	t, _ := network.NewClient("ws://%[1]s", nil)
	room, _ := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: "%[2]s:alice", GapFill: true})
	room.Subscribe(ctx, "alerts", func(m pubsub.Message) { fmt.Printf("%%s: %%s\n", m.From, m.Payload) })
	room.Publish(ctx, "alerts", map[string]string{"text": "hello"})

Stop with Ctrl-C.
`, addr, cfg.publishKey, cfg.subscribeKey, where)
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
