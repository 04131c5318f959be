package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/redis"
)

// The metrics, in the Prometheus text format at /metrics. What the hub and
// the server count already (memory.Hub.Stats, network.Server.Stats) is read
// when /metrics is scraped, so the paths that deliver messages pay nothing
// for it; the rest is counted by the wrappers below, which sit between the
// network server and the hub (observedTransport), around the history store
// (timedStore) and in front of the HTTP routes (countPublishes), and by the
// server's connection events (connEvent).
//
//	plaza_connections{protocol}            gauge: open WebSockets ("websocket") and event streams ("sse")
//	plaza_connection_opens_total{protocol}  connections and streams opened (authenticated)
//	plaza_connection_closes_total{protocol,code}  closed, by WebSocket close code ("0" for streams, "other" for a code of the client's own)
//	plaza_reconnects_total                 WebSockets opened by a client id whose last one closed within reconnectWindow
//	plaza_hub_connections                  gauge: the hub's connections, one per WebSocket, stream or HTTP request in flight
//	plaza_client_sockets                   gauge: temporary client sockets remembered
//	plaza_subscriptions                    gauge: topics and patterns subscribed, over all connections
//	plaza_publishes_total{route,code}      publishes answered, by route ("websocket", "http") and outcome ("OK" or the error code)
//	plaza_publish_duration_seconds         histogram: how long the hub took to confirm a publish (store commit included)
//	plaza_messages_published_total         messages the hub confirmed, repeats answered from the idempotency window not counted
//	plaza_publishes_deduplicated_total     publishes answered from the idempotency window
//	plaza_publishes_rate_limited_total     publishes refused by the hub's publish rate cap
//	plaza_deliveries_total                 messages put in a connection's queue
//	plaza_cap_dropped_total                messages a subscription's rate cap dropped
//	plaza_slow_consumers_total             connections the hub dropped because their queue was full
//	plaza_history_queries_total{code}      history pages answered, by outcome
//	plaza_gap_fills_total                  history pages asked for with After: reconnect gap fills and stream resumes
//	plaza_store_commit_duration_seconds    histogram: from a message's append until it is durable
//	plaza_store_commit_errors_total        appends whose commit failed
//	plaza_history_store_bytes              gauge: size of history.db (absent with -memory and -redis)
//	plaza_redis_commands_total             round trips to Redis, scripts included (only with -redis)
//	plaza_redis_errors_total               those that failed: Redis unreachable, a refused command, a full Redis
type serverMetrics struct {
	set        *metrics.Set
	publishDur *metrics.PrometheusHistogram
	commitDur  *metrics.PrometheusHistogram
	commitErrs *metrics.Counter
	gapFills   *metrics.Counter
	reconnects *metrics.Counter
	subs       atomic.Int64
	publishes  sync.Map         // publishKey → *metrics.Counter, so that a publish builds no name
	wsOK       *metrics.Counter // plaza_publishes_total{route="websocket",code="OK"}

	// The sources read at scrape time; set before the server serves.
	hub       *memory.Hub
	srv       *network.Server
	storePath string        // "" with -memory and -redis
	redis     *redis.Client // nil without -redis

	// lastCommit is the error of the latest commit, nil once one succeeds:
	// readiness reports it.
	lastCommit atomic.Pointer[error]

	mu     sync.Mutex
	closed map[string]time.Time // room+"\x00"+client → when its last WebSocket closed
}

// reconnectWindow is how soon after its last WebSocket closed a client's
// next one counts as a reconnect; maxRecentCloses bounds what is
// remembered for that.
const (
	reconnectWindow = 2 * time.Minute
	maxRecentCloses = 10000
)

// latencyBuckets are the upper bounds, in seconds, of both histograms: from
// a publish kept in memory to an fsync on a slow disk.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func init() {
	// # TYPE lines, so that scrapers know counters, gauges and histograms.
	metrics.ExposeMetadata(true)
}

func newServerMetrics() *serverMetrics {
	s := metrics.NewSet()
	m := &serverMetrics{
		set:        s,
		publishDur: s.NewPrometheusHistogramExt("plaza_publish_duration_seconds", latencyBuckets),
		commitDur:  s.NewPrometheusHistogramExt("plaza_store_commit_duration_seconds", latencyBuckets),
		commitErrs: s.NewCounter("plaza_store_commit_errors_total"),
		gapFills:   s.NewCounter("plaza_gap_fills_total"),
		reconnects: s.NewCounter("plaza_reconnects_total"),
		closed:     make(map[string]time.Time),
	}
	m.wsOK = s.NewCounter(`plaza_publishes_total{route="websocket",code="OK"}`)
	s.RegisterMetricsWriter(m.writeStats)
	return m
}

