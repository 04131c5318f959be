// Command collections is a small record store in the shape of a
// backend-as-a-service: REST CRUD on collections of JSON records, kept in
// bbolt, and the realtime WebSocket of package transport/collections, fed
// with one event per committed change through a Plaza hub.
//
//	go run . token -sub alice          # print a development token (HS256, 1 hour)
//	go run .                           # serve on 127.0.0.1:8000, data in ./collections-data
//
// Routes (every one needs a token: "Authorization: Bearer <token>" or ?token=):
//
//	POST   /api/v1/records/{collection}        create a record from a JSON object → 201 and the record
//	GET    /api/v1/records/{collection}        list records, oldest first (?limit=, default 100, at most 1000)
//	GET    /api/v1/records/{collection}/{id}   one record
//	PATCH  /api/v1/records/{collection}/{id}   merge a JSON object into the record (null removes a field)
//	DELETE /api/v1/records/{collection}/{id}   delete the record → 200 and its last state
//	GET    /api/v1/realtime/ws?token=…         the collection-events WebSocket
//	…      /plaza/…                            the native Plaza routes (network.Server) on the same hub:
//	                                           GET /plaza/collections/pubsub/posts/history catches up on posts
//
// The server assigns each record an id (a UUID version 7 from
// github.com/google/uuid: random, and ordered by creation time, so a
// bucket lists in creation order) and keeps created_at and updated_at (RFC
// 3339, milliseconds, UTC); clients cannot set them. Errors are
// {"error":{"code":"…","message":"…"}} with the status that fits.
//
// Records live in bbolt (records.db, one bucket per collection), the
// store Plaza's durable history already uses: one embedded file, ACID
// transactions, no cgo and no extra dependency. Events live in Plaza's
// durable history (history.db) in the room "collections", one topic per
// collection. A write publishes its event after its transaction commits,
// under the lock that orders writes, so events leave in commit order,
// exactly one per committed change and none for a failed write.
//
// Tokens are HS256 JWTs signed with -secret (or $PLAZA_JWT_SECRET), with
// aud "plaza-collections": sub is the user, exp the end of the connection,
// and an optional "topics" claim lists the collections the token may use
// (go run . token -collection posts): the WebSocket, the REST routes and
// the native routes refuse any other with PERMISSION_DENIED (403). The
// native routes (/plaza/) never publish: only a committed write makes an
// event. The default secret is for trying
// the store on this machine only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/network/jwtauth"
)

// audience is the aud claim the store's tokens carry and require.
const audience = "plaza-collections"

