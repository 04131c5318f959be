package network

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestCredentialSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	tests := []struct {
		name  string
		query string
		hdr   http.Header
		first string // the first frame, if the credential travels in one
		id    string // the id of the welcome
	}{
		{name: "bearer header", hdr: http.Header{"Authorization": {"Bearer test-token:alice"}}},
		{name: "bare header", hdr: http.Header{"Authorization": {"test-token:alice"}}},
		{name: "lower-case bearer", hdr: http.Header{"Authorization": {"bearer test-token:alice"}}},
		{name: "query parameter", query: "?token=" + url.QueryEscape("test-token:alice")},
		{name: "first frame", first: `{"auth":"test-token:alice"}`},
		{name: "first frame with type and id", first: `{"v":1,"type":"auth","id":"7","auth":"test-token:alice"}`, id: "7"},
		{name: "header wins over query", query: "?token=bogus", hdr: http.Header{"Authorization": {"Bearer test-token:alice"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, f.wsURL("lobby")+tt.query, &websocket.DialOptions{HTTPHeader: tt.hdr})
			if tt.first != "" {
				c.send(tt.first)
			}
			w := c.expect(typeWelcome, tt.id)
			if w.ClientID != "alice" {
				t.Errorf("welcome.clientId = %q, want alice", w.ClientID)
			}
			if w.HeartbeatMs != DefaultHeartbeat.Milliseconds() || w.MaxFrameBytes != DefaultMaxFrameBytes || w.MaxSubscriptions != DefaultMaxSubscriptions {
				t.Errorf("welcome limits = %d ms, %d bytes, %d subscriptions; want the defaults", w.HeartbeatMs, w.MaxFrameBytes, w.MaxSubscriptions)
			}
			c.ping("1")
		})
	}
}

func TestAuthenticationRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{
		Heartbeat: -1,
		Authenticate: func(ctx context.Context, r *http.Request, cred string) (Identity, error) {
			switch cred {
			case "banned":
				return Identity{}, pubsub.Errorf(pubsub.CodePermissionDenied, "banned")
			case "bad-id":
				return Identity{ClientID: "has\nnewline"}, nil
			case "stale":
				return Identity{ClientID: "stale", Expires: t0.Add(-time.Second)}, nil
			}
			return testAuthenticate(ctx, r, cred)
		},
	})
	tests := []struct {
		name  string
		hdr   string // Authorization header
		first string // first frame
		code  pubsub.Code
		close websocket.StatusCode
	}{
		{"unknown token in header", "Bearer nope", "", pubsub.CodeUnauthenticated, CloseUnauthenticated},
		{"unknown token in frame", "", `{"auth":"nope"}`, pubsub.CodeUnauthenticated, CloseUnauthenticated},
		{"empty credential", "", `{"auth":""}`, pubsub.CodeUnauthenticated, CloseUnauthenticated},
		{"first frame not auth", "", `{"type":"publish","id":"1","topic":"chat","payload":1}`, pubsub.CodeUnauthenticated, CloseUnauthenticated},
		{"first frame malformed", "", `{"auth":`, pubsub.CodeUnauthenticated, CloseUnauthenticated},
		{"Authenticate keeps its code", "Bearer banned", "", pubsub.CodePermissionDenied, CloseUnauthenticated},
		{"invalid identity", "Bearer bad-id", "", pubsub.CodeInternal, CloseInternal},
		{"already expired", "Bearer stale", "", pubsub.CodeUnauthenticated, CloseCredentialsExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &websocket.DialOptions{}
			if tt.hdr != "" {
				opts.HTTPHeader = http.Header{"Authorization": {tt.hdr}}
			}
			c := dialRaw(t, f.wsURL("lobby"), opts)
			if tt.first != "" {
				c.send(tt.first)
			}
			c.expectError("", tt.code)
			c.expectClose(tt.close)
		})
	}
	// The Go client reports the refusal as the code.
	_, err := f.client.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: "nope"})
	if !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Errorf("Connect(bad token) = %v, want UNAUTHENTICATED", err)
	}
	_, err = f.client.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby"})
	if !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Errorf("Connect(no token) = %v, want UNAUTHENTICATED", err)
	}
}

func TestAuthTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{Heartbeat: -1, AuthTimeout: 5 * time.Second})
	c := dialRaw(t, f.wsURL("lobby"), nil)
	// The connection's goroutine arms the timer after the handshake.
	waitFor(t, "the auth timer", func() bool { return f.clock.Pending() == 1 })
	f.clock.Advance(5*time.Second - time.Nanosecond)
	if n := f.srv.Stats().Connections; n != 1 {
		t.Fatalf("%d connections just before the timeout, want 1", n)
	}
	f.clock.Advance(time.Nanosecond)
	c.expectError("", pubsub.CodeUnauthenticated)
	c.expectClose(CloseUnauthenticated)
}

// TestIdentityIsAuthenticated shows that a client cannot publish as someone
// else: the From of its messages is the identity its credentials prove, not
// the ClientID it asks for nor a "from" in its frame.
func TestIdentityIsAuthenticated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	bob := f.connect(t, "lobby", "bob")
	if err := bob.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}

	mallory, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice", Token: testTokenPrefix + "mallory"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer mallory.Close()
	if got := mallory.ClientID(); got != "mallory" {
		t.Errorf("ClientID() = %q, want mallory (the token's identity, not the one asked for)", got)
	}
	m, err := mallory.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`1`)})
	if err != nil {
		t.Fatalf("Publish() = %v", err)
	}
	if m.From != "mallory" {
		t.Errorf("confirmed From = %q, want mallory", m.From)
	}

	raw := f.authed(t, "lobby", "mallory")
	raw.send(`{"type":"publish","id":"1","topic":"chat","payload":2,"from":"alice","From":"alice","clientId":"alice"}`)
	if got := raw.expect(typePublished, "1").Message.From; got != "mallory" {
		t.Errorf("raw publish claiming alice: From = %q, want mallory", got)
	}
	for range 2 {
		select {
		case got := <-bob.Messages():
			if got.From != "mallory" {
				t.Errorf("bob received From %q, want mallory", got.From)
			}
		case <-time.After(waitTimeout):
			t.Fatal("bob received nothing")
		}
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []pubsub.Access
	f := newFixture(t, memory.Options{}, Options{
		Authenticate: func(ctx context.Context, r *http.Request, cred string) (Identity, error) {
			id, err := testAuthenticate(ctx, r, cred)
			id.Info = id.ClientID == "mod"
			return id, err
		},
		Authorize: func(_ context.Context, id Identity, a pubsub.Access) error {
			mu.Lock()
			seen = append(seen, a)
			mu.Unlock()
			if strings.HasPrefix(a.Topic, "mods") && id.Info != true {
				return errors.New("moderators only")
			}
			if a.Topic == "quota" {
				return &pubsub.Error{Code: pubsub.CodeRateLimitExceeded, RetryAfter: 1500 * time.Millisecond}
			}
			return nil
		},
	})
	alice, mod := f.authed(t, "lobby", "alice"), f.authed(t, "lobby", "mod")
	tests := []struct {
		name  string
		c     *rawConn
		frame string
		code  pubsub.Code // "" means allowed
		reply string
	}{
		{"publish denied", alice, `{"type":"publish","id":"1","topic":"mods","payload":1}`, pubsub.CodePermissionDenied, ""},
		{"subscribe denied", alice, `{"type":"subscribe","id":"2","topic":"mods"}`, pubsub.CodePermissionDenied, ""},
		{"pattern denied", alice, `{"type":"subscribe","id":"3","topic":"mods:*"}`, pubsub.CodePermissionDenied, ""},
		{"history denied", alice, `{"type":"history","id":"4","topic":"mods"}`, pubsub.CodePermissionDenied, ""},
		{"other topics open", alice, `{"type":"publish","id":"5","topic":"chat","payload":1}`, "", typePublished},
		{"moderator allowed", mod, `{"type":"publish","id":"6","topic":"mods","payload":1}`, "", typePublished},
		{"hook's own code kept", alice, `{"type":"publish","id":"7","topic":"quota","payload":1}`, pubsub.CodeRateLimitExceeded, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.frame[strings.Index(tt.frame, `"id":"`)+6:]
			id = id[:strings.IndexByte(id, '"')]
			tt.c.send(tt.frame)
			if tt.code != "" {
				tt.c.expectError(id, tt.code)
			} else {
				tt.c.expect(tt.reply, id)
			}
		})
	}
	alice.send(`{"type":"publish","id":"8","topic":"quota","payload":1}`)
	if f := alice.expectError("8", pubsub.CodeRateLimitExceeded); f.Error.RetryAfterMs != 1500 {
		t.Errorf("retryAfterMs = %d, want 1500", f.Error.RetryAfterMs)
	}
	mu.Lock()
	defer mu.Unlock()
	want := pubsub.Access{Action: pubsub.ActionSubscribe, Room: "lobby", Topic: "mods:*", ClientID: "alice"}
	found := false
	for _, a := range seen {
		found = found || a == want
	}
	if !found {
		t.Errorf("Authorize never saw %+v; saw %+v", want, seen)
	}
}

