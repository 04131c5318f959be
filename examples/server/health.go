package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plazahq/plaza/history"
)

// health answers /healthz (the process serves HTTP) and /readyz (it can
// do its work: every readyCheck passes). Both answer JSON: {"status":
// "ok"}, and for /readyz the result of each check, "ok" or what is wrong,
// with 503 and "status": "unavailable" when any fails:
// {"status": "unavailable", "checks": {"history": "what is wrong"}}.
// From stop on, /readyz answers 503 with {"shutdown": "the server is
// shutting down"} and probes nothing. A health is safe for concurrent use.
type health struct {
	checks   []readyCheck
	stopping atomic.Bool

	mu      sync.Mutex
	checked time.Time
	results map[string]string // of the last probe: name → "ok" or the problem
	ready   bool
}

// readyCheck is one thing /readyz asks: its name in the answer, and a probe
// that returns what is wrong, or "". A new dependency of the server (a
// broker, say) is one more readyCheck.
type readyCheck struct {
	name  string
	probe func(context.Context) string
}

// probeEvery is how often /readyz probes at most; requests in between get
// the last result, so that a busy prober cannot make the server fsync in a
// loop.
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

// stop makes the server unready for good: it is shutting down, and a load
// balancer should send it no more clients while it still answers.
func (h *health) stop() { h.stopping.Store(true) }

func (h *health) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if h.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": map[string]string{"shutdown": "the server is shutting down"}})
		return
	}
	results, ready := h.check(r.Context())
	status, word := http.StatusOK, "ok"
	if !ready {
		status, word = http.StatusServiceUnavailable, "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": results})
}

// check runs the checks, or returns the last results when they are younger
// than probeEvery.
func (h *health) check(ctx context.Context) (map[string]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.results != nil && time.Since(h.checked) < probeEvery {
		return h.results, h.ready
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h.results, h.ready = make(map[string]string, len(h.checks)), true
	for _, c := range h.checks {
		problem := c.probe(ctx)
		if problem == "" {
			problem = "ok"
		} else {
			h.ready = false
		}
		h.results[c.name] = problem
	}
	h.checked = time.Now()
	return h.results, h.ready
}

// historyProbe is the "history" check: the store is writable.
type historyProbe struct {
	store   history.Store  // nil with -memory: always ready
	data    string         // the data folder
	metrics *serverMetrics // for the last commit's outcome
}

// probe checks that the store answers and that its folder takes a write
// that reaches the disk, without touching any room: it writes, syncs and
// removes a file of its own beside history.db. A commit that failed since
// the last one that succeeded also makes the server unready.
func (h *historyProbe) probe(ctx context.Context) string {
	if h.store == nil {
		return "" // in memory: nothing to fail
	}
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
