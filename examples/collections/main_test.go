package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 10 * time.Second

var testSecret = []byte("test-secret-of-thirty-two-bytes!")

type fixture struct {
	app *app
	ts  *httptest.Server
	tok string
}

func newFixture(tb testing.TB, heartbeat time.Duration, volatile ...bool) *fixture {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	a, err := newApp(ctx, config{dataDir: tb.TempDir(), secret: testSecret, heartbeat: heartbeat, volatile: len(volatile) > 0 && volatile[0]})
	if err != nil {
		tb.Fatalf("newApp() = %v", err)
	}
	f := &fixture{app: a, ts: httptest.NewServer(a.handler)}
	f.tok = f.token(tb, "alice", time.Hour)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		a.close(ctx)
		f.ts.Close()
	})
	return f
}

func (f *fixture) token(tb testing.TB, sub string, ttl time.Duration, collections ...string) string {
	tb.Helper()
	tok, err := mintToken(testSecret, sub, ttl, time.Now(), collections)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func (f *fixture) wsURL(tok string) string {
	return "ws" + strings.TrimPrefix(f.ts.URL, "http") + "/api/v1/realtime/ws?token=" + tok
}

// do sends one REST request and decodes the answer into out (if not nil).
func (f *fixture) do(tb testing.TB, method, path, body string, out any) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s = %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: answer %s is not JSON: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

type wsClient struct {
	tb testing.TB
	ws *websocket.Conn
}

func (f *fixture) dial(tb testing.TB, tok string) *wsClient {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, f.wsURL(tok), nil)
	if err != nil {
		tb.Fatalf("Dial() = %v", err)
	}
	ws.SetReadLimit(1 << 20)
	tb.Cleanup(func() { ws.CloseNow() })
	return &wsClient{tb: tb, ws: ws}
}

func (c *wsClient) send(s string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.tb.Fatalf("Write(%s) = %v", s, err)
	}
}

type frame struct {
	Type       string         `json:"type"`
	Status     string         `json:"status"`
	Collection string         `json:"collection"`
	Code       string         `json:"code"`
	Timestamp  string         `json:"timestamp"`
	Data       map[string]any `json:"data"`
}

func (c *wsClient) next(what string) frame {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.tb.Fatalf("waiting for %s: Read() = %v", what, err)
	}
	var fr frame
	if err := json.Unmarshal(b, &fr); err != nil {
		c.tb.Fatalf("waiting for %s: %s: %v", what, b, err)
	}
	return fr
}

func (c *wsClient) subscribe(collection string, ops ...string) {
	c.tb.Helper()
	b, _ := json.Marshal(map[string]any{"action": "subscribe", "collection": collection, "operations": ops})
	if ops == nil {
		b, _ = json.Marshal(map[string]any{"action": "subscribe", "collection": collection})
	}
	c.send(string(b))
	if fr := c.next("the subscribe reply"); fr.Status != "subscribed" {
		c.tb.Fatalf("subscribe %s → %+v, want subscribed", collection, fr)
	}
}