func TestCredentialsExpire(t *testing.T) {
	t.Parallel()
	var f *fixture
	f = newFixture(t, memory.Options{}, Options{
		Heartbeat: -1,
		Authenticate: func(ctx context.Context, r *http.Request, cred string) (Identity, error) {
			// "test-token:<id>/<minutes>" lasts that many minutes from now.
			cred, mins, _ := strings.Cut(cred, "/")
			id, err := testAuthenticate(ctx, r, cred)
			if err != nil {
				return id, err
			}
			if r == nil || r.RemoteAddr == "" {
				return id, errors.New("no request")
			}
			d, _ := time.ParseDuration(mins + "m")
			id.Expires = f.clock.Now().Add(d)
			return id, nil
		},
	})
	c := dialRaw(t, f.wsURL("lobby"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer test-token:alice/1"}}})
	if w := c.expect(typeWelcome, ""); !w.Expires.Equal(t0.Add(time.Minute)) {
		t.Errorf("welcome.expires = %v, want %v", w.Expires, t0.Add(time.Minute))
	}
	// Renewing for another client is refused and changes nothing.
	c.send(`{"type":"auth","id":"1","auth":"test-token:mallory/60"}`)
	c.expectError("1", pubsub.CodePermissionDenied)
	c.send(`{"type":"auth","id":"2","auth":"nope"}`)
	c.expectError("2", pubsub.CodeUnauthenticated)
	// Renewing for the same client moves the expiry.
	f.clock.Advance(30 * time.Second)
	c.send(`{"type":"auth","id":"3","auth":"test-token:alice/2"}`)
	if w := c.expect(typeWelcome, "3"); !w.Expires.Equal(t0.Add(150 * time.Second)) {
		t.Errorf("renewed expires = %v, want %v", w.Expires, t0.Add(150*time.Second))
	}
	f.clock.Advance(time.Minute) // past the first expiry
	c.ping("4")
	f.clock.Advance(time.Minute)
	c.expectError("", pubsub.CodeUnauthenticated)
	c.expectClose(CloseCredentialsExpired)

	// The Go client reports it as UNAUTHENTICATED.
	cc, err := f.client.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: "test-token:bob/1"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer cc.Close()
	f.clock.Advance(time.Minute)
	select {
	case <-cc.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Conn not done after its credentials expired")
	}
	if err := cc.Err(); !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Errorf("Err() = %v, want UNAUTHENTICATED", err)
	}
}

func TestOrigins(t *testing.T) {
	t.Parallel()
	strict := newFixture(t, memory.Options{}, Options{})
	open := newFixture(t, memory.Options{}, Options{OriginPatterns: []string{"127.0.0.2:*"}})
	tests := []struct {
		name   string
		f      *fixture
		origin string
		ok     bool
	}{
		{"no Origin (not a browser)", strict, "", true},
		{"same origin", strict, strings.Replace(strict.ts.URL, "ws", "http", 1), true},
		{"other origin", strict, "http://127.0.0.2:3000", false},
		{"allowed origin", open, "http://127.0.0.2:3000", true},
		{"origin not in the list", open, "http://127.0.0.3:3000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			c, err := NewClient(tt.f.ts.URL, &DialOptions{HTTPHeader: hdr})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := c.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "alice"})
			if tt.ok {
				if err != nil {
					t.Fatalf("Connect() with Origin %q = %v, want success", tt.origin, err)
				}
				conn.Close()
				return
			}
			if !errors.Is(err, pubsub.ErrPermissionDenied) {
				t.Errorf("Connect() with Origin %q = %v, want PERMISSION_DENIED (HTTP 403)", tt.origin, err)
			}
		})
	}
}
