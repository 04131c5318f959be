package network

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Socket buffer sizes of a server connection. net/http hands a hijacked
// connection 4 KiB read and write buffers; most of the time a Plaza connection
// is idle, so it keeps small ones instead. Reads of larger frames bypass the
// read buffer; a frame larger than the write buffer costs one extra write
// call.
const (
	connReadBuffer  = 512
	connWriteBuffer = 1024
)

// smallBuffers is an http.ResponseWriter whose Hijack swaps the server's
// buffers for small ones and remembers the net.Conn, for deadlines, and the
// read buffer, which the connection peeks at while idle.
type smallBuffers struct {
	http.ResponseWriter
	conn net.Conn
	br   *bufio.Reader
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
	w.conn, w.br = c, br
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, connWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the original writer.
func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }
