// Command server runs a Plaza hub that other processes reach over WebSocket:
// a memory hub, with durable history in a local folder, behind a
// network.Server.
//
//	go run ./examples/server
//	go run ./examples/server -addr 127.0.0.1:9000 -publish-key pk-dev -subscribe-key sk-dev -data ""
//
// It prints the keys and how to connect. A client's credential is a key and
// a name, "<key>:<name>"; it travels as "Authorization: Bearer <key>:<name>",
// as ?token=<key>:<name>, or as the first frame {"auth": "<key>:<name>"}. The
// publish key may publish, subscribe and read history; the subscribe key may
// only subscribe and read history. The name becomes the client id, the From of
// what the client publishes: keys are shared secrets, and whoever holds one is
// trusted to name itself. A real deployment would issue a token per user
// instead (see network.Options.Authenticate).
//
// SIGINT or SIGTERM shuts the server down cleanly: connections are closed
// with the going-away code once their current request is answered, then the
// history is closed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

// config is what the flags set.
type config struct {
	addr         string
	publishKey   string
	subscribeKey string
	data         string   // folder for durable history; "" keeps it in memory
	origins      []string // browser origins allowed besides the server's own
}

func main() {
	var cfg config
	var origins string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&cfg.publishKey, "publish-key", "", "key that may publish, subscribe and read history (default: random, printed)")
	flag.StringVar(&cfg.subscribeKey, "subscribe-key", "", "key that may subscribe and read history (default: random, printed)")
	flag.StringVar(&cfg.data, "data", "plaza-data", `folder for durable history; "" keeps history in memory`)
	flag.StringVar(&origins, "origins", "", `comma-separated browser origins allowed besides the server's own, as host patterns ("localhost:*")`)
	flag.Parse()
	if origins != "" {
		cfg.origins = strings.Split(origins, ",")
	}
	if cfg.publishKey == "" {
		cfg.publishKey = "pk-" + randomHex()
	}
	if cfg.subscribeKey == "" {
		cfg.subscribeKey = "sk-" + randomHex()
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
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var store history.Store
	if cfg.data != "" {
		if err := os.MkdirAll(cfg.data, 0o700); err != nil {
			return err
		}
		bolt, err := history.OpenBolt(filepath.Join(cfg.data, "history.db"), history.BoltOptions{})
		if err != nil {
			return err
		}
		defer bolt.Close()
		store = bolt
	}
	hub, err := memory.New(memory.Options{
		Store: store,
		// A queue of 256 messages per connection, the server's SendQueue:
		// a deeper one would only cost memory, 8 bytes a slot.
		QueueSize: network.DefaultSendQueue,
	})
	if err != nil {
		return err
	}
	defer hub.Close()

	keys := keyring{publish: cfg.publishKey, subscribe: cfg.subscribeKey}
	srv := network.NewServer(hub, network.Options{
		Authenticate:   keys.authenticate,
		Authorize:      keys.authorize,
		OriginPatterns: cfg.origins,
		Logger:         logger,
	})
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
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
	where := "in memory"
	if cfg.data != "" {
		where = "in " + filepath.Join(cfg.data, "history.db")
	}
	fmt.Fprintf(out, `Plaza hub listening on ws://%[1]s (history %[4]s)

  publish key:    %[2]s   (publish, subscribe, history)
  subscribe key:  %[3]s   (subscribe, history)

A room's WebSocket is ws://%[1]s/{room}/ws. Send the credential "<key>:<your name>"
as "Authorization: Bearer ...", as ?token=..., or as the first frame {"auth": "..."}.

From Go:

	t, _ := network.NewClient("ws://%[1]s", nil)
	room, _ := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: "%[2]s:alice", GapFill: true})
	room.Subscribe(ctx, "chat", func(m pubsub.Message) { fmt.Printf("%%s: %%s\n", m.From, m.Payload) })
	room.Publish(ctx, "chat", map[string]string{"text": "hello"})

From a browser page on this host (other origins need -origins):

	ws = new WebSocket("ws://%[1]s/lobby/ws?token=%[3]s:bob")
	ws.onmessage = e => console.log(JSON.parse(e.data))
	ws.onopen = () => ws.send(JSON.stringify({type: "subscribe", id: "1", topic: "chat"}))

Stop with Ctrl-C.
`, addr, cfg.publishKey, cfg.subscribeKey, where)
}

// keyring checks credentials against the two keys.
type keyring struct {
	publish, subscribe string
}

// role is what a key allows; it is the Identity's Info.
type role string

const (
	rolePublisher  role = "publisher"
	roleSubscriber role = "subscriber"
)

// authenticate accepts "<key>:<name>", or a bare key for an anonymous name.
func (k keyring) authenticate(_ context.Context, _ *http.Request, cred string) (network.Identity, error) {
	key, name, _ := strings.Cut(cred, ":")
	var r role
	switch key {
	case k.publish:
		r = rolePublisher
	case k.subscribe:
		r = roleSubscriber
	default:
		return network.Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown key")
	}
	if name == "" {
		name = "anon-" + randomHex()[:8]
	}
	if err := pubsub.CheckClientID(name); err != nil {
		return network.Identity{}, err
	}
	return network.Identity{ClientID: name, Info: r}, nil
}

// authorize lets only the publish key publish.
func (k keyring) authorize(_ context.Context, id network.Identity, a pubsub.Access) error {
	if a.Action == pubsub.ActionPublish && id.Info != rolePublisher {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "the subscribe key cannot publish")
	}
	return nil
}

func randomHex() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
