package socketio

import (
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
)

// The Engine.IO library (engine/v3 v3.0.6) refuses a WebSocket handshake
// that fails after it created the connection's socket (its UpgradeTimeout
// elapsed, or the connection closed) by writing a close frame from the
// request's goroutine (abortUpgrade), while the socket's OPEN packet, queued
// during the handshake, may still be written by the transport's write
// goroutine: two unsynchronized writers on one gorilla/websocket
// connection, a data race that can corrupt its framing. The fix belongs in
// the library: Handshake should close the transport and wait for its write
// queue (or write the close frame through that queue) before abortUpgrade.
//
// Until then, the Server makes the handshake wait for the OPEN packet: the
// engine announces each flush on the request's goroutine, before ("flush")
// and after ("drain") handing the packets to the transport, so the "drain"
// of a WebSocket connection's OPEN packet blocks until the transport wrote
// it. Whatever the handshake then decides, no write of the socket is in
// flight when the library writes its close frame, unless the write took
// longer than the wait's bounds below (openWriteTimeout; closedWriteGrace
// once the transport closed, since a closed transport may have dropped it).

// openWriteTimeout bounds how long a handshake waits for its OPEN packet to
// be written: an OPEN packet is a few hundred bytes on a new connection, so
// only a broken connection takes more, and its write fails.
const openWriteTimeout = 2 * time.Second

// closedWriteGrace bounds the wait once the transport closed: its queue
// may have refused the OPEN packet (then nothing is ever written), or may
// still be about to write it.
const closedWriteGrace = 100 * time.Millisecond

// openWrite is an OPEN packet handed to a WebSocket transport. It counts in
// Server.openWaits from its flush until its wait ends (release), or, for a
// transport that closed before its handshake waited, until closedWriteGrace
// after the close; Server.Close waits for the count to reach zero.
type openWrite struct {
	written chan struct{} // closed by the transport's "drain"
	closed  chan struct{} // closed by its "close"
	release func()        // uncounts it, once
}

// onEngineFlush notes the flush of the OPEN packet of a WebSocket
// connection: written closes once the transport wrote it (its "drain",
// emitted on the write goroutine after the write, even a failed one). A
// closing transport still runs the writes it had queued, and may queue
// this one, so its "close" proves nothing; a closed one queues none.
func (s *Server) onEngineFlush(args ...any) {
	if len(args) < 2 {
		return
	}
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	wbuf, ok := args[1].([]*packet.Packet)
	if !ok || len(wbuf) == 0 || wbuf[0].Type != packet.OPEN {
		return
	}
	t := conn.Transport()
	if t == nil || t.Name() != transports.WEBSOCKET {
		return // polling writes its OPEN packet in the response
	}
	if t.ReadyState() == "closed" {
		return // its write queue was shut down first: the OPEN packet is dropped
	}
	w := &openWrite{written: make(chan struct{}), closed: make(chan struct{})}
	w.release = sync.OnceFunc(func() { s.openWaits.Add(-1) })
	s.openWaits.Add(1)
	s.openWrites.Store(conn, w) // before its "close" can look for it
	_ = t.Once("drain", func(...any) { close(w.written) })
	_ = t.Once("close", func(...any) {
		close(w.closed)
		// A handshake that has not begun its wait by then never will:
		// nothing waits for this write.
		time.AfterFunc(closedWriteGrace, func() {
			if s.openWrites.CompareAndDelete(conn, w) {
				w.release()
			}
		})
	})
}

// onEngineDrain waits, on the request's goroutine, until the OPEN packet
// noted by onEngineFlush was written: at most openWriteTimeout, and at most
// closedWriteGrace once the transport closed. (Server.Close does not cut
// the wait short: the write may still be on its way.)
func (s *Server) onEngineDrain(args ...any) {
	if len(args) == 0 {
		return
	}
	v, ok := s.openWrites.LoadAndDelete(args[0])
	if !ok {
		return
	}
	w := v.(*openWrite)
	defer w.release()
	t := time.NewTimer(openWriteTimeout)
	defer t.Stop()
	select {
	case <-w.written:
		return
	case <-w.closed:
		t.Reset(closedWriteGrace)
	case <-t.C:
		s.opts.Logger.Warn("socketio: the OPEN packet of a WebSocket connection was not written in time")
		return
	}
	select {
	case <-w.written:
	case <-t.C:
	}
}