// writeStats writes what the hub, the server and the file system know, at
// scrape time.
func (m *serverMetrics) writeStats(w io.Writer) {
	if m.srv != nil {
		st := m.srv.Stats()
		metrics.WriteMetadataIfNeeded(w, "plaza_connections", "gauge") // once for the family
		fmt.Fprintf(w, "plaza_connections{protocol=\"websocket\"} %d\nplaza_connections{protocol=\"sse\"} %d\n", st.Connections, st.Streams)
		metrics.WriteGaugeUint64(w, "plaza_client_sockets", uint64(st.ClientSockets))
	}
	if m.hub != nil {
		st := m.hub.Stats()
		metrics.WriteGaugeUint64(w, "plaza_hub_connections", uint64(st.Connections))
		metrics.WriteCounterUint64(w, "plaza_messages_published_total", st.Published)
		metrics.WriteCounterUint64(w, "plaza_publishes_deduplicated_total", st.Deduplicated)
		metrics.WriteCounterUint64(w, "plaza_publishes_rate_limited_total", st.RateLimited)
		metrics.WriteCounterUint64(w, "plaza_deliveries_total", st.Delivered)
		metrics.WriteCounterUint64(w, "plaza_cap_dropped_total", st.CapDropped)
		metrics.WriteCounterUint64(w, "plaza_slow_consumers_total", st.SlowConsumers)
	}
	metrics.WriteGaugeUint64(w, "plaza_subscriptions", uint64(max(0, m.subs.Load())))
	if m.redis != nil {
		st := m.redis.Stats()
		metrics.WriteCounterUint64(w, "plaza_redis_commands_total", st.Commands)
		metrics.WriteCounterUint64(w, "plaza_redis_errors_total", st.Errors)
	}
	if m.storePath != "" {
		if fi, err := os.Stat(m.storePath); err == nil {
			metrics.WriteGaugeUint64(w, "plaza_history_store_bytes", uint64(fi.Size()))
		}
	}
}

// ServeHTTP serves the metrics.
func (m *serverMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.set.WritePrometheus(w)
}

// outcome is the label of a request's result: "OK" or its error code.
func outcome(err error) string {
	if err == nil {
		return "OK"
	}
	if code := pubsub.CodeOf(err); code != "" {
		return string(code)
	}
	return string(pubsub.CodeInternal)
}

func (m *serverMetrics) countPublish(route, code string) {
	if route == "websocket" && code == "OK" {
		m.wsOK.Inc() // the common case, without a look-up
		return
	}
	k := publishKey{route, code}
	c, ok := m.publishes.Load(k)
	if !ok {
		c, _ = m.publishes.LoadOrStore(k, m.set.GetOrCreateCounter(`plaza_publishes_total{route="`+route+`",code="`+code+`"}`))
	}
	c.(*metrics.Counter).Inc()
}

// publishKey names a counter of plaza_publishes_total.
type publishKey struct{ route, code string }

// connEvent is the network server's Options.OnConnEvent.
func (m *serverMetrics) connEvent(ev network.ConnEvent) {
	if !ev.Closed {
		m.set.GetOrCreateCounter(`plaza_connection_opens_total{protocol="` + ev.Protocol + `"}`).Inc()
	} else {
		m.set.GetOrCreateCounter(`plaza_connection_closes_total{protocol="` + ev.Protocol + `",code="` + closeLabel(ev.Code) + `"}`).Inc()
	}
	if ev.Protocol != "websocket" {
		return
	}
	key := ev.Room + "\x00" + ev.ClientID
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Closed {
		if len(m.closed) >= maxRecentCloses {
			for k, t := range m.closed {
				if now.Sub(t) > reconnectWindow {
					delete(m.closed, k)
				}
			}
			if len(m.closed) >= maxRecentCloses {
				return // too many to remember: this one will not count
			}
		}
		m.closed[key] = now
		return
	}
	if t, ok := m.closed[key]; ok {
		delete(m.closed, key)
		if now.Sub(t) <= reconnectWindow {
			m.reconnects.Inc()
		}
	}
}

// closeLabel is the code label of a close: the code for the ones the
// protocol and the network server define, "other" for any code a client
// chose itself, so that clients cannot make series without bound.
func closeLabel(code websocket.StatusCode) string {
	switch code {
	case 0, // an event stream
		websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusProtocolError,
		websocket.StatusUnsupportedData, websocket.StatusNoStatusRcvd, websocket.StatusAbnormalClosure,
		websocket.StatusInvalidFramePayloadData, websocket.StatusPolicyViolation, websocket.StatusMessageTooBig,
		websocket.StatusInternalError,
		network.CloseUnauthenticated, network.CloseCredentialsExpired, network.CloseMaxDuration,
		network.CloseSlowConsumer, network.CloseHubEnded:
		return strconv.Itoa(int(code))
	}
	return "other"
}

// commitDone records a commit that began at start and ended with err.
func (m *serverMetrics) commitDone(start time.Time, err error) {
	m.commitDur.UpdateDuration(start)
	if err != nil {
		m.commitErrs.Inc()
		m.lastCommit.Store(&err)
		return
	}
	if m.lastCommit.Load() != nil {
		m.lastCommit.Store(nil)
	}
}