func TestCRUDEvents(t *testing.T) {
	f := newFixture(t, -1)
	all := f.dial(t, f.tok)
	all.subscribe("posts")
	creates := f.dial(t, f.tok)
	creates.subscribe("posts", "create")

	var rec map[string]any
	if code := f.do(t, "POST", "/api/v1/records/posts", `{"title":"New Post","id":"mine","created_at":"never"}`, &rec); code != http.StatusCreated {
		t.Fatalf("POST = %d %v, want 201", code, rec)
	}
	id, _ := rec["id"].(string)
	if len(id) != 36 || id == "mine" || rec["created_at"] == "never" || rec["created_at"] != rec["updated_at"] {
		t.Fatalf("POST answer = %v, want a server id (UUID), created_at = updated_at", rec)
	}
	ev := all.next("the create event")
	if ev.Type != "posts.create" || ev.Data["id"] != id || ev.Data["title"] != "New Post" {
		t.Errorf("create event = %+v, want posts.create of %s", ev, id)
	}
	if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil || !strings.HasSuffix(ev.Timestamp, "Z") || len(ev.Timestamp) != len("2026-01-17T12:34:56.789Z") {
		t.Errorf("event timestamp %q, want RFC 3339 UTC with milliseconds", ev.Timestamp)
	}

	if ev := creates.next("the first create"); ev.Type != "posts.create" || ev.Data["id"] != id {
		t.Errorf("subscriber to [create] got %+v, want the create of %s", ev, id)
	}

	// Failed writes publish nothing.
	for _, bad := range []struct{ method, path, body string }{
		{"PATCH", "/api/v1/records/posts/" + "00000000-0000-0000-0000-000000000000", `{"title":"x"}`},
		{"PATCH", "/api/v1/records/posts/" + id, `not json`},
		{"DELETE", "/api/v1/records/posts/nope", ``},
		{"POST", "/api/v1/records/po%20sts", `{"title":"x"}`},
		{"POST", "/api/v1/records/posts", `[1,2]`},
		{"POST", "/api/v1/records/posts", `{"deep":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`},
	} {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if code := f.do(t, bad.method, bad.path, bad.body, &e); code < 400 || e.Error.Code == "" {
			t.Errorf("%s %s %.20s = %d %+v, want an error", bad.method, bad.path, bad.body, code, e)
		}
	}

	var upd map[string]any
	if code := f.do(t, "PATCH", "/api/v1/records/posts/"+id, `{"title":"Edited","updated_at":"never"}`, &upd); code != http.StatusOK || upd["title"] != "Edited" || upd["updated_at"] == "never" || upd["created_at"] != rec["created_at"] {
		t.Fatalf("PATCH = %d %v", code, upd)
	}
	if ev := all.next("the update event"); ev.Type != "posts.update" || ev.Data["title"] != "Edited" {
		t.Errorf("after failed writes, the next event = %+v, want the update", ev)
	}
	if code := f.do(t, "DELETE", "/api/v1/records/posts/"+id, ``, nil); code != http.StatusOK {
		t.Fatalf("DELETE = %d", code)
	}
	if ev := all.next("the delete event"); ev.Type != "posts.delete" || ev.Data["id"] != id || ev.Data["title"] != "Edited" {
		t.Errorf("delete event = %+v, want the record's last state", ev)
	}
	if code := f.do(t, "GET", "/api/v1/records/posts/"+id, ``, nil); code != http.StatusNotFound {
		t.Errorf("GET after DELETE = %d, want 404", code)
	}
	f.do(t, "POST", "/api/v1/records/posts", `{"title":"Second"}`, nil)
	if ev := creates.next("the second create"); ev.Type != "posts.create" || ev.Data["title"] != "Second" {
		t.Errorf("subscriber to [create] got %+v, want only creates", ev)
	}

	// The events are in history, for the native protocol to catch up.
	var page struct {
		Data struct {
			Messages []struct{ Metadata map[string]string } `json:"messages"`
		} `json:"data"`
	}
	if code := f.do(t, "GET", "/plaza/collections/pubsub/posts/history", ``, &page); code != http.StatusOK || len(page.Data.Messages) != 4 {
		t.Errorf("history of posts = %d, %d messages, want 4 (create, update, delete, create)", code, len(page.Data.Messages))
	}
}

func TestRESTNeedsToken(t *testing.T) {
	f := newFixture(t, -1)
	f.tok = "nope"
	if code := f.do(t, "POST", "/api/v1/records/posts", `{}`, nil); code != http.StatusUnauthorized {
		t.Errorf("POST with a bad token = %d, want 401", code)
	}
}

func TestTokenAuthorizesCollections(t *testing.T) {
	f := newFixture(t, -1)
	c := f.dial(t, f.token(t, "bob", time.Hour, "posts"))
	c.send(`{"action":"subscribe","collection":"secrets"}`)
	if fr := c.next("the refusal"); fr.Code != "PERMISSION_DENIED" {
		t.Errorf("subscribe to a collection outside the token's topics → %+v, want PERMISSION_DENIED", fr)
	}
	c.subscribe("posts")
}

// TestRESTAuthorizesCollections: the REST routes refuse a collection the
// token's topics claim does not list, as the WebSocket does, so its records
// never reach that token's holder by another door.
func TestRESTAuthorizesCollections(t *testing.T) {
	f := newFixture(t, -1)
	var secret map[string]any
	if code := f.do(t, "POST", "/api/v1/records/secrets", `{"pin":"1234"}`, &secret); code != http.StatusCreated {
		t.Fatalf("POST secrets with a token for every collection = %d, want 201", code)
	}
	id, _ := secret["id"].(string)
	f.tok = f.token(t, "bob", time.Hour, "posts")
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/records/secrets", ""},
		{"GET", "/api/v1/records/secrets/" + id, ""},
		{"POST", "/api/v1/records/secrets", `{"pin":"0000"}`},
		{"PATCH", "/api/v1/records/secrets/" + id, `{"pin":"0000"}`},
		{"DELETE", "/api/v1/records/secrets/" + id, ""},
	} {
		var out struct {
			Error struct{ Code string } `json:"error"`
		}
		code := f.do(t, r.method, r.path, r.body, &out)
		if code != http.StatusForbidden || out.Error.Code != "PERMISSION_DENIED" {
			t.Errorf("%s %s with a token for posts only = %d %q, want 403 PERMISSION_DENIED", r.method, r.path, code, out.Error.Code)
		}
	}
	if code := f.do(t, "GET", "/api/v1/records/posts", "", nil); code != http.StatusOK {
		t.Errorf("GET posts with a token for posts = %d, want 200", code)
	}
	f.tok = f.token(t, "alice", time.Hour)
	var got map[string]any
	if code := f.do(t, "GET", "/api/v1/records/secrets/"+id, "", &got); code != http.StatusOK || got["pin"] != "1234" {
		t.Errorf("GET secrets/%s after the refused writes = %d %v, want 200 and the record unchanged", id, code, got)
	}
}

