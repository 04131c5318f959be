package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plazahq/plaza/history"
)

// health answers /healthz (the process serves HTTP) and /readyz (it can
// do its work: the history store is writable). Both answer JSON:
// {"status": "ok"}, or for /readyz with 503 {"status": "unavailable",
// "checks": {"history": "what is wrong"}}.
type health struct {
	store   history.Store  // nil with -memory
	data    string         // the data folder; "" with -memory
	metrics *serverMetrics // for the last commit's outcome

	mu      sync.Mutex
	checked time.Time
	problem string // of the last probe; "" when ready
}

// probeEvery is how often /readyz probes the store at most; requests in
// between get the last result, so that a busy prober cannot make the
// server fsync in a loop.
const probeEvery = time.Second

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *health) serveHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *health) serveReadyz(w http.ResponseWriter, r *http.Request) {
	problem := h.check(r.Context())
	if problem != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": map[string]string{"history": problem}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": map[string]string{"history": "ok"}})
}

// check returns what keeps the server from being ready, or "".
func (h *health) check(ctx context.Context) string {
	if h.store == nil {
		return "" // in memory: nothing to fail
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checked) < probeEvery {
		return h.problem
	}
	h.problem = h.probe(ctx)
	h.checked = time.Now()
	return h.problem
}

// probe checks that the store answers and that its folder takes a write
// that reaches the disk, without touching any room: it writes, syncs and
// removes a file of its own beside history.db. A commit that failed since
// the last one that succeeded also makes the server unready.
func (h *health) probe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.store.Query(ctx, "", history.Query{Topic: "readyz", Limit: 1}); err != nil {
		return fmt.Sprintf("the history store does not answer: %v", err)
	}
	path := filepath.Join(h.data, ".readyz")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Sprintf("the data folder %s is not writable: %v", h.data, err)
	}
	_, werr := f.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	os.Remove(path)
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Sprintf("the data folder %s does not take writes: %v", h.data, werr)
	}
	if p := h.metrics.lastCommit.Load(); p != nil {
		return fmt.Sprintf("the last history commit failed: %v", *p)
	}
	return ""
}
