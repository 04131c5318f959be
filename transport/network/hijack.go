package network

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
)

// Socket buffer sizes of a server connection. net/http hands a hijacked
// connection 4 KiB read and write buffers; most of the time a Plaza connection
// is idle, so it keeps small ones instead. Reads of larger frames bypass the
// read buffer. The write buffer only needs to hold a control frame (at most
// 127 bytes): the server's own frames pass through a heldWriter, which sends
// each in one write call whatever its size.
const (
	connReadBuffer  = 512
	connWriteBuffer = 128
)

// smallBuffers is an http.ResponseWriter whose Hijack swaps the server's
// buffers for small ones and remembers the net.Conn, for deadlines, and the
// read buffer, which the connection peeks at while idle.
type smallBuffers struct {
	http.ResponseWriter
	conn net.Conn
	br   *bufio.Reader
	hw   *heldWriter
}

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent right after its handshake may already sit in the
	// server's read buffer: move them into the new one.
	n := brw.Reader.Buffered()
	early, _ := brw.Reader.Peek(n)
	var r io.Reader = c
	if n > 0 {
		r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), c)
	}
	br := bufio.NewReaderSize(r, max(connReadBuffer, n))
	if n > 0 {
		if _, err := br.Peek(n); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	w.conn, w.br, w.hw = c, br, &heldWriter{c: c}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(w.hw, connWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the original writer.
func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// heldWriter sits between the WebSocket's write buffer and the socket. While
// one of the server's frames is being written it collects what the library
// writes, in a pooled buffer, and sends it in one write call once the frame
// is complete; otherwise (control frames the library writes on its own) it
// writes through. It is safe for concurrent use.
type heldWriter struct {
	c       net.Conn
	mu      sync.Mutex
	holds   int     // frame writes in progress
	pending *[]byte // what they wrote so far; nil when empty
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holds == 0 {
		return w.c.Write(p)
	}
	if w.pending == nil {
		w.pending = getBuf()
	}
	*w.pending = append(*w.pending, p...)
	return len(p), nil
}

// hold starts collecting.
func (w *heldWriter) hold() {
	w.mu.Lock()
	w.holds++
	w.mu.Unlock()
}

// release ends a hold; the last one sends what was collected.
func (w *heldWriter) release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holds--
	if w.holds > 0 || w.pending == nil {
		return nil
	}
	bp := w.pending
	w.pending = nil
	_, err := w.c.Write(*bp)
	putBuf(bp)
	return err
}