// TestNativeRoutesCannotForgeEvents: events come from committed writes
// only. A token holder who publishes to the room "collections" on the
// native routes, with the operation in the metadata, is refused, and the
// subscribers see no "posts.create" that the store did not commit.
func TestNativeRoutesCannotForgeEvents(t *testing.T) {
	f := newFixture(t, -1)
	c := f.dial(t, f.tok)
	c.subscribe("posts")
	forged := `{"message":{"id":"forged","title":"not a record"},"metadata":{"op":"create"}}`
	var out struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := f.do(t, "POST", "/plaza/collections/pubsub/posts/publish", forged, &out); code != http.StatusForbidden || out.Error.Code != "PERMISSION_DENIED" {
		t.Errorf("native publish of a forged event = %d %q, want 403 PERMISSION_DENIED", code, out.Error.Code)
	}
	var rec map[string]any
	if code := f.do(t, "POST", "/api/v1/records/posts", `{"title":"real"}`, &rec); code != http.StatusCreated {
		t.Fatalf("POST posts = %d, want 201", code)
	}
	if fr := c.next("the event of the committed create"); fr.Type != "posts.create" || fr.Data["id"] != rec["id"] {
		t.Errorf("first event = %+v, want the posts.create of record %v (no forged event before it)", fr, rec["id"])
	}
	var hist struct {
		Data struct {
			Messages []json.RawMessage `json:"messages"`
		} `json:"data"`
	}
	if code := f.do(t, "GET", "/plaza/collections/pubsub/posts/history", "", &hist); code != http.StatusOK || len(hist.Data.Messages) != 1 {
		t.Errorf("history of posts = %d with %s, want 200 with the one committed create", code, hist.Data.Messages)
	}
}

// TestConcurrentWrites: every one of 200 clients sees every one of 1000
// concurrent writes exactly once, in commit order. With the race detector
// (the README's test command) or -short it makes 100 writes, which keeps it
// within seconds on two cores; go test -run TestConcurrentWrites without
// -race runs the full size.
func TestConcurrentWrites(t *testing.T) {
	clients, writes := 200, 1000
	if raceEnabled || testing.Short() {
		clients, writes = 200, 100
	}
	f := newFixture(t, -1, true) // the event pipeline, not the disk's fsync
	var order []string           // ids in commit order; written under the store's lock
	f.app.store.committed = func(_ string, rec Record) { order = append(order, rec[fieldID].(string)) }

	conns := make([]*wsClient, clients)
	for i := range conns {
		conns[i] = f.dial(t, f.tok)
		conns[i].subscribe("posts", "create")
	}
	got := make([][]string, clients)
	errs := make(chan error, clients)
	for i, c := range conns {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*waitTimeout)
			defer cancel()
			for len(got[i]) < writes {
				_, b, err := c.ws.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("client %d after %d events: %w", i, len(got[i]), err)
					return
				}
				var fr struct {
					Type string
					Data struct{ ID string }
				}
				if err := json.Unmarshal(b, &fr); err != nil || fr.Type != "posts.create" {
					errs <- fmt.Errorf("client %d: frame %s", i, b)
					return
				}
				got[i] = append(got[i], fr.Data.ID)
			}
			errs <- nil
		}()
	}
	start := time.Now()
	writeErrs := make(chan error, writes)
	sem := make(chan struct{}, 32) // concurrent HTTP requests
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	// Every POST ends within the deadline, so every wait on writeErrs does.
	wctx, wcancel := context.WithTimeout(context.Background(), 4*waitTimeout)
	defer wcancel()
	for i := range writes {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(wctx, "POST", f.ts.URL+"/api/v1/records/posts", bytes.NewReader(fmt.Appendf(nil, `{"n":%d}`, i)))
			req.Header.Set("Authorization", "Bearer "+f.tok)
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			writeErrs <- err
		}()
	}
	for range writes {
		if err := <-writeErrs; err != nil {
			t.Fatalf("POST of a concurrent write = %v", err)
		}
	}
	wrote := time.Since(start)
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d writes in %v; %d clients had every event after %v", writes, wrote, clients, time.Since(start))
	for i := range got {
		if len(got[i]) != writes {
			t.Fatalf("client %d got %d events, want %d", i, len(got[i]), writes)
		}
		for j := range got[i] {
			if got[i][j] != order[j] {
				t.Fatalf("client %d: event %d is %s, want %s (commit order)", i, j, got[i][j], order[j])
			}
		}
	}
}
