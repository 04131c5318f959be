package socketio

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/plazahq/plaza/pubsub"
)

// MinAdminKeyLen is the shortest admin key NewAdmin accepts, in bytes.
const MinAdminKeyLen = 16

// AdminOptions configure [NewAdmin].
type AdminOptions struct {
	// Key is the admin key, which every request presents as
	// "Authorization: Bearer <key>"; it is compared in constant time. It
	// must be at least MinAdminKeyLen bytes: a long random string.
	Key string
	// Logger receives refused requests at Info. Nil means nothing is
	// logged.
	Logger *slog.Logger
}

// NewAdmin returns the admin API of reg, an http.Handler whose routes are
// relative to where it is mounted:
//
//	GET    /apps              list the apps (without keys)
//	POST   /apps              create an app: {"name": "…", "publishPerMinute": n}, both optional;
//	                          201 with the app and its publishKey and subscribeKey
//	GET    /apps/{id}         one app
//	POST   /apps/{id}/rotate  {"key": "publish" | "subscribe"}: a new key, the old one refused from then on
//	DELETE /apps/{id}         delete the app
//
// Mount it under a prefix with http.StripPrefix:
//
//	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
//
// Answers are JSON, {"data": …} or {"error": {"code", "message"}}: 401
// without the admin key, 404 NOT_FOUND for an unknown app, 400 for a bad
// body. Keys are seen in full only in the answers of create and rotate.
func NewAdmin(reg *Registry, opts AdminOptions) (http.Handler, error) {
	if reg == nil {
		return nil, errors.New("socketio: NewAdmin needs a Registry")
	}
	if len(opts.Key) < MinAdminKeyLen {
		return nil, errors.New("socketio: the admin key must be at least 16 bytes long")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &admin{reg: reg, key: sha256.Sum256([]byte(opts.Key)), log: opts.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apps", a.list)
	mux.HandleFunc("POST /apps", a.create)
	mux.HandleFunc("GET /apps/{id}", a.get)
	mux.HandleFunc("POST /apps/{id}/rotate", a.rotate)
	mux.HandleFunc("DELETE /apps/{id}", a.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		failStatus(w, http.StatusNotFound, pubsub.Errorf(codeNotFound, "no such admin route: %s %s", r.Method, clip(r.URL.Path, 64)))
	})
	return a.authorized(mux), nil
}

type admin struct {
	reg *Registry
	key [sha256.Size]byte
	log *slog.Logger
}

// authorized lets through requests that present the admin key.
func (a *admin) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, _ := bearer(r)
		got := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(got[:], a.key[:]) != 1 {
			a.log.Info("socketio: admin request refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			fail(w, pubsub.Errorf(pubsub.CodeUnauthenticated, `the admin API needs "Authorization: Bearer <admin key>"`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// createdApp is the answer of POST /apps: the app and its two keys.
type createdApp struct {
	App
	PublishKey   string `json:"publishKey"`
	SubscribeKey string `json:"subscribeKey"`
}

func (a *admin) list(w http.ResponseWriter, r *http.Request) {
	apps, err := a.reg.List(r.Context())
	if err != nil {
		adminFail(w, err)
		return
	}
	writeData(w, http.StatusOK, apps)
}

func (a *admin) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name             string `json:"name"`
		PublishPerMinute int    `json:"publishPerMinute"`
	}
	if !decodeAdminBody(w, r, &body) {
		return
	}
	app, creds, err := a.reg.Create(r.Context(), AppOptions{Name: body.Name, PublishPerMinute: body.PublishPerMinute})
	if err != nil {
		adminFail(w, err)
		return
	}
	writeData(w, http.StatusCreated, createdApp{App: app, PublishKey: creds.PublishKey, SubscribeKey: creds.SubscribeKey})
}

func (a *admin) get(w http.ResponseWriter, r *http.Request) {
	app, err := a.reg.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		adminFail(w, err)
		return
	}
	writeData(w, http.StatusOK, app)
}

func (a *admin) rotate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Key KeyKind `json:"key"`
	}
	if !decodeAdminBody(w, r, &body) {
		return
	}
	creds, err := a.reg.Rotate(r.Context(), r.PathValue("id"), body.Key)
	if err != nil {
		adminFail(w, err)
		return
	}
	writeData(w, http.StatusOK, creds)
}

func (a *admin) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.reg.Delete(r.Context(), id); err != nil {
		adminFail(w, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{"appId": id, "deleted": true})
}

// decodeAdminBody decodes a JSON object body into v, refusing unknown
// members; an empty body is an empty object. It answers the request itself
// and returns false when the body is bad.
func decodeAdminBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		fail(w, pubsub.Errorf(pubsub.CodePayloadTooLarge, "the body is larger than 4 KiB"))
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, pubsub.Errorf(pubsub.CodeInvalidRequest, "bad JSON body: %v", err))
		return false
	}
	if dec.More() {
		fail(w, pubsub.Errorf(pubsub.CodeInvalidRequest, "bad JSON body: more than one value"))
		return false
	}
	return true
}

// adminFail answers with a registry error: 404 for an unknown app.
func adminFail(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrUnknownApp) {
		fail(w, &pubsub.Error{Code: codeNotFound, Message: asError(err).Message, Err: err})
		return
	}
	fail(w, err)
}
