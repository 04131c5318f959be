package socketio

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

// ClientVersion is the version of socket.io-client whose browser bundle the
// Server serves, and the one the tests drive.
const ClientVersion = "4.8.4"

// clientBundle is socket.io-client's dist/socket.io.min.js (MIT License, see
// client/LICENSE), as the Node server serves it.
//
//go:embed client/socket.io.min.js
var clientBundle []byte

// serveClientBundle answers GET /socket.io/socket.io.js (and .min.js) with
// the client bundle, so that a page can load it from the server it
// connects to, as with the Node server. It reports whether r asked for it.
func serveClientBundle(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case Path + "socket.io.js", Path + "socket.io.min.js":
	default:
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return true
	}
	h := w.Header()
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=0")
	h.Set("ETag", `"`+ClientVersion+`"`)
	http.ServeContent(w, r, "socket.io.js", time.Time{}, bytes.NewReader(clientBundle))
	return true
}
