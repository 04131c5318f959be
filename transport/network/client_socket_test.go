package network

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// socketInfo is the data of GET …/client and of a plain GET of the path.
type socketInfo struct {
	Path      string    `json:"path"`
	Topic     string    `json:"topic"`
	Pattern   bool      `json:"pattern"`
	ExpiresAt time.Time `json:"expiresAt"`
	MaxUses   int       `json:"maxUses"`
	Uses      int       `json:"uses"`
	MaxDurMs  int64     `json:"maxDurMs"`
}

// mint creates a client socket with the query q and returns its info.
func (f *fixture) mint(tb testing.TB, room, topicName, q string) socketInfo {
	tb.Helper()
	r := f.do(tb, http.MethodGet, "/"+room+"/pubsub/"+topicName+"/client"+q, lobbyPub, "", "")
	if r.status != http.StatusOK {
		tb.Fatalf("GET client%s = %d %s, want 200", q, r.status, r.raw)
	}
	var info socketInfo
	if err := json.Unmarshal(r.env.Data, &info); err != nil {
		tb.Fatal(err)
	}
	return info
}

// wsBase is the fixture's URL with the ws scheme.
func (f *fixture) wsBase() string {
	return "ws" + strings.TrimPrefix(f.ts.URL, "http")
}

// dialRefused dials path, which must refuse the handshake with status and
// an error envelope with code.
func (f *fixture) dialRefused(tb testing.TB, path string, status int, code pubsub.Code) {
	tb.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, f.wsBase()+path, nil)
	if err == nil {
		ws.CloseNow()
		tb.Fatalf("Dial(%s) succeeded, want %d %s", path, status, code)
	}
	if resp == nil {
		tb.Fatalf("Dial(%s) = %v without a response, want %d %s", path, err, status, code)
	}
	b, _ := io.ReadAll(resp.Body)
	var env envelope
	if json.Unmarshal(b, &env) != nil || env.Error == nil || resp.StatusCode != status || env.Error.Code != code {
		tb.Fatalf("Dial(%s) = %d %s, want %d %s", path, resp.StatusCode, b, status, code)
	}
}

// openBound dials a single-topic socket at path (with opts) and reads its
// welcome and subscribed frames.
func (f *fixture) openBound(tb testing.TB, path string, opts *websocket.DialOptions, first string) *rawConn {
	tb.Helper()
	c := dialRaw(tb, f.wsBase()+path, opts)
	if first != "" {
		c.send(first)
	}
	c.expect(typeWelcome, "")
	c.expect(typeSubscribed, "")
	c.bound = true
	return c
}

// expectMessage reads the message id: on a single-topic socket a WebSocket
// message holding the message object alone, otherwise a messages frame
// holding only that message.
func (c *rawConn) expectMessage(id pubsub.ID) pubsub.Message {
	c.tb.Helper()
	if c.bound {
		m := c.messageObject()
		if m.ID != id {
			c.tb.Fatalf("message %v on %q, want message %v", m.ID, m.Topic, id)
		}
		return m
	}
	fr := c.expect(typeMessages, "")
	if len(fr.Messages) != 1 || fr.Messages[0].ID != id {
		c.tb.Fatalf("messages frame %+v, want message %v", fr.Messages, id)
	}
	return fr.Messages[0]
}

// messageObject reads the next WebSocket message of a single-topic socket,
// which must be one message object, as a seed client's JSON.parse expects:
// no frame "type", no "v", nothing after it.
func (c *rawConn) messageObject() pubsub.Message {
	c.tb.Helper()
	data, err := c.read()
	if err != nil {
		c.tb.Fatalf("Read() = %v, want a message object", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		c.tb.Fatalf("WebSocket message %s is not one JSON object: %v", clip(string(data), 200), err)
	}
	if _, ok := members["type"]; ok {
		c.tb.Fatalf("WebSocket message %s is a frame, want a message object", clip(string(data), 200))
	}
	var m pubsub.Message
	if err := json.Unmarshal(data, &m); err != nil || m.ID == 0 || m.Topic == "" {
		c.tb.Fatalf("WebSocket message %s: %v, want a message with an id and a topic", clip(string(data), 200), err)
	}
	return m
}

func TestClientSocket(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	info := f.mint(t, "lobby", "alerts", "")
	if !strings.HasPrefix(info.Path, "/lobby/s/") || info.Topic != "alerts" || info.MaxUses != 1 || info.MaxDurMs != 0 {
		t.Errorf("client socket %+v, want a /lobby/s/ path for alerts, 1 use, no max_dur", info)
	}
	if want := t0.Add(DefaultClientSocketTTL); !info.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt %v, want %v (the default ttl)", info.ExpiresAt, want)
	}
	// The socket needs no key: the path is the credential.
	c := f.openBound(t, info.Path, nil, "")
	m := f.publish(t, "lobby", "alerts", lobbyPub, `{"message":"for the browser"}`)
	if got := c.expectMessage(m.ID); string(got.Payload) != `"for the browser"` {
		t.Errorf("payload %s", got.Payload)
	}
	// It only receives.
	c.send(`{"type":"publish","id":"1","topic":"alerts","payload":1}`)
	c.expectError("1", pubsub.CodePermissionDenied)
	c.send(`{"type":"subscribe","id":"2","topic":"other"}`)
	c.expectError("2", pubsub.CodePermissionDenied)
	c.send(`{"auth":"` + lobbyPub + `","id":"3"}`)
	c.expectError("3", pubsub.CodePermissionDenied)
	c.ping("4")
	// It was used once.
	f.dialRefused(t, info.Path, http.StatusGone, CodeExhaustedClientSocket)
}

func TestClientSocketRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	info := f.mint(t, "lobby", "alerts", "?max_uses=0")
	token := strings.TrimPrefix(info.Path, "/lobby/s/")
	tests := []struct {
		name   string
		path   string
		status int
		code   pubsub.Code
	}{
		{"unknown token", "/lobby/s/" + strings.Repeat("A", len(token)), 404, CodeInvalidClientSocket},
		{"another room", "/other/s/" + token, 404, CodeInvalidClientSocket},
		{"truncated token", "/lobby/s/" + token[:len(token)-1], 404, CodeInvalidClientSocket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.dialRefused(t, tt.path, tt.status, tt.code)
			if r := f.do(t, http.MethodGet, tt.path, "", "", ""); r.status != tt.status || r.env.Error.Code != tt.code {
				t.Errorf("plain GET %s = %d %s, want %d %s", tt.path, r.status, r.raw, tt.status, tt.code)
			}
		})
	}
}

func TestClientSocketMaxUses(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	for _, tt := range []struct {
		q    string
		uses int    // successful connections before it is exhausted; -1: never
		said string // what the refusal says
	}{
		{"", 1, "used once"},
		{"?max_uses=2", 2, "used twice"},
		{"?max_uses=3", 3, "used 3 times"},
		{"?max_uses=0", -1, ""},
	} {
		t.Run("max_uses"+tt.q, func(t *testing.T) {
			info := f.mint(t, "lobby", "alerts", tt.q)
			n := tt.uses
			if n < 0 {
				n = 5
			}
			for i := range n {
				// A plain GET describes the socket without using it.
				if r := f.do(t, http.MethodGet, info.Path, "", "", ""); r.status != 200 || !strings.Contains(string(r.env.Data), `"uses":`+strconv.Itoa(i)) {
					t.Fatalf("GET %s before use %d = %d %s", info.Path, i+1, r.status, r.raw)
				}
				f.openBound(t, info.Path, nil, "")
			}
			if tt.uses >= 0 {
				f.dialRefused(t, info.Path, http.StatusGone, CodeExhaustedClientSocket)
				r := f.do(t, http.MethodGet, info.Path, "", "", "")
				if r.env.Error == nil || !strings.Contains(r.env.Error.Message, tt.said+", its max_uses") {
					t.Errorf("GET %s once used up = %s, want a message saying it was %s", info.Path, r.raw, tt.said)
				}
			}
		})
	}
}