// httpRoute marks the context of a plain HTTP request, so that
// observedTransport leaves its publish to countPublishes.
type httpRoute struct{}

// countPublishes counts the plain HTTP publishes (POST
// /{room}/pubsub/{topic}/publish and its alias /{room}/publish/{topic}) by
// their answer: the error code of the JSON body, or OK. It counts the ones
// refused before they reached the hub too.
func (m *serverMetrics) countPublishes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !isPublishPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), httpRoute{}, true)))
		m.countPublish("http", rec.outcome())
	})
}

// isPublishPath reports whether path is one of the network server's
// publish routes.
func isPublishPath(path string) bool {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch len(parts) {
	case 3:
		return parts[1] == "publish" // /{room}/publish/{topic}
	case 4:
		return parts[1] == "pubsub" && parts[3] == "publish"
	}
	return false
}

// statusRecorder keeps the status of an answer and the start of its body
// when it is an error.
type statusRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer // up to 1 KiB of an error answer
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.status >= 300 && s.body.Len() < 1<<10 {
		s.body.Write(b[:min(len(b), 1<<10-s.body.Len())])
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) outcome() string {
	if s.status == 0 || s.status < 300 {
		return "OK"
	}
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(s.body.Bytes(), &env) == nil && env.Error.Code != "" {
		return env.Error.Code
	}
	return "HTTP_" + strconv.Itoa(s.status)
}

// observedTransport is the hub as the network server sees it: every Conn
// it opens counts its publishes, subscriptions and history queries.
type observedTransport struct {
	pubsub.Transport
	m *serverMetrics
}

func (t observedTransport) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := t.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	_, isHTTP := ctx.Value(httpRoute{}).(bool)
	return &observedConn{Conn: c, m: t.m, http: isHTTP}, nil
}

// observedConn is a hub Conn that counts. Its Messages channel is the hub
// Conn's own: deliveries do not pass through it.
type observedConn struct {
	pubsub.Conn
	m    *serverMetrics
	http bool // a plain HTTP request: countPublishes counts its publish

	mu     sync.Mutex
	subs   map[string]struct{}
	closed bool
}

func (c *observedConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	start := time.Now()
	msg, err := c.Conn.Publish(ctx, req)
	c.m.publishDur.UpdateDuration(start)
	if !c.http {
		c.m.countPublish("websocket", outcome(err))
	}
	return msg, err
}

func (c *observedConn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	err := c.Conn.Subscribe(ctx, req)
	if err == nil {
		c.mu.Lock()
		if _, ok := c.subs[req.Topic]; !ok && !c.closed {
			if c.subs == nil {
				c.subs = make(map[string]struct{}, 1)
			}
			c.subs[req.Topic] = struct{}{}
			c.m.subs.Add(1)
		}
		c.mu.Unlock()
	}
	return err
}

func (c *observedConn) Unsubscribe(ctx context.Context, topic string) error {
	err := c.Conn.Unsubscribe(ctx, topic)
	if err == nil {
		c.mu.Lock()
		if _, ok := c.subs[topic]; ok {
			delete(c.subs, topic)
			c.m.subs.Add(-1)
		}
		c.mu.Unlock()
	}
	return err
}

func (c *observedConn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	page, err := c.Conn.History(ctx, req)
	c.m.set.GetOrCreateCounter(`plaza_history_queries_total{code="` + outcome(err) + `"}`).Inc()
	if req.After != 0 {
		c.m.gapFills.Inc()
	}
	return page, err
}

func (c *observedConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.m.subs.Add(-int64(len(c.subs)))
		c.subs = nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// timedStore is the durable store with its commits timed. It embeds the
// store, so that the hub finds every interface the store implements
// (history.Pipeliner, history.KeyStore); the methods that append are
// wrapped.
type timedStore struct {
	*history.Bolt
	m *serverMetrics
}

func (s timedStore) Append(ctx context.Context, room string, msg pubsub.Message) error {
	start := time.Now()
	err := s.Bolt.Append(ctx, room, msg)
	s.m.commitDone(start, err)
	return err
}

func (s timedStore) AppendKey(ctx context.Context, room string, msg pubsub.Message, key string) error {
	start := time.Now()
	err := s.Bolt.AppendKey(ctx, room, msg, key)
	s.m.commitDone(start, err)
	return err
}

func (s timedStore) Enqueue(room string, msg pubsub.Message, key string) func(context.Context) error {
	start := time.Now()
	wait := s.Bolt.Enqueue(room, msg, key)
	return func(ctx context.Context) error {
		err := wait(ctx)
		if err == nil || ctx.Err() == nil { // a caller that gave up says nothing of the commit
			s.m.commitDone(start, err)
		}
		return err
	}
}

var (
	_ history.Pipeliner = timedStore{}
	_ history.KeyStore  = timedStore{}
)
