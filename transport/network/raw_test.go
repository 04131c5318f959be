package network

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// rawConn is a WebSocket client that speaks the frame protocol by hand, the
// way a browser does.
type rawConn struct {
	tb    testing.TB
	ws    *websocket.Conn
	bound bool // a single-topic socket: one message object per WebSocket message
}

// dialRaw opens a WebSocket to url. hdr may be nil.
func dialRaw(tb testing.TB, url string, opts *websocket.DialOptions) *rawConn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		tb.Fatalf("Dial(%q) = %v", url, err)
	}
	ws.SetReadLimit(1 << 24)
	tb.Cleanup(func() { ws.CloseNow() })
	return &rawConn{tb: tb, ws: ws}
}

// bearer returns DialOptions that authenticate as id with a header.
func bearer(id string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + testTokenPrefix + id}}}
}

// authed opens a raw connection to room authenticated as id, and reads the
// welcome.
func (f *fixture) authed(tb testing.TB, room, id string) *rawConn {
	tb.Helper()
	c := dialRaw(tb, f.wsURL(room), bearer(id))
	if w := c.expect(typeWelcome, ""); w.ClientID != id {
		tb.Fatalf("welcome for client %q, want %q", w.ClientID, id)
	}
	return c
}

func (c *rawConn) send(frame string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.tb.Fatalf("Write(%s) = %v", clip(frame, 80), err)
	}
}

// read returns the next frame's bytes, or the error that ended the
// connection.
func (c *rawConn) read() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	return data, err
}

// next returns the next frame.
func (c *rawConn) next() serverFrame {
	c.tb.Helper()
	data, err := c.read()
	if err != nil {
		c.tb.Fatalf("Read() = %v, want a frame", err)
	}
	var f serverFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.tb.Fatalf("frame %s: %v", data, err)
	}
	if f.V != ProtocolVersion {
		c.tb.Errorf("frame %s has v %d, want %d", data, f.V, ProtocolVersion)
	}
	return f
}

// expect reads the next frame and checks its type and id.
func (c *rawConn) expect(typ, id string) serverFrame {
	c.tb.Helper()
	f := c.next()
	if f.Type != typ || f.ID != id {
		c.tb.Fatalf("got frame type %q id %q (error %+v), want type %q id %q", f.Type, f.ID, f.Error, typ, id)
	}
	return f
}

// expectError reads the next frame, which must be an error with id and code.
func (c *rawConn) expectError(id string, code pubsub.Code) serverFrame {
	c.tb.Helper()
	f := c.expect(typeError, id)
	if f.Error == nil || f.Error.Code != code {
		c.tb.Fatalf("error frame %+v, want code %s", f.Error, code)
	}
	return f
}

// expectClose reads until the connection ends, which must be with a close
// frame carrying code. It returns the frames read before.
func (c *rawConn) expectClose(code websocket.StatusCode) []serverFrame {
	c.tb.Helper()
	var frames []serverFrame
	for deadline := time.Now().Add(waitTimeout); ; {
		if time.Now().After(deadline) {
			c.tb.Fatalf("connection still open after %v of frames (%d read)", waitTimeout, len(frames))
		}
		data, err := c.read()
		if err != nil {
			if got := websocket.CloseStatus(err); got != code {
				c.tb.Fatalf("connection ended with %v (status %v), want status %v", err, got, code)
			}
			return frames
		}
		var f serverFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.tb.Fatalf("frame %s: %v", data, err)
		}
		frames = append(frames, f)
	}
}

// ping checks that the connection still answers.
func (c *rawConn) ping(id string) {
	c.tb.Helper()
	c.send(`{"type":"ping","id":"` + id + `"}`)
	c.expect(typePong, id)
}

// smallSockets shrinks the send buffer of every accepted connection, so that
// a client that stops reading blocks the server's writes quickly.
type smallSockets struct{ net.Listener }

func (l smallSockets) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// smallReadBuffer returns DialOptions whose connections have a small receive
// buffer.
func smallReadBuffer(opts *websocket.DialOptions) *websocket.DialOptions {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4 << 10)
			}
			return c, err
		},
	}
	opts.HTTPClient = &http.Client{Transport: tr, Timeout: waitTimeout}
	return opts
}

// restartable serves a handler on a fixed loopback address that can be
// stopped and served again.
type restartable struct {
	addr string
	ts   *httptest.Server
}

func (r *restartable) start(tb testing.TB, h http.Handler) {
	tb.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	deadline := time.Now().Add(waitTimeout)
	for {
		l, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		tb.Fatalf("Listen(%q) = %v", addr, err)
	}
	r.addr = l.Addr().String()
	r.ts = httptest.NewUnstartedServer(h)
	r.ts.Listener.Close()
	r.ts.Listener = l
	r.ts.Start()
}
