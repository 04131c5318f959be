package network

import (
	_ "embed"
	"net/http"
)

// The JavaScript client, plaza.js, and its TypeScript declarations. They
// are served at [ScriptPath] and [TypesPath]; the files are in js/.
var (
	//go:embed js/plaza.js
	plazaJS []byte
	//go:embed js/plaza.d.ts
	plazaDTS []byte
)

// ScriptPath and TypesPath are where a Server serves plaza.js, the ES
// module that gives browsers and Node the room.pubsub API, and its
// TypeScript declarations. Every room route has at least two path segments
// (/{room}/ws, …), so these single-segment paths never shadow a room, even
// one named "plaza.js".
const (
	ScriptPath = "/plaza.js"
	TypesPath  = "/plaza.d.ts"
)

// serveScript answers GET /plaza.js and GET /plaza.d.ts.
func serveScript(body []byte, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	}
}
