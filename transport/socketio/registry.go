package socketio

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/plazahq/plaza/pubsub"
)

// The prefixes of the three values of an app. A key's prefix says what it
// is, so that a key pasted in the wrong place gets an error that says so.
const (
	AppIDPrefix        = "app_"
	PublishKeyPrefix   = "pk_live_"
	SubscribeKeyPrefix = "sub_live_"
)

// Random bytes in each value: keys carry 160 bits, App IDs 80 (they are
// identifiers, not secrets).
const (
	keyBytes   = 20
	appIDBytes = 10
)

// MaxAppNameLen is the longest app name, in bytes.
const MaxAppNameLen = 100

// KeyKind names one of an app's two keys.
type KeyKind string

// The two keys of an app.
const (
	// KeyPublish authorizes POST /publish. It belongs on servers only.
	KeyPublish KeyKind = "publish"
	// KeySubscribe authorizes Socket.IO connections, and never publishes.
	// It is meant for clients.
	KeySubscribe KeyKind = "subscribe"
)

// App is one application of a [Registry]: a Plaza room, named by the App
// ID, with a publish key and a subscribe key. It never holds the keys
// themselves, which the registry stores only hashed; the hints tell keys
// apart.
type App struct {
	ID        string    `json:"appId"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// PublishPerMinute caps the app's POST /publish requests over a
	// rolling minute. Zero means the Server's Options.PublishPerMinute;
	// negative means no cap.
	PublishPerMinute int `json:"publishPerMinute,omitempty"`

	// The key prefix and the last four characters of each key, such as
	// "pk_live_…q3zt", and when each was created or last rotated.
	PublishKeyHint        string    `json:"publishKeyHint"`
	SubscribeKeyHint      string    `json:"subscribeKeyHint"`
	PublishKeyCreatedAt   time.Time `json:"publishKeyCreatedAt"`
	SubscribeKeyCreatedAt time.Time `json:"subscribeKeyCreatedAt"`
}

// Credentials are the values a client of an app needs, as [Registry.Create]
// and [Registry.Rotate] hand them out: the only time a key is seen in full.
// Rotate sets only the key it replaced.
type Credentials struct {
	AppID        string `json:"appId"`
	PublishKey   string `json:"publishKey,omitempty"`
	SubscribeKey string `json:"subscribeKey,omitempty"`
}

// AppOptions are the settings of a new app. The zero value is an app
// without a name under the Server's publish cap.
type AppOptions struct {
	Name             string // at most MaxAppNameLen bytes of printable UTF-8
	PublishPerMinute int    // see App.PublishPerMinute
}

// Errors in the chain of what the registry returns, for errors.Is. The
// errors themselves are *pubsub.Error values: UNAUTHENTICATED for
// ErrUnknownApp and ErrWrongKey, INVALID_REQUEST for bad options.
var (
	ErrUnknownApp = errors.New("socketio: unknown app")
	ErrWrongKey   = errors.New("socketio: wrong key")
	// ErrInUse is in the chain of the error OpenRegistry returns when another
	// process (or another Registry in this one) has the file open.
	ErrInUse = errors.New("socketio: the registry file is in use by another process")
)

// RegistryOptions configure [OpenRegistry]. The zero value waits one second
// for the file and uses the system clock.
type RegistryOptions struct {
	// OpenTimeout is how long OpenRegistry waits for another process that
	// has the file open to let go of it. Zero means one second.
	OpenTimeout time.Duration
	// Clock stamps creation and rotation times. Nil means the system clock.
	Clock pubsub.Clock
}

// Registry is the set of apps a [Server] serves, kept in a bbolt file so
// that apps and keys survive restarts. Keys are random (160 bits), stored as
// SHA-256 hashes (a fast hash suffices for random keys of that length), and
// compared in constant time.
//
// Create one with [OpenRegistry]; the zero value is not usable. Close it
// after the Servers that use it.
// A Registry is safe for concurrent use; one file can be open in only one
// Registry at a time, so a command line tool cannot change the apps of a
// running server's file: it goes through the admin API ([NewAdmin]) instead.
type Registry struct {
	db    *bolt.DB
	clock pubsub.Clock

	mu       sync.Mutex
	watchers map[int]func(appID string, gone KeyKind)
	nextW    int
}

var (
	bucketApps = []byte("apps")
	bucketMeta = []byte("meta")
	keyVersion = []byte("version")
)

const registryVersion = "1"

// appRecord is an app as stored: JSON, under its App ID.
type appRecord struct {
	App
	PublishHash   []byte `json:"publishHash"`   // SHA-256 of the publish key
	SubscribeHash []byte `json:"subscribeHash"` // SHA-256 of the subscribe key
}

// OpenRegistry opens the registry in the bbolt file at path, creating it if
// needed. Plaza's example server keeps it as apps.db beside history.db.
func OpenRegistry(path string, opts RegistryOptions) (*Registry, error) {
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &pubsub.Error{
			Code:    pubsub.CodeInternal,
			Message: fmt.Sprintf("socketio: %s is in use by another process (still locked after %v)", path, timeout),
			Err:     ErrInUse,
		}
	}
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInternal, "socketio: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			if err := meta.Put(keyVersion, []byte(registryVersion)); err != nil {
				return err
			}
		case string(v) != registryVersion:
			return fmt.Errorf("layout version %q, want %q", v, registryVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bucketApps)
		return err
	})
	if err != nil {
		db.Close()
		return nil, pubsub.Errorf(pubsub.CodeInternal, "socketio: %s: %w", path, err)
	}
	r := &Registry{db: db, clock: opts.Clock, watchers: make(map[int]func(string, KeyKind))}
	if r.clock == nil {
		r.clock = pubsub.SystemClock{}
	}
	return r, nil
}

// Close closes the file. It is idempotent.
func (r *Registry) Close() error {
	return r.db.Close()
}

// Create adds an app and returns it with its credentials, the only time its
// keys are seen in full.
func (r *Registry) Create(ctx context.Context, opts AppOptions) (App, Credentials, error) {
	if err := ctx.Err(); err != nil {
		return App{}, Credentials{}, pubsub.Errorf(pubsub.CodeNetworkError, "socketio: %w", err)
	}
	if err := checkAppName(opts.Name); err != nil {
		return App{}, Credentials{}, err
	}
	now := r.clock.Now().UTC()
	creds := Credentials{PublishKey: newKey(PublishKeyPrefix), SubscribeKey: newKey(SubscribeKeyPrefix)}
	rec := appRecord{
		App: App{
			Name:                  opts.Name,
			CreatedAt:             now,
			PublishPerMinute:      opts.PublishPerMinute,
			PublishKeyHint:        keyHint(creds.PublishKey),
			SubscribeKeyHint:      keyHint(creds.SubscribeKey),
			PublishKeyCreatedAt:   now,
			SubscribeKeyCreatedAt: now,
		},
		PublishHash:   hashKey(creds.PublishKey),
		SubscribeHash: hashKey(creds.SubscribeKey),
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApps)
		for {
			rec.ID = AppIDPrefix + randomText(appIDBytes)
			if b.Get([]byte(rec.ID)) == nil {
				break
			}
		}
		return putRecord(b, &rec)
	})
	if err != nil {
		return App{}, Credentials{}, pubsub.Errorf(pubsub.CodeInternal, "socketio: create app: %w", err)
	}
	creds.AppID = rec.ID
	return rec.App, creds, nil
}

// List returns every app, in App ID order.
func (r *Registry) List(ctx context.Context) ([]App, error) {
	if err := ctx.Err(); err != nil {
		return nil, pubsub.Errorf(pubsub.CodeNetworkError, "socketio: %w", err)
	}
	apps := []App{}
	err := r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(_, v []byte) error {
			var rec appRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			apps = append(apps, rec.App)
			return nil
		})
	})
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInternal, "socketio: list apps: %w", err)
	}
	return apps, nil
}

// Get returns the app with App ID id, or an error with ErrUnknownApp in its
// chain.
func (r *Registry) Get(ctx context.Context, id string) (App, error) {
	if err := ctx.Err(); err != nil {
		return App{}, pubsub.Errorf(pubsub.CodeNetworkError, "socketio: %w", err)
	}
	rec, err := r.load(id)
	return rec.App, err
}

// Rotate replaces one key of app id with a new one and returns it; from
// then on the old key is refused. Rotating the subscribe key also
// disconnects the app's Socket.IO clients, which must connect again with
// the new key.
func (r *Registry) Rotate(ctx context.Context, id string, kind KeyKind) (Credentials, error) {
	if err := ctx.Err(); err != nil {
		return Credentials{}, pubsub.Errorf(pubsub.CodeNetworkError, "socketio: %w", err)
	}
	if kind != KeyPublish && kind != KeySubscribe {
		return Credentials{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "socketio: unknown key %q: rotate %q or %q", clip(string(kind), 32), KeyPublish, KeySubscribe)
	}
	creds := Credentials{AppID: id}
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApps)
		rec, err := getRecord(b, id)
		if err != nil {
			return err
		}
		now := r.clock.Now().UTC()
		if kind == KeyPublish {
			creds.PublishKey = newKey(PublishKeyPrefix)
			rec.PublishHash, rec.PublishKeyHint, rec.PublishKeyCreatedAt = hashKey(creds.PublishKey), keyHint(creds.PublishKey), now
		} else {
			creds.SubscribeKey = newKey(SubscribeKeyPrefix)
			rec.SubscribeHash, rec.SubscribeKeyHint, rec.SubscribeKeyCreatedAt = hashKey(creds.SubscribeKey), keyHint(creds.SubscribeKey), now
		}
		return putRecord(b, &rec)
	})
	if err != nil {
		return Credentials{}, registryError("rotate a key", err)
	}
	r.notify(id, kind)
	return creds, nil
}

// Delete removes app id. Its Socket.IO clients are disconnected and its
// keys refused from then on; its history stays in the hub's store.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return pubsub.Errorf(pubsub.CodeNetworkError, "socketio: %w", err)
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApps)
		if _, err := getRecord(b, id); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return registryError("delete the app", err)
	}
	r.notify(id, "")
	return nil
}

// Authenticate checks key against the keys of app id and reports which of
// them it is. An unknown app fails with ErrUnknownApp, a key that is
// neither with ErrWrongKey, both in an UNAUTHENTICATED *pubsub.Error.
// Both keys are compared, in constant time, whatever key is presented.
func (r *Registry) Authenticate(id, key string) (App, KeyKind, error) {
	rec, err := r.load(id)
	if err != nil {
		return App{}, "", err
	}
	h := hashKey(key)
	pub := subtle.ConstantTimeCompare(h, rec.PublishHash)
	sub := subtle.ConstantTimeCompare(h, rec.SubscribeHash)
	switch {
	case pub == 1:
		return rec.App, KeyPublish, nil
	case sub == 1:
		return rec.App, KeySubscribe, nil
	}
	return rec.App, "", &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: fmt.Sprintf("wrong key for app %q", id), Err: ErrWrongKey}
}

// load reads the record of app id.
func (r *Registry) load(id string) (appRecord, error) {
	var rec appRecord
	err := r.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getRecord(tx.Bucket(bucketApps), id)
		return err
	})
	if err != nil {
		return appRecord{}, registryError("read the app", err)
	}
	return rec, nil
}

// watch calls f after every rotation (with the kind of key rotated) and
// deletion (with "") of an app, until the returned function is called.
func (r *Registry) watch(f func(appID string, gone KeyKind)) (stop func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nextW
	r.nextW++
	r.watchers[n] = f
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.watchers, n)
	}
}

func (r *Registry) notify(id string, kind KeyKind) {
	r.mu.Lock()
	fs := make([]func(string, KeyKind), 0, len(r.watchers))
	for _, f := range r.watchers {
		fs = append(fs, f)
	}
	r.mu.Unlock()
	for _, f := range fs {
		f(id, kind)
	}
}

func getRecord(b *bolt.Bucket, id string) (appRecord, error) {
	var rec appRecord
	if id == "" {
		return rec, &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: "no app id", Err: ErrUnknownApp}
	}
	v := b.Get([]byte(id))
	if v == nil {
		return rec, &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: fmt.Sprintf("unknown app %q", clip(id, 64)), Err: ErrUnknownApp}
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("app %q: %w", id, err)
	}
	return rec, nil
}

func putRecord(b *bolt.Bucket, rec *appRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put([]byte(rec.ID), v)
}

// registryError keeps a *pubsub.Error returned from inside a transaction and
// wraps anything else as INTERNAL_ERROR.
func registryError(doing string, err error) error {
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return perr
	}
	return pubsub.Errorf(pubsub.CodeInternal, "socketio: %s: %w", doing, err)
}

func checkAppName(name string) error {
	if len(name) > MaxAppNameLen || !utf8.ValidString(name) {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, "socketio: an app name is at most %d bytes of UTF-8", MaxAppNameLen)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, "socketio: the app name %q has a control character", name)
	}
	return nil
}

// text is the alphabet of App IDs and keys: lowercase base32, no padding.
var text = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return text.EncodeToString(b)
}

func newKey(prefix string) string { return prefix + randomText(keyBytes) }

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// keyHint is a key's prefix and last four characters.
func keyHint(key string) string {
	for _, p := range []string{PublishKeyPrefix, SubscribeKeyPrefix} {
		if strings.HasPrefix(key, p) {
			return p + "…" + key[len(key)-4:]
		}
	}
	return "…" + key[len(key)-4:]
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
