// Command socketio runs the real-time service of Plaza's seed 001: backends
// publish with POST /publish, browsers and apps subscribe with the stock
// socket.io-client, and every app has an App ID, a publish key (pk_live_…)
// and a subscribe key (sub_live_…). Underneath is a Plaza hub with durable
// history, which Plaza's own clients reach too (SSE, WebSocket, Go).
//
//	go run ./examples/socketio                          # serve on 127.0.0.1:8080
//	go run ./examples/socketio -addr 127.0.0.1:9000 -data /var/lib/plaza -origins "localhost:*"
//
//	go run ./examples/socketio apps create -name "My shop"   # prints App ID, publish key, subscribe key
//	go run ./examples/socketio apps list
//	go run ./examples/socketio apps rotate -key subscribe app_…
//	go run ./examples/socketio apps delete app_…
//
// Apps live in apps.db and history in history.db, both in the folder of
// -data (./plaza-socketio by default). The apps commands change that file
// and so work while the server is stopped; while it runs, they say how to
// do the same through its admin API (/admin/…, see socketio.NewAdmin),
// whose key is -admin-key, or $PLAZA_ADMIN_KEY, or else one made up on the
// first start and kept in admin.key in the same folder.
//
// The server serves a page at / that subscribes with socket.io-client,
// Socket.IO under /socket.io/, POST /publish, the admin API under /admin/,
// and Plaza's own protocol for every other route (transport/network), where
// the room is the App ID, the topic the channel, and the credential one of
// the app's keys (the subscribe key cannot publish).
//
// SIGINT or SIGTERM shuts it down: Socket.IO clients, event streams and
// WebSockets are closed, then the hub, the history and the apps, in that
// order.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
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
	"github.com/plazahq/plaza/transport/socketio"
)

// page is the browser page served at /.
//
//go:embed page.html
var page []byte

// config is what the flags set.
type config struct {
	addr             string
	data             string // folder of apps.db, history.db and admin.key
	adminKey         string // empty: $PLAZA_ADMIN_KEY, or admin.key
	publishPerMinute int
	origins          []string
}

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 && os.Args[1] == "apps" {
		if err := apps(os.Args[2:], os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	var cfg config
	var origins string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&cfg.data, "data", defaultData, "folder for apps.db, history.db and admin.key")
	flag.StringVar(&cfg.adminKey, "admin-key", "", "key of the admin API (default $PLAZA_ADMIN_KEY, or one kept in admin.key)")
	flag.IntVar(&cfg.publishPerMinute, "publish-per-minute", socketio.DefaultPublishPerMinute, "cap on POST /publish per app over a rolling minute (negative: no cap)")
	flag.StringVar(&origins, "origins", "", `comma-separated browser origins allowed besides the server's own, as host patterns ("localhost:*")`)
	flag.Parse()
	if origins != "" {
		cfg.origins = strings.Split(origins, ",")
	}
	if cfg.adminKey == "" {
		cfg.adminKey = os.Getenv("PLAZA_ADMIN_KEY")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, nil); err != nil {
		log.Fatal(err)
	}
}

// defaultData is the default -data folder.
const defaultData = "plaza-socketio"