func TestClientSocketTTL(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	info := f.mint(t, "lobby", "alerts", "?ttl=1000&max_uses=0")
	byExpiry := f.mint(t, "lobby", "alerts", "?expiry=2000")
	already := f.mint(t, "lobby", "alerts", "?ttl=0")
	f.dialRefused(t, already.Path, http.StatusGone, CodeExpiredClientSocket)
	f.clock.Advance(999 * time.Millisecond)
	f.openBound(t, info.Path, nil, "")
	f.clock.Advance(time.Millisecond)
	f.dialRefused(t, info.Path, http.StatusGone, CodeExpiredClientSocket)
	f.openBound(t, byExpiry.Path, nil, "")
	// Forgotten ten minutes after expiring, at the first sweep after that.
	f.clock.Advance(clientSocketGrace + time.Minute)
	f.mint(t, "lobby", "alerts", "")
	if n := f.srv.Stats().ClientSockets; n != 1 {
		t.Errorf("%d client sockets remembered after the sweep, want 1", n)
	}
	f.dialRefused(t, info.Path, http.StatusNotFound, CodeInvalidClientSocket)
}

func TestClientSocketMaxDur(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{Heartbeat: -1})
	info := f.mint(t, "lobby", "alerts", "?max_dur=60000")
	c := f.openBound(t, info.Path, nil, "")
	f.clock.Advance(time.Minute - time.Millisecond)
	c.ping("1")
	f.clock.Advance(time.Millisecond)
	// The error frame and the close say the socket's time is up, not that
	// its credentials are bad.
	if e := c.expectError("", CodeMaxDurationReached).Error; !strings.Contains(e.Message, "max_dur of 60000 ms") {
		t.Errorf("error frame message %q, want it to name the max_dur of 60000 ms", e.Message)
	}
	_, err := c.read()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseMaxDuration || !strings.HasPrefix(ce.Reason, "max_duration_reached: ") {
		t.Fatalf("after the error frame: %v, want a close %d with a reason starting max_duration_reached", err, CloseMaxDuration)
	}
	// A Go client told only the close code reports the same.
	if got := closeCodeError(CloseMaxDuration, ""); got.Code != CodeMaxDurationReached {
		t.Errorf("closeCodeError(%d) = %v, want %s", CloseMaxDuration, got, CodeMaxDurationReached)
	}
}

func TestClientSocketPattern(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	info := f.mint(t, "lobby", "user:*", "?pattern=true")
	if !info.Pattern || info.Topic != "user:*" {
		t.Errorf("client socket %+v, want the pattern user:*", info)
	}
	c := f.openBound(t, info.Path, nil, "")
	f.publish(t, "lobby", "users:1", lobbyPub, `{"message":0}`)
	m := f.publish(t, "lobby", "user:1:events", lobbyPub, `{"message":1}`)
	c.expectMessage(m.ID)
}

func TestClientSocketCreateRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{MaxClientSockets: 2})
	tests := []struct {
		name, path, key string
		status          int
		code            pubsub.Code
	}{
		{"no key", "/lobby/pubsub/alerts/client", "", 401, pubsub.CodeUnauthenticated},
		{"ttl too long", "/lobby/pubsub/alerts/client?ttl=600001", lobbyPub, 400, pubsub.CodeInvalidRequest},
		{"negative ttl", "/lobby/pubsub/alerts/client?expiry=-1", lobbyPub, 400, pubsub.CodeInvalidRequest},
		{"ttl and expiry disagree", "/lobby/pubsub/alerts/client?ttl=1000&expiry=2000", lobbyPub, 400, pubsub.CodeInvalidRequest},
		{"bad max_dur", "/lobby/pubsub/alerts/client?max_dur=soon", lobbyPub, 400, pubsub.CodeInvalidRequest},
		{"negative max_uses", "/lobby/pubsub/alerts/client?max_uses=-1", lobbyPub, 400, pubsub.CodeInvalidRequest},
		{"pattern without pattern=true", "/lobby/pubsub/user:*/client", lobbyPub, 400, pubsub.CodeInvalidTopicName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodGet, tt.path, tt.key, "", "")
			if r.status != tt.status || r.env.Error.Code != tt.code {
				t.Errorf("GET %s = %d %s, want %d %s", tt.path, r.status, r.raw, tt.status, tt.code)
			}
		})
	}
	t.Run("subscribe key", func(t *testing.T) {
		if r := f.do(t, http.MethodGet, "/lobby/pubsub/alerts/client", lobbySub, "", ""); r.status != 200 {
			t.Errorf("GET client with the subscribe key = %d %s, want 200", r.status, r.raw)
		}
	})
	t.Run("table full", func(t *testing.T) {
		f.mint(t, "lobby", "alerts", "")
		r := f.do(t, http.MethodGet, "/lobby/pubsub/alerts/client", lobbyPub, "", "")
		if r.status != 429 || r.env.Error.Code != pubsub.CodeRateLimitExceeded || r.header.Get("Retry-After") == "" {
			t.Errorf("GET client beyond MaxClientSockets = %d %s, want 429 with Retry-After", r.status, r.raw)
		}
	})
}

// TestClientSocketTokens checks that tokens are long, random and distinct.
func TestClientSocketTokens(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	seen := map[string]bool{}
	for range 50 {
		info := f.mint(t, "lobby", "alerts", "")
		token := strings.TrimPrefix(info.Path, "/lobby/s/")
		if len(token) < 22 || url.PathEscape(token) != token { // 22 base64 characters are 128 bits
			t.Fatalf("token %q: want at least 128 bits in URL-safe characters", token)
		}
		if seen[token] {
			t.Fatalf("token %q handed out twice", token)
		}
		seen[token] = true
	}
}

func FuzzParseClientSocketQuery(f *testing.F) {
	for _, q := range []string{
		"", "pattern=true", "max_dur=60000&expiry=300000&max_uses=1", "ttl=0", "ttl=600001",
		"ttl=1&expiry=2", "max_uses=-1", "max_dur=1e3", "pattern=yes", "max_uses=99999999999999999999",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, perr := parseClientSocketQuery(q)
		if perr != nil {
			if perr.Code != pubsub.CodeInvalidRequest {
				t.Fatalf("parseClientSocketQuery(%q) = %v, want INVALID_REQUEST", raw, perr)
			}
			return
		}
		if p.TTL < 0 || p.TTL > MaxClientSocketTTL || p.MaxDur < 0 || p.MaxUses < 0 {
			t.Fatalf("parseClientSocketQuery(%q) = %+v: out of range", raw, p)
		}
	})
}

// One room cannot take the client sockets of every room: it has a quota of
// its own, and sockets that can no longer be used make way under pressure.
func TestClientSocketQuotaPerRoom(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{MaxClientSockets: 4, MaxClientSocketsPerRoom: 2})
	create := func(room, key, query string) int {
		t.Helper()
		return f.do(t, http.MethodGet, "/"+room+"/pubsub/alerts/client"+query, key, "", "").status
	}
	for i := range 2 {
		if s := create("lobby", lobbySub, ""); s != 200 {
			t.Fatalf("lobby's socket %d: status %d, want 200", i+1, s)
		}
	}
	if s := create("lobby", lobbySub, ""); s != 429 {
		t.Errorf("lobby's third socket: status %d, want 429 (its quota is 2)", s)
	}
	if s := create("other", otherPub, ""); s != 200 {
		t.Errorf("other room's socket while lobby is at its quota: status %d, want 200", s)
	}
	// Sockets that expired at once (ttl=0) fill the table, then make way.
	if s := create("other", otherPub, "?ttl=0"); s != 200 {
		t.Fatalf("expired socket: status %d", s)
	}
	if s := create("other", otherPub, ""); s != 200 {
		t.Errorf("a socket once the table holds only usable ones and an expired one: status %d, want 200", s)
	}
}
