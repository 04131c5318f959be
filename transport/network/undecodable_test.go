package network

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
)

// scriptedServer speaks the frame protocol by hand and runs one script per
// connection, so that it can send what no Server sends: messages a client
// cannot decode.
type scriptedServer struct {
	tb      testing.TB
	ts      *httptest.Server
	scripts []func(s *scriptedConn)

	mu     sync.Mutex
	conns  int
	afters []pubsub.ID // the After of every history request, in order
}

// scriptedConn is one connection of a scriptedServer.
type scriptedConn struct {
	srv *scriptedServer
	ws  *websocket.Conn
	ctx context.Context
}

func newScriptedServer(tb testing.TB, scripts ...func(s *scriptedConn)) *scriptedServer {
	s := &scriptedServer{tb: tb, scripts: scripts}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.ts.Close)
	return s
}

func (s *scriptedServer) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	s.mu.Lock()
	n := s.conns
	s.conns++
	s.mu.Unlock()
	if n >= len(s.scripts) {
		ws.Close(websocket.StatusTryAgainLater, "no more connections in this script")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), waitTimeout)
	defer cancel()
	c := &scriptedConn{srv: s, ws: ws, ctx: ctx}
	c.send(`{"v":1,"type":"welcome","clientId":"bob","heartbeatMs":0,"maxFrameBytes":65536,"maxSubscriptions":0}`)
	s.scripts[n](c)
}

func (s *scriptedServer) historyAfters() []pubsub.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pubsub.ID(nil), s.afters...)
}

func (s *scriptedServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (c *scriptedConn) send(frame string) {
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.srv.tb.Errorf("scripted server: Write(%.60s) = %v", frame, err)
	}
}

// answer reads the next request, which must be of type typ, and answers it
// with reply, whose "id" member is filled in. It returns the request.
func (c *scriptedConn) answer(typ, reply string) request {
	_, data, err := c.ws.Read(c.ctx)
	if err != nil {
		c.srv.tb.Errorf("scripted server: Read() = %v, want a %s request", err, typ)
		return request{}
	}
	req, perr := decodeRequest(data)
	if perr != nil || req.Type != typ {
		c.srv.tb.Errorf("scripted server: got %s (%v), want a %s request", data, perr, typ)
		return req
	}
	if req.Type == typeHistory {
		c.srv.mu.Lock()
		c.srv.afters = append(c.srv.afters, req.After)
		c.srv.mu.Unlock()
	}
	c.send(strings.Replace(reply, `"id":""`, `"id":"`+req.ID+`"`, 1))
	return req
}

// wait reads until the client goes away.
func (c *scriptedConn) wait() {
	for {
		if _, _, err := c.ws.Read(c.ctx); err != nil {
			return
		}
	}
}

// scriptMessage is a message in the wire format with id and payload, and
// the rest of its members as a Server would send them unless extra replaces
// them.
func scriptMessage(id pubsub.ID, payload string, extra ...string) string {
	rest := `"from":"alice","timestamp":"2026-03-15T12:00:00Z","persisted":true`
	if len(extra) > 0 {
		rest = extra[0]
	}
	return `{"id":"` + strconv.FormatInt(int64(id), 10) + `","topic":"chat","payload":` + payload + `,` + rest + `}`
}