// run serves until ctx ends, then shuts down. It prints how to use the
// service to out and, once listening, calls ready (if set) with the address.
func run(ctx context.Context, cfg config, out io.Writer, ready func(addr string)) error {
	if cfg.data == "" {
		return errors.New("-data is empty: name a folder for the apps and the history")
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	adminKey, err := loadAdminKey(cfg)
	if err != nil {
		return err
	}

	reg, err := socketio.OpenRegistry(filepath.Join(cfg.data, "apps.db"), socketio.RegistryOptions{})
	if errors.Is(err, socketio.ErrInUse) {
		return fmt.Errorf("the data folder %s is in use by another server: stop that one, or pass another -data folder (%w)", cfg.data, err)
	}
	if err != nil {
		return err
	}
	defer reg.Close() // last
	store, err := history.OpenBolt(filepath.Join(cfg.data, "history.db"), history.BoltOptions{})
	if err != nil {
		return err
	}
	defer store.Close() // after the hub
	hub, err := memory.New(memory.Options{Store: store})
	if err != nil {
		return err
	}
	defer hub.Close() // after the servers

	sio, err := socketio.New(hub, reg, socketio.Options{
		PublishPerMinute: cfg.publishPerMinute,
		OriginPatterns:   cfg.origins,
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	admin, err := socketio.NewAdmin(reg, socketio.AdminOptions{Key: adminKey, Logger: logger})
	if err != nil {
		return err
	}
	native := network.NewServer(hub, network.Options{
		Authenticate:   appKeys(reg),
		Authorize:      subscribeKeysCannotPublish,
		OriginPatterns: cfg.origins,
		Logger:         logger,
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.Handle(socketio.Path, sio)
	mux.Handle(socketio.PublishPath, sio)
	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
	mux.Handle("/", native)

	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	addr := l.Addr().String()
	list, _ := reg.List(ctx)
	printHelp(out, addr, cfg, adminKey, list)
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
	errs := []error{sio.Close(), native.Shutdown(sctx), hs.Shutdown(sctx)}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadAdminKey returns the admin key of cfg, or the one kept in admin.key,
// making one up on first use.
func loadAdminKey(cfg config) (string, error) {
	if cfg.adminKey != "" {
		if len(cfg.adminKey) < socketio.MinAdminKeyLen {
			return "", fmt.Errorf("the admin key must be at least %d characters long", socketio.MinAdminKeyLen)
		}
		return cfg.adminKey, nil
	}
	path := filepath.Join(cfg.data, "admin.key")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [20]byte
	_, _ = rand.Read(r[:])
	key := "admin_" + hex.EncodeToString(r[:])
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// appKeys authenticates Plaza's own clients with the keys of the app whose
// App ID is the room: the credential is a key, or "<key>:<name>" to choose
// the client id. A bare key gets "key-" and 12 hex digits of its hash.
func appKeys(reg *socketio.Registry) func(context.Context, *http.Request, string) (network.Identity, error) {
	return func(_ context.Context, r *http.Request, cred string) (network.Identity, error) {
		key, name, named := strings.Cut(cred, ":")
		_, kind, err := reg.Authenticate(r.PathValue("room"), key)
		if err != nil {
			return network.Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown app or key")
		}
		if !named {
			h := sha256.Sum256([]byte(key))
			name = "key-" + hex.EncodeToString(h[:6])
		} else if strings.HasPrefix(name, "key-") {
			return network.Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, `names starting with "key-" are reserved`)
		}
		return network.Identity{ClientID: name, Info: kind}, nil
	}
}

// subscribeKeysCannotPublish is the native protocol's Authorize.
func subscribeKeysCannotPublish(_ context.Context, id network.Identity, a pubsub.Access) error {
	if a.Action == pubsub.ActionPublish && id.Info != socketio.KeyPublish {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "a subscribe key cannot publish")
	}
	return nil
}

func printHelp(out io.Writer, addr string, cfg config, adminKey string, list []socketio.App) {
	abs, err := filepath.Abs(cfg.data)
	if err != nil {
		abs = cfg.data
	}
	fmt.Fprintf(out, `Plaza Socket.IO service listening on http://%[1]s
Apps are kept in %[2]s, history in %[3]s.
Admin key: %[4]s

Create an app (prints its App ID, publish key and subscribe key):

  curl -X POST "http://%[1]s/admin/apps" -H "Authorization: Bearer %[4]s" -d '{"name": "My shop"}'
  # or, with the server stopped: go run ./examples/socketio apps create -name "My shop"

Publish from your backend (the publish key never leaves servers):

  curl -X POST "http://%[1]s/publish" \
    -H "Content-Type: application/json" \
    -H "X-App-Id: YOUR_APP_ID" \
    -H "Authorization: Bearer YOUR_PUBLISH_KEY" \
    -d '{"channel":"orders.42","event":"order.updated","data":{"id":42}}'

Subscribe from a page: open http://%[1]s/ and enter the App ID and the subscribe key,
or, with socket.io-client (served at /socket.io/socket.io.js):

  const socket = io("http://%[1]s", {
    transports: ["websocket", "polling"],
    auth: { appId: "YOUR_APP_ID", subscribeKey: "YOUR_SUBSCRIBE_KEY" },
  });
  socket.emit("subscribe", "orders.42");
  socket.on("subscribed", (p) => console.log("Joined", p.channel));
  socket.on("order.updated", (data) => console.log(data));

Plaza clients see the same messages (room = App ID, topic = channel):

  curl -N "http://%[1]s/YOUR_APP_ID/pubsub/orders.42/subscribe?token=YOUR_SUBSCRIBE_KEY"
`, addr, filepath.Join(abs, "apps.db"), filepath.Join(abs, "history.db"), adminKey)
	if len(list) > 0 {
		fmt.Fprintf(out, "\nApps:\n")
		for _, a := range list {
			fmt.Fprintf(out, "  %s  %s\n", a.ID, a.Name)
		}
	}
	fmt.Fprintln(out, "\nStop with Ctrl-C.")
}