// devSecret is the secret when neither -secret nor $PLAZA_JWT_SECRET is set.
const devSecret = "plaza-dev-secret-change-me"

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 && os.Args[1] == "token" {
		if err := tokenCmd(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := serve(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func secretFrom(flagValue string) []byte {
	if flagValue != "" {
		return []byte(flagValue)
	}
	if s := os.Getenv("PLAZA_JWT_SECRET"); s != "" {
		return []byte(s)
	}
	return []byte(devSecret)
}

// tokenCmd prints a development token.
func tokenCmd(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	sub := fs.String("sub", "dev", "the user (sub claim)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid (exp claim)")
	secret := fs.String("secret", "", "HS256 secret (default $PLAZA_JWT_SECRET, or the development secret)")
	var topics stringList
	fs.Var(&topics, "collection", "a collection the token may use (repeat; default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := mintToken(secretFrom(*secret), *sub, *ttl, time.Now(), topics)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint([]string(*l)) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// mintToken signs a token for sub, valid from now for ttl. topics, when
// set, limits the collections it may read.
func mintToken(secret []byte, sub string, ttl time.Duration, now time.Time, topics []string) (string, error) {
	c := jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}, Topics: topics}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// config is what an app needs; tests fill it directly.
type config struct {
	dataDir   string
	secret    []byte
	heartbeat time.Duration // zero: 30 s
	// volatile keeps history in memory and does not fsync records.db:
	// tests that measure the event pipeline rather than the disk.
	volatile bool
	log      *slog.Logger
}

// app is the running store: hub, history, records, handlers.
type app struct {
	hub      *memory.Hub
	hist     *history.Bolt
	room     *pubsub.Room
	store    *Store
	realtime *collections.Server
	native   *network.Server
	handler  http.Handler
}

func newApp(ctx context.Context, cfg config) (*app, error) {
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, err
	}
	v, err := jwtauth.New(jwtauth.Options{Secret: cfg.secret, Audience: audience})
	if err != nil {
		return nil, err
	}
	a := &app{}
	ok := false
	defer func() {
		if !ok {
			a.close(context.Background())
		}
	}()
	hopts := memory.Options{} // each browser may fall 1 MiB of events behind
	if !cfg.volatile {
		if a.hist, err = history.OpenBolt(filepath.Join(cfg.dataDir, "history.db"), history.BoltOptions{}); err != nil {
			return nil, err
		}
		hopts.Store = a.hist
	}
	if a.hub, err = memory.New(hopts); err != nil {
		return nil, err
	}
	if a.room, err = pubsub.Join(ctx, a.hub, collections.DefaultRoom, &pubsub.JoinOptions{ClientID: "record-store"}); err != nil {
		return nil, err
	}
	if a.store, err = OpenStore(filepath.Join(cfg.dataDir, "records.db"), !cfg.volatile, a.room, cfg.log); err != nil {
		return nil, err
	}
	if a.realtime, err = collections.NewServer(a.hub, collections.Options{
		Authenticate: v.Authenticate, Authorize: v.Authorize, Heartbeat: cfg.heartbeat, Logger: cfg.log,
	}); err != nil {
		return nil, err
	}
	a.native = network.NewServer(a.hub, network.Options{Authenticate: v.Authenticate, Authorize: readOnly(v), Logger: cfg.log})
	mux := http.NewServeMux()
	mux.Handle("/api/v1/realtime/ws", a.realtime)
	mux.Handle("/plaza/", http.StripPrefix("/plaza", a.native))
	api := &api{store: a.store, v: v}
	mux.HandleFunc("POST /api/v1/records/{collection}", api.create)
	mux.HandleFunc("GET /api/v1/records/{collection}", api.list)
	mux.HandleFunc("GET /api/v1/records/{collection}/{id}", api.get)
	mux.HandleFunc("PATCH /api/v1/records/{collection}/{id}", api.update)
	mux.HandleFunc("DELETE /api/v1/records/{collection}/{id}", api.remove)
	a.handler = mux
	ok = true
	return a, nil
}

// readOnly is the native routes' Authorize: what v allows, except
// publishing. The events of the room "collections" come from committed
// writes only, which the store publishes in process; a token that could
// publish there could forge them.
func readOnly(v *jwtauth.Verifier) func(context.Context, network.Identity, pubsub.Access) error {
	return func(ctx context.Context, id network.Identity, a pubsub.Access) error {
		if a.Action == pubsub.ActionPublish {
			return pubsub.Errorf(pubsub.CodePermissionDenied, "events are published by record writes only: use the REST routes")
		}
		return v.Authorize(ctx, id, a)
	}
}

// close ends connections first, then the hub, the stores.
func (a *app) close(ctx context.Context) {
	if a.realtime != nil {
		a.realtime.Close()
	}
	if a.native != nil {
		_ = a.native.Shutdown(ctx)
	}
	if a.room != nil {
		_ = a.room.Leave(ctx)
	}
	if a.hub != nil {
		_ = a.hub.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.hist != nil {
		_ = a.hist.Close()
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("collections", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address")
	data := fs.String("data", "collections-data", "folder of records.db and history.db")
	secret := fs.String("secret", "", "HS256 secret of the tokens (default $PLAZA_JWT_SECRET, or the development secret)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, config{dataDir: *data, secret: secretFrom(*secret), log: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		a.close(context.Background())
		return err
	}
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Printf(`collections: serving on %s, data in %s
  TOKEN=$(go run . token -sub alice)
  curl -X POST %s/api/v1/records/posts -H "Authorization: Bearer $TOKEN" -d '{"title":"New Post"}'
  realtime: ws://%s/api/v1/realtime/ws?token=$TOKEN
`, base, *data, base, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		a.close(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.close(sctx) // WebSockets and streams first: Shutdown does not wait for hijacked connections
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
