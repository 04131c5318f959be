package network

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// Keys of the test rooms: "lobby" and "other" each have a publish and a
// subscribe key; every other room is unknown.
const (
	lobbyPub = "pk-lobby"
	lobbySub = "sk-lobby"
	otherPub = "pk-other"
)

func testKeys(room string) (RoomKeys, bool) {
	switch room {
	case "lobby":
		return RoomKeys{Publish: []string{lobbyPub}, Subscribe: []string{lobbySub}}, true
	case "other":
		return RoomKeys{Publish: []string{otherPub}, Subscribe: []string{"sk-other"}}, true
	}
	return RoomKeys{}, false
}

// newKeyFixture is a fixture whose server authenticates with testKeys.
func newKeyFixture(tb testing.TB, hopts memory.Options, opts Options) *fixture {
	tb.Helper()
	opts.Keys = testKeys
	return newFixture(tb, hopts, opts)
}

// envelope is the JSON body of every plain HTTP answer.
type envelope struct {
	Data  json.RawMessage `json:"data"`
	Error *wireError      `json:"error"`
}

// response is a plain HTTP answer.
type response struct {
	status int
	header http.Header
	env    envelope
	raw    string
}

// do sends a request to the fixture's server with key (if any) as a bearer
// token and decodes the envelope of the answer.
func (f *fixture) do(tb testing.TB, method, path, key, contentType, body string) response {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctxT(tb), method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatalf("NewRequest(%s %s) = %v", method, path, err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s = %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading %s %s: %v", method, path, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if err := json.Unmarshal(b, &r.env); err != nil {
		tb.Fatalf("%s %s answered %d %q, not the JSON envelope: %v", method, path, resp.StatusCode, b, err)
	}
	if (r.env.Data == nil) == (r.env.Error == nil) {
		tb.Fatalf("%s %s answered %s: want exactly one of data and error", method, path, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return r
}

// publish publishes body to topic in room over HTTP and returns the
// confirmed message; it fails the test unless the answer is 200.
func (f *fixture) publish(tb testing.TB, room, topicName, key, body string) pubsub.Message {
	tb.Helper()
	r := f.do(tb, http.MethodPost, "/"+room+"/pubsub/"+topicName+"/publish", key, "application/json", body)
	if r.status != http.StatusOK {
		tb.Fatalf("publish %s to %s/%s = %d %s, want 200", body, room, topicName, r.status, r.raw)
	}
	var m pubsub.Message
	if err := json.Unmarshal(r.env.Data, &m); err != nil {
		tb.Fatalf("publish answer %s: %v", r.env.Data, err)
	}
	return m
}

// sseEvent is one event, or comment, of an event stream.
type sseEvent struct {
	comment bool
	id      string
	event   string
	data    string
}

// sseClient reads an event stream in a goroutine of its own.
type sseClient struct {
	tb     testing.TB
	resp   *http.Response
	events chan sseEvent
	done   chan struct{} // closed when the stream has ended
	quit   chan struct{} // closed when the test stops reading
	once   sync.Once
}

// openSSE opens an event stream at path with hdr; the answer must be 200.
func (f *fixture) openSSE(tb testing.TB, path string, hdr http.Header) *sseClient {
	tb.Helper()
	resp := f.getStream(tb, path, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tb.Fatalf("GET %s = %d %s, want 200", path, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		tb.Errorf("GET %s: Content-Type %q, want text/event-stream", path, ct)
	}
	return readSSE(tb, resp)
}

// getStream sends GET path with hdr and returns the response, body unread.
// The answer must begin within waitTimeout; the body stays open until the
// test ends.
func (f *fixture) getStream(tb testing.TB, path string, hdr http.Header) *http.Response {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	late := time.AfterFunc(waitTimeout, cancel)
	resp, err := f.ts.Client().Do(req)
	if !late.Stop() {
		tb.Fatalf("GET %s: no answer within %v", path, waitTimeout)
	}
	if err != nil {
		tb.Fatalf("GET %s = %v", path, err)
	}
	return resp
}

// readSSE parses the body of resp as an event stream until it ends or the
// test does.
func readSSE(tb testing.TB, resp *http.Response) *sseClient {
	c := &sseClient{tb: tb, resp: resp, events: make(chan sseEvent, 4096), done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(c.done)
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		started := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if started {
					select {
					case c.events <- ev:
					case <-c.quit: // the test is over and reads no more
						return
					}
				}
				ev, started = sseEvent{}, false
			case strings.HasPrefix(line, ":"):
				ev.comment, started = true, true
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					ev.id = v
				case "event":
					ev.event = v
				case "data":
					if ev.data != "" {
						ev.data += "\n"
					}
					ev.data += v
				}
				started = true
			}
		}
	}()
	tb.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.once.Do(func() {
		close(c.quit)
		c.resp.Body.Close()
		select {
		case <-c.done:
		case <-time.After(waitTimeout):
			c.tb.Errorf("the event stream's reader still running %v after its body was closed", waitTimeout)
		}
	})
}

// next returns the next event or comment.
func (c *sseClient) next() sseEvent {
	c.tb.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-c.done:
		select {
		case ev := <-c.events:
			return ev
		default:
		}
		c.tb.Fatal("the event stream ended")
	case <-time.After(waitTimeout):
		c.tb.Fatalf("no event on the stream within %v", waitTimeout)
	}
	return sseEvent{}
}

// message returns the next message event, skipping comments, and checks
// that its id field is the message's id. Heartbeats do not keep it waiting
// past waitTimeout.
func (c *sseClient) message() pubsub.Message {
	c.tb.Helper()
	for deadline := time.Now().Add(waitTimeout); ; {
		if time.Now().After(deadline) {
			c.tb.Fatalf("no message on the stream within %v, only comments", waitTimeout)
		}
		ev := c.next()
		if ev.comment {
			continue
		}
		if ev.event != "" {
			c.tb.Fatalf("event %q with data %s, want a message", ev.event, ev.data)
		}
		var m pubsub.Message
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
			c.tb.Fatalf("event data %s: %v", ev.data, err)
		}
		if ev.id != m.ID.String() {
			c.tb.Errorf("event id %q, message id %v: want them equal", ev.id, m.ID)
		}
		return m
	}
}

// expectError reads until an error event, which must carry code, and then
// the end of the stream.
func (c *sseClient) expectError(code pubsub.Code) {
	c.tb.Helper()
	for deadline := time.Now().Add(waitTimeout); ; {
		if time.Now().After(deadline) {
			c.tb.Fatalf("no error event on the stream within %v", waitTimeout)
		}
		ev := c.next()
		if ev.comment || ev.event == "" {
			continue
		}
		var env envelope
		if ev.event != "error" || json.Unmarshal([]byte(ev.data), &env) != nil || env.Error == nil {
			c.tb.Fatalf("event %q data %s, want an error event", ev.event, ev.data)
		}
		if env.Error.Code != code {
			c.tb.Fatalf("error event %s, want code %s", ev.data, code)
		}
		break
	}
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.tb.Fatal("the stream did not end after its error event")
	}
}

// ctxWait returns a context that ends after waitTimeout.
func ctxWait() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitTimeout)
}