// TestClientSkipsUndecodableMessages has a server send a Go client what it
// cannot decode: a message nested beyond encoding/json's limit, a frame cut
// short, a message with a timestamp that is not one, and a history page that
// ends with an undecodable message. The Room hands out every good message once
// and in order, reports and counts each bad one, keeps its connection, and
// fills the gap after a reconnect from past the last message it received,
// good or bad, never fetching one twice.
func TestClientSkipsUndecodableMessages(t *testing.T) {
	t.Parallel()
	// Ids newer than the Room's subscription, in the order the server sends
	// them.
	base := pubsub.IDAt(time.Now().Add(time.Minute))
	id := func(i int) pubsub.ID { return base + pubsub.ID(i)<<22 }
	tooDeep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	const good = `{"n":1}`

	srv := newScriptedServer(t,
		func(c *scriptedConn) { // the first connection, lost at the end
			c.answer(typeSubscribe, `{"v":1,"type":"subscribed","id":"","topic":"chat"}`)
			c.send(`{"v":1,"type":"messages","messages":[` + scriptMessage(id(1), `"one"`) + `,` + scriptMessage(id(2), tooDeep) + `]}`)
			c.send(`{"v":1,"type":"messages","messages":[` + scriptMessage(id(3), good)) // cut short
			c.send(`{"v":1,"type":"messages","messages":[` + scriptMessage(id(4), `"four"`) + `]}`)
			c.send(`{"v":1,"type":"messages","messages":[` + scriptMessage(id(5), good, `"from":"alice","timestamp":"yesterday","persisted":true`) + `]}`)
			c.ws.Close(websocket.StatusGoingAway, "")
		},
		func(c *scriptedConn) { // the second: gap fill, then live
			c.answer(typeSubscribe, `{"v":1,"type":"subscribed","id":"","topic":"chat"}`)
			c.answer(typeHistory, `{"v":1,"type":"history","id":"","messages":[`+scriptMessage(id(6), `"six"`)+`,`+scriptMessage(id(7), tooDeep)+`],"hasMore":true}`)
			c.answer(typeHistory, `{"v":1,"type":"history","id":"","messages":[],"hasMore":false}`)
			c.send(`{"v":1,"type":"messages","messages":[` + scriptMessage(id(8), `"eight"`) + `]}`)
			c.wait()
		},
	)
	client, err := NewClient(srv.ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var mu sync.Mutex
	var reported []error
	room, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{
		Token:        "bob", // sent in the upgrade request: no auth frame
		GapFill:      true,
		ReconnectMin: time.Millisecond,
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, err)
		},
	})
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	defer room.Leave(ctx)
	got := make(chan string, 16)
	if _, err := room.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}

	var payloads []string
	for len(payloads) < 4 {
		select {
		case p := <-got:
			payloads = append(payloads, p)
		case <-time.After(waitTimeout):
			t.Fatalf("the handler received %q, then nothing; want the four good messages", payloads)
		}
	}
	if diff := cmp.Diff([]string{`"one"`, `"four"`, `"six"`, `"eight"`}, payloads); diff != "" {
		t.Errorf("handler received (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]pubsub.ID{id(5), id(7)}, srv.historyAfters()); diff != "" {
		t.Errorf("gap fill asked for history after (-want +got):\n%s", diff)
	}
	s := room.Stats()
	if s.Reconnects != 1 || srv.connections() != 2 {
		t.Errorf("%d reconnects over %d connections, want 1 over 2: an undecodable message must not cost the connection", s.Reconnects, srv.connections())
	}
	if s.Undecodable != 4 {
		t.Errorf("Stats().Undecodable = %d, want 4", s.Undecodable)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 4 {
		t.Errorf("OnError received %d errors, want 4: %v", len(reported), reported)
	}
	for _, err := range reported {
		if !errors.Is(err, pubsub.ErrInvalidPayload) {
			t.Errorf("OnError received %v, want INVALID_PAYLOAD", err)
		}
	}
}

// TestClientFailsCallOnUndecodableReply answers a history request with a
// frame the client cannot decode: the call fails at once with
// INVALID_PAYLOAD, and the connection serves the next call.
func TestClientFailsCallOnUndecodableReply(t *testing.T) {
	t.Parallel()
	srv := newScriptedServer(t, func(c *scriptedConn) {
		c.answer(typeHistory, `{"v":1,"type":"history","id":"","messages":{"not":"a list"},"hasMore":false}`)
		c.answer(typeHistory, `{"v":1,"type":"history","id":"","messages":[`+scriptMessage(1, `"ok"`)+`],"hasMore":false}`)
		c.wait()
	})
	client, err := NewClient(srv.ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	conn, err := client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: "bob"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close()
	if _, err := conn.History(ctx, pubsub.HistoryRequest{Topic: "chat"}); !errors.Is(err, pubsub.ErrInvalidPayload) {
		t.Errorf("History() answered with an undecodable frame = %v, want INVALID_PAYLOAD", err)
	}
	p, err := conn.History(ctx, pubsub.HistoryRequest{Topic: "chat"})
	if err != nil || len(p.Messages) != 1 || string(p.Messages[0].Payload) != `"ok"` {
		t.Errorf("History() after it = %+v, %v; want the page on the same connection", p, err)
	}
	if srv.connections() != 1 {
		t.Errorf("%d connections, want 1", srv.connections())
	}
}
